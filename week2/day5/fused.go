// Package day5 is Week 2 Day 5: fused kernels. Each operation between two
// projections of a decoder layer — RMSNorm, RoPE on q and k, SwiGLU, and
// the residual add with the next RMSNorm — becomes one loop over rows that
// reads its inputs from memory once, on the CPU (this file) and on the GPU
// (gpu.go, fused.cu, fused.metal). Graded by `make check-w2d5`.
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

// lastDim checks that x is N.. x d and returns the number of rows: call
// it first to validate an input. (Provided.)
func lastDim(op string, x *tensor.Tensor, d int) int {
	if x.DType() != tensor.Float32 || x.NDim() < 1 || x.Dim(-1) != d {
		panic(fmt.Sprintf("day5.%s: want float32 N.. x %d, got %v %v", op, d, x.DType(), x.Shape()))
	}
	return x.Size() / d
}

// RMSNorm returns y = x / sqrt(mean(x²) + eps) · weight over the last axis
// of x (N.. x D, float32; weight D values of any float dtype), accumulating
// the squares in float32, each row read once.
func RMSNorm(x, weight *tensor.Tensor, eps float32) *tensor.Tensor {
	// Your code here (W2D5).
	panic("TODO(W2D5): implement RMSNorm")
}

// AddRMSNorm adds delta into the residual stream h in place (h += delta,
// both N.. x D float32) and returns RMSNorm(h, weight, eps) of the sum:
// the residual connection after attention or the MLP fused with the norm
// that follows it. Each row of h and delta is read once.
func AddRMSNorm(h, delta, weight *tensor.Tensor, eps float32) *tensor.Tensor {
	// Your code here (W2D5).
	panic("TODO(W2D5): implement AddRMSNorm")
}

// RoPE rotates q (N x L x Hq x D) and k (N x L x Hk x D) in place with
// Qwen2's non-traditional pairing (x[i], x[i+D/2]): row n's token l sits
// at position offsets[n] + l. offsets is nil (every row at 0), one value
// for every row, or one per row. Positions must lie inside the table.
func RoPE(q, k *tensor.Tensor, table *RoPETable, offsets []int) {
	// Your code here (W2D5).
	panic("TODO(W2D5): implement RoPE")
}

// checkRoPE validates RoPE's arguments (it panics with a message that names
// the shapes) and returns N and L. (Provided.)
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

// SwiGLU returns silu(gate)·up elementwise, gate and up of the same shape
// (float32), silu(x) = x·sigmoid(x), reading each input once.
func SwiGLU(gate, up *tensor.Tensor) *tensor.Tensor {
	// Your code here (W2D5).
	panic("TODO(W2D5): implement SwiGLU")
}
