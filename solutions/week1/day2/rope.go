// Package day2 is the reference solution of Week 1 Day 2: rotary positional
// embedding (RoPE) in its traditional and non-traditional forms.
package day2

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"

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

	// table holds cos and sin of the angles, shared by every RoPE with the
	// same Dims and Base.
	table *angleTable
}

// A model's configuration states the longest context it supports,
// max_position_embeddings: 32768 or 131072 for the Qwen2-0.5B checkpoints,
// and far more in some configurations. Tables for all of those positions,
// computed up front, cost Dims·4 bytes per position (32 MiB at 131072
// positions, 64 GiB at 2^28), almost all for positions no prompt reaches. So the tables grow as Forward
// needs them, doubling each time, and SeqLen only bounds the positions
// allowed.
//
// Every layer of a model asks for the same angles, so one table per
// (Dims, Base) serves them all.
var tables sync.Map // tableKey -> *angleTable

type tableKey struct {
	dims int
	base float64
}

// angleTable is a growing table of the angles of one (dims, base).
type angleTable struct {
	dims int
	base float64
	mu   sync.Mutex                // held while growing
	rows atomic.Pointer[angleRows] // the current rows, never modified once stored
}

// angleRows holds cos(p·θ_i) and sin(p·θ_i) for positions p < n and pairs
// i < dims/2, row by row. A longer table is a new angleRows, so a Forward
// that is reading the old one is never disturbed.
type angleRows struct {
	n        int
	cos, sin []float32
}

// upTo returns rows covering at least positions 0 … n-1. It is safe for
// concurrent use: readers take the current rows without locking, and only
// a caller that needs more positions waits for the lock to grow them.
func (t *angleTable) upTo(n int) *angleRows {
	if rows := t.rows.Load(); rows != nil && rows.n >= n {
		return rows
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.rows.Load()
	if old != nil && old.n >= n {
		return old // another caller grew it meanwhile
	}
	half := t.dims / 2
	grown := &angleRows{n: max(n, 256)}
	if old != nil {
		grown.n = max(grown.n, 2*old.n)
	}
	grown.cos, grown.sin = make([]float32, grown.n*half), make([]float32, grown.n*half)
	from := 0
	if old != nil {
		from = old.n
		copy(grown.cos, old.cos)
		copy(grown.sin, old.sin)
	}
	// The angles are computed in float64: at positions in the thousands a
	// float32 angle would already be off by 1e-4.
	for i := 0; i < half; i++ {
		freq := math.Pow(t.base, -float64(2*i)/float64(t.dims))
		for p := from; p < grown.n; p++ {
			angle := float64(p) * freq
			grown.cos[p*half+i] = float32(math.Cos(angle))
			grown.sin[p*half+i] = float32(math.Sin(angle))
		}
	}
	t.rows.Store(grown)
	return grown
}

// NewRoPE prepares the rotation for positions 0 … seqLen-1.
func NewRoPE(dims, seqLen int, base float64, traditional bool) *RoPE {
	// The cos/sin tables are filled as Forward first reaches each position, not
	// here: a config may allow millions of positions that no prompt uses.
	if dims <= 0 || dims%2 != 0 {
		panic(fmt.Sprintf("day2.NewRoPE: dims must be even and positive, got %d", dims))
	}
	t, _ := tables.LoadOrStore(tableKey{dims, base}, &angleTable{dims: dims, base: base})
	return &RoPE{Dims: dims, SeqLen: seqLen, Base: base, Traditional: traditional, table: t.(*angleTable)}
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
	end := 0 // one past the last position of any row
	for b := 0; b < n; b++ {
		if starts[b] < 0 || starts[b]+l > r.SeqLen {
			panic(fmt.Sprintf("day2.RoPE.Forward: positions %d…%d outside the table of %d", starts[b], starts[b]+l-1, r.SeqLen))
		}
		end = max(end, starts[b]+l)
	}
	angles := r.table.upTo(end)
	half := d / 2
	src := x.Data()
	dst := make([]float32, len(src))
	// The positions are independent: a prompt's are rotated on all cores
	// (serially, a 128-token prefill spent 16 ms per pass in here while
	// the other core waited).
	tensor.ParallelRows(n*l, h*d, func(lo, hi int) {
		for row := lo; row < hi; row++ {
			b, t := row/l, row%l
			cos := angles.cos[(starts[b]+t)*half:][:half]
			sin := angles.sin[(starts[b]+t)*half:][:half]
			for head := 0; head < h; head++ {
				base := (row*h + head) * d
				in, out := src[base:base+d], dst[base:base+d]
				if r.Traditional {
					// The two members of pair i are neighbours.
					for i := 0; i < half; i++ {
						j, k := 2*i, 2*i+1
						out[j] = in[j]*cos[i] - in[k]*sin[i]
						out[k] = in[j]*sin[i] + in[k]*cos[i]
					}
					continue
				}
				// One member of pair i in each half.
				x1, x2 := in[:half], in[half:d]
				y1, y2 := out[:half], out[half:d]
				for i := range half {
					y1[i] = x1[i]*cos[i] - x2[i]*sin[i]
					y2[i] = x1[i]*sin[i] + x2[i]*cos[i]
				}
			}
		}
	})
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
