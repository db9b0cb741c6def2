// Package day5 is the reference solution of Week 2 Day 5: fused kernels.
// Each operation between two projections of a decoder layer — RMSNorm,
// RoPE on q and k, SwiGLU, and the residual add with the next RMSNorm — is
// one loop over rows that reads its inputs from memory once, on the CPU
// (this file) and on the GPU (gpu.go, fused.cu, fused.metal).
package day5

import (
	"fmt"
	"math"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// RoPETable holds cos and sin of RoPE's angles for positions 0 … MaxPos-1:
// row p, pair i is the angle p·Base^(-2i/Dims), computed in float64 and
// rounded once, as Week 1's RoPE does. Cos and Sin are MaxPos x Dims/2.
// (Provided.)
type RoPETable struct {
	Dims, MaxPos int
	Base         float64
	Cos, Sin     []float32
}

// NewRoPETable computes the table. Dims must be even and positive, MaxPos
// positive. (Provided.)
func NewRoPETable(dims, maxPos int, base float64) (*RoPETable, error) {
	if dims <= 0 || dims%2 != 0 || maxPos <= 0 || !(base > 1) {
		return nil, fmt.Errorf("NewRoPETable(%d, %d, %g): dims must be even and positive, maxPos positive, base above 1", dims, maxPos, base)
	}
	half := dims / 2
	t := &RoPETable{Dims: dims, MaxPos: maxPos, Base: base, Cos: make([]float32, maxPos*half), Sin: make([]float32, maxPos*half)}
	for i := range half {
		freq := math.Pow(base, -float64(2*i)/float64(dims))
		for p := range maxPos {
			a := float64(p) * freq
			t.Cos[p*half+i], t.Sin[p*half+i] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	return t, nil
}

// lastDim checks that x is N.. x d and returns the number of rows.
func lastDim(op string, x *tensor.Tensor, d int) int {
	if x.DType() != tensor.Float32 || x.NDim() < 1 || x.Dim(-1) != d {
		panic(fmt.Sprintf("day5.%s: want float32 N.. x %d, got %v %v", op, d, x.DType(), x.Shape()))
	}
	return x.Size() / d
}

// normRow writes y = x / sqrt(ss/len(x) + eps) · w, where ss is the sum of
// squares of x already accumulated.
func normRow(y, x, w []float32, ss, eps float32) {
	inv := float32(1 / math.Sqrt(float64(ss/float32(len(x))+eps)))
	y, w = y[:len(x)], w[:len(x)]
	for i, v := range x {
		y[i] = v * inv * w[i]
	}
}

// sumSquares accumulates in float32 over four partial sums: shorter
// chains of additions lose fewer bits, and they do not wait on each other.
func sumSquares(x []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * x[i]
		s1 += x[i+1] * x[i+1]
		s2 += x[i+2] * x[i+2]
		s3 += x[i+3] * x[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// RMSNorm returns y = x / sqrt(mean(x²) + eps) · weight over the last axis
// of x (N.. x D, float32; weight D values of any float dtype), accumulating
// the squares in float32, each row read once.
func RMSNorm(x, weight *tensor.Tensor, eps float32) *tensor.Tensor {
	d := weight.Size()
	rows := lastDim("RMSNorm", x, d)
	w, src := weight.Data(), x.Data()
	out := tensor.Zeros(x.Shape()...)
	dst := out.Data()
	tensor.ParallelRows(rows, d, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := src[r*d : (r+1)*d]
			normRow(dst[r*d:(r+1)*d], row, w, sumSquares(row), eps)
		}
	})
	return out
}

// AddRMSNorm adds delta into the residual stream h in place (h += delta,
// both N.. x D float32) and returns RMSNorm(h, weight, eps) of the sum:
// the residual connection after attention or the MLP fused with the norm
// that follows it. Each row of h and delta is read once.
func AddRMSNorm(h, delta, weight *tensor.Tensor, eps float32) *tensor.Tensor {
	d := weight.Size()
	rows := lastDim("AddRMSNorm", h, d)
	if lastDim("AddRMSNorm", delta, d) != rows {
		panic(fmt.Sprintf("day5.AddRMSNorm: h is %v but delta is %v", h.Shape(), delta.Shape()))
	}
	w, hs, ds := weight.Data(), h.Data(), delta.Data()
	out := tensor.Zeros(h.Shape()...)
	dst := out.Data()
	tensor.ParallelRows(rows, d, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row, add := hs[r*d:(r+1)*d], ds[r*d:(r+1)*d]
			var s0, s1 float32
			i := 0
			for ; i+2 <= d; i += 2 {
				a, b := row[i]+add[i], row[i+1]+add[i+1]
				row[i], row[i+1] = a, b
				s0 += a * a
				s1 += b * b
			}
			for ; i < d; i++ {
				row[i] += add[i]
				s0 += row[i] * row[i]
			}
			normRow(dst[r*d:(r+1)*d], row, w, s0+s1, eps)
		}
	})
	return out
}

// RoPE rotates q (N x L x Hq x D) and k (N x L x Hk x D) in place with
// Qwen2's non-traditional pairing (x[i], x[i+D/2]): row n's token l sits
// at position offsets[n] + l. offsets is nil (every row at 0), one value
// for every row, or one per row. Positions must lie inside the table.
func RoPE(q, k *tensor.Tensor, table *RoPETable, offsets []int) {
	n, l := checkRoPE(q, k, table, offsets)
	half := table.Dims / 2
	hq, hk := q.Dim(2), k.Dim(2)
	qs, ks := q.Data(), k.Data()
	tensor.ParallelRows(n*l, (hq+hk)*table.Dims, func(lo, hi int) {
		for tok := lo; tok < hi; tok++ {
			pos := tok % l
			if len(offsets) == 1 {
				pos += offsets[0]
			} else if len(offsets) > 1 {
				pos += offsets[tok/l]
			}
			cos, sin := table.Cos[pos*half:(pos+1)*half], table.Sin[pos*half:(pos+1)*half]
			rotate(qs[tok*hq*table.Dims:(tok+1)*hq*table.Dims], cos, sin)
			rotate(ks[tok*hk*table.Dims:(tok+1)*hk*table.Dims], cos, sin)
		}
	})
}

// rotate turns every head of one token (heads x D, contiguous) by the
// angles of its position.
func rotate(heads, cos, sin []float32) {
	half := len(cos)
	for at := 0; at < len(heads); at += 2 * half {
		a, b := heads[at:at+half], heads[at+half:at+2*half]
		for i := range half {
			x, y := a[i], b[i]
			a[i] = x*cos[i] - y*sin[i]
			b[i] = x*sin[i] + y*cos[i]
		}
	}
}

// checkRoPE validates RoPE's arguments and returns N and L.
func checkRoPE(q, k *tensor.Tensor, table *RoPETable, offsets []int) (n, l int) {
	d := table.Dims
	if q.DType() != tensor.Float32 || k.DType() != tensor.Float32 || q.NDim() != 4 || k.NDim() != 4 ||
		q.Dim(3) != d || k.Dim(3) != d || q.Dim(0) != k.Dim(0) || q.Dim(1) != k.Dim(1) {
		panic(fmt.Sprintf("day5.RoPE: want float32 q N x L x Hq x %d and k N x L x Hk x %d, got %v %v and %v %v", d, d, q.DType(), q.Shape(), k.DType(), k.Shape()))
	}
	n, l = q.Dim(0), q.Dim(1)
	if len(offsets) > 1 && len(offsets) != n {
		panic(fmt.Sprintf("day5.RoPE: %d offsets for %d rows (want 0, 1 or %d)", len(offsets), n, n))
	}
	for _, o := range offsets {
		if o < 0 || o+l > table.MaxPos {
			panic(fmt.Sprintf("day5.RoPE: positions %d…%d outside the table of %d", o, o+l-1, table.MaxPos))
		}
	}
	if len(offsets) == 0 && l > table.MaxPos {
		panic(fmt.Sprintf("day5.RoPE: positions 0…%d outside the table of %d", l-1, table.MaxPos))
	}
	return n, l
}

// swigluChunk is how many values SwiGLU takes at a time: small enough that
// a chunk of gate is still in the L1 cache when it is read the second time.
const swigluChunk = 256

// SwiGLU returns silu(gate)·up elementwise, gate and up of the same shape
// (float32), silu(x) = x·sigmoid(x), reading each input once.
func SwiGLU(gate, up *tensor.Tensor) *tensor.Tensor {
	if gate.DType() != tensor.Float32 || up.DType() != tensor.Float32 || !sameShape(gate, up) {
		panic(fmt.Sprintf("day5.SwiGLU: gate %v %v and up %v %v must be float32 of one shape", gate.DType(), gate.Shape(), up.DType(), up.Shape()))
	}
	g, u := gate.Data(), up.Data()
	out := tensor.Zeros(gate.Shape()...)
	dst := out.Data()
	tensor.ParallelRows((len(g)+swigluChunk-1)/swigluChunk, swigluChunk, func(lo, hi int) {
		var sig [swigluChunk]float32
		for c := lo; c < hi; c++ {
			from, to := c*swigluChunk, min((c+1)*swigluChunk, len(g))
			gs, us, ys := g[from:to], u[from:to], dst[from:to]
			tensor.SigmoidSlice(sig[:], gs)
			for i, x := range gs {
				ys[i] = x * sig[i] * us[i]
			}
		}
	})
	return out
}

func sameShape(a, b *tensor.Tensor) bool {
	if a.NDim() != b.NDim() {
		return false
	}
	for i := range a.NDim() {
		if a.Dim(i) != b.Dim(i) {
			return false
		}
	}
	return true
}
