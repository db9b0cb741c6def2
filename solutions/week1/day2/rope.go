// Package day2 is the reference solution of Week 1 Day 2: rotary positional
// embedding (RoPE) in its traditional and non-traditional forms.
package day2

import (
	"fmt"
	"math"
	"sync"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// RoPE rotates pairs of features of each head by an angle proportional to the
// token's position: pair i of position p turns by p·Base^(-2i/Dims).
//
// Traditional pairs neighbours (x[2i], x[2i+1]); the non-traditional form,
// which Qwen2 uses, pairs the two halves (x[i], x[i+Dims/2]).
type RoPE struct {
	Dims, SeqLen int
	Base         float64
	Traditional  bool

	// cos and sin hold SeqLen x Dims/2 angles, computed once in float64: at
	// positions in the thousands a float32 angle would already be off by 1e-4.
	cos, sin []float32
}

// tables caches the cos/sin tables by (dims, seqLen, base): every layer of a
// model asks for the same one, and at Qwen2's 32768 positions each costs 8 MB.
// The tables are never written after they are built, so sharing is safe.
var tables sync.Map // tableKey -> *[2][]float32

type tableKey struct {
	dims, seqLen int
	base         float64
}

// NewRoPE precomputes the rotation tables for positions 0 … seqLen-1.
func NewRoPE(dims, seqLen int, base float64, traditional bool) *RoPE {
	if dims <= 0 || dims%2 != 0 {
		panic(fmt.Sprintf("day2.NewRoPE: dims must be even and positive, got %d", dims))
	}
	r := &RoPE{Dims: dims, SeqLen: seqLen, Base: base, Traditional: traditional}
	key := tableKey{dims, seqLen, base}
	if t, ok := tables.Load(key); ok {
		cs := t.(*[2][]float32)
		r.cos, r.sin = cs[0], cs[1]
		return r
	}
	half := dims / 2
	r.cos, r.sin = make([]float32, seqLen*half), make([]float32, seqLen*half)
	for i := 0; i < half; i++ {
		freq := math.Pow(base, -float64(2*i)/float64(dims))
		for p := 0; p < seqLen; p++ {
			angle := float64(p) * freq
			r.cos[p*half+i] = float32(math.Cos(angle))
			r.sin[p*half+i] = float32(math.Sin(angle))
		}
	}
	tables.Store(key, &[2][]float32{r.cos, r.sin})
	return r
}

// Forward rotates x of shape N x L x H x D (D == Dims). Row n starts at
// position offsets[n]; offsets may be nil (all rows start at 0), hold one
// value for every row, or one value per row.
func (r *RoPE) Forward(x *tensor.Tensor, offsets []int) *tensor.Tensor {
	if x.NDim() != 4 || x.Dim(3) != r.Dims {
		panic(fmt.Sprintf("day2.RoPE.Forward: want N x L x H x %d, got %v", r.Dims, x.Shape()))
	}
	n, l, h, d := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	starts := rowOffsets(offsets, n)
	half := d / 2
	src := x.Data()
	dst := make([]float32, len(src))
	for b := 0; b < n; b++ {
		if starts[b] < 0 || starts[b]+l > r.SeqLen {
			panic(fmt.Sprintf("day2.RoPE.Forward: positions %d…%d outside the table of %d", starts[b], starts[b]+l-1, r.SeqLen))
		}
		for t := 0; t < l; t++ {
			cos := r.cos[(starts[b]+t)*half:][:half]
			sin := r.sin[(starts[b]+t)*half:][:half]
			for head := 0; head < h; head++ {
				base := ((b*l+t)*h + head) * d
				in, out := src[base:base+d], dst[base:base+d]
				for i := 0; i < half; i++ {
					// The two members of pair i: neighbours, or one from each half.
					j, k := 2*i, 2*i+1
					if !r.Traditional {
						j, k = i, i+half
					}
					out[j] = in[j]*cos[i] - in[k]*sin[i]
					out[k] = in[j]*sin[i] + in[k]*cos[i]
				}
			}
		}
	}
	return tensor.New(dst, n, l, h, d)
}

// rowOffsets expands nil, one offset, or one per row into one per row.
func rowOffsets(offsets []int, n int) []int {
	out := make([]int, n)
	switch len(offsets) {
	case 0:
	case 1:
		for i := range out {
			out[i] = offsets[0]
		}
	case n:
		copy(out, offsets)
	default:
		panic(fmt.Sprintf("day2.RoPE.Forward: %d offsets for %d rows (want 0, 1 or %d)", len(offsets), n, n))
	}
	return out
}
