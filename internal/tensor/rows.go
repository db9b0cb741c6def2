package tensor

import (
	"fmt"
	"math"
	"slices"
)

// Building blocks for fused row kernels (Week 2 Day 5), which walk their own
// rows instead of composing whole-tensor operations.

// SigmoidSlice sets dst[i] = 1/(1+e^-src[i]) with the same kernel Sigmoid
// uses (vectorised where the CPU allows), so that a fused loop gives the
// values Sigmoid would. dst must be at least as long as src.
func SigmoidSlice(dst, src []float32) { active.sigmoid(dst[:len(src)], src) }

// ParallelRows calls fn on ranges [lo, hi) of rows rows of rowLen elements
// each, spread over the worker pool the tensor operations use; a job too
// small to be worth splitting runs on the calling goroutine. fn must only
// touch its own rows.
func ParallelRows(rows, rowLen int, fn func(lo, hi int)) {
	parallelFor(rows, max(1, elementwiseGrain/max(rowLen, 1)), fn)
}

// SwiGLUInPlace overwrites gate with SiLU(gate)·up, elementwise, and
// returns it: the values of Mul(SiLU(gate), up), without the three
// gate-sized tensors that composing them makes (tens of MB per layer for a
// prompt of a few hundred tokens). gate must be a Float32 tensor its
// caller owns (a product it just made), and up must have as many elements.
func SwiGLUInPlace(gate, up *Tensor) *Tensor {
	if gate.dtype != Float32 || up.Size() != gate.Size() {
		panic(fmt.Sprintf("tensor.SwiGLUInPlace: gate %v %v and up %v: gate must be float32 and both the same size", gate.dtype, gate.shape, up.shape))
	}
	g, u := gate.f32, up.Data()
	const chunk = 256
	ParallelRows((len(g)+chunk-1)/chunk, chunk, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			end := min((c+1)*chunk, len(g))
			if active.swiglu != nil {
				active.swiglu(g[c*chunk:end], u[c*chunk:end])
			} else {
				swigluWith(g[c*chunk:end], u[c*chunk:end], active.sigmoid)
			}
		}
	})
	return gate
}

// swigluWith sets g[i] = g[i]·σ(g[i])·u[i] for len(g) <= 256 values, σ
// computed by sigmoid.
func swigluWith(g, u []float32, sigmoid func(dst, src []float32)) {
	var sig [256]float32
	sigmoid(sig[:len(g)], g)
	u = u[:len(g)]
	for i, x := range g {
		g[i] = x * sig[i] * u[i]
	}
}

// ExpScaled turns a row of attention scores into unnormalised weights in
// place: row[j] = e^(v[j] - top), where v[j] = row[j]·scale + mask[j] (mask
// nil: no mask; each product rounded to float32 before the addition, as
// MulScalar then Add would round it) and top is the largest v[j]. The
// subtraction keeps e^ from overflowing; keys masked with -Inf get 0.
func ExpScaled(row, mask []float32, scale float32) {
	top := float32(math.Inf(-1))
	if mask != nil {
		mask = mask[:len(row)]
		for j, x := range row {
			row[j] = float32(x*scale) + mask[j]
			top = max(top, row[j])
		}
	} else {
		for j, x := range row {
			row[j] = x * scale
			top = max(top, row[j])
		}
	}
	for j := range row {
		row[j] -= top
	}
	ExpSlice(row, row)
}

// ExpSlice sets dst[i] = e^src[i] with the kernel Exp uses, so that a fused
// loop (a softmax over one row of scores, say) gives the values Exp would.
// dst must be at least as long as src; it may be src itself.
func ExpSlice(dst, src []float32) { active.exp(dst[:len(src)], src) }

// DotRows sets y[r] = Σ_i x[i]·m[off + r·ld + i] for r < len(y): the dot
// products of x with len(y) rows of m that start ld elements apart (a
// matrix-vector product over a strided view, such as one head's keys in a
// page of a paged KV cache), with the kernel matrix-vector products use.
// It panics, naming the sizes, if the last row runs past the end of m.
func DotRows(x, m []float32, off, ld int, y []float32) {
	if len(y) == 0 {
		return
	}
	if off < 0 || ld < 0 || off+(len(y)-1)*ld+len(x) > len(m) {
		panic(fmt.Sprintf("tensor.DotRows: %d rows of %d at offset %d, %d apart, run past the %d elements of m", len(y), len(x), off, ld, len(m)))
	}
	active.dotRows(x, operand{dtype: Float32, f32: m}, off, ld, y)
}

// SumRows adds Σ_r x[r]·m[off + r·ld + j] into y[j] for j < len(y): one
// row of weights times len(x) rows of m that start ld elements apart (the
// attention weights of one query times a head's cached values), with the
// kernel Matmul uses for a row times a narrow matrix. It panics, naming the
// sizes, if the last row runs past the end of m.
func SumRows(x, m []float32, off, ld int, y []float32) {
	if len(x) == 0 || len(y) == 0 {
		return
	}
	if off < 0 || ld < 0 || off+(len(x)-1)*ld+len(y) > len(m) {
		panic(fmt.Sprintf("tensor.SumRows: %d rows of %d at offset %d, %d apart, run past the %d elements of m", len(x), len(y), off, ld, len(m)))
	}
	if active.sumRows != nil {
		active.sumRows(x, m, off, ld, y)
		return
	}
	for r, a := range x {
		active.axpy(a, m[off+r*ld:off+r*ld+len(y)], y)
	}
}

// Axpy adds alpha·x to y elementwise, with the kernel the products use. y
// must be at least as long as x.
func Axpy(alpha float32, x, y []float32) { active.axpy(alpha, x, y[:len(x)]) }

// AddInPlace adds x into y, a Float32 tensor of x's shape that the caller
// owns (a buffer, or a product it just made), and returns y: the values of
// Add(x, y).
func AddInPlace(y, x *Tensor) *Tensor {
	if y.dtype != Float32 || !slices.Equal(x.shape, y.shape) {
		panic(fmt.Sprintf("tensor.AddInPlace: adding %v to %v (%s)", x.Shape(), y.Shape(), y.DType()))
	}
	yd := y.Data()
	for i, v := range x.Data() {
		yd[i] = v + yd[i]
	}
	return y
}

// AddRowsInPlace adds bias (as many values as y's last axis) to every row
// of y, a Float32 tensor the caller owns, and returns y: the values of
// Add(y, bias).
func AddRowsInPlace(y, bias *Tensor) *Tensor {
	if y.dtype != Float32 || y.NDim() == 0 || y.Dim(-1) != bias.Size() {
		panic(fmt.Sprintf("tensor.AddRowsInPlace: adding a bias of %d values to the rows of %v (%s)", bias.Size(), y.Shape(), y.DType()))
	}
	bd, yd := bias.Data(), y.Data()
	for r := 0; r+len(bd) <= len(yd); r += len(bd) {
		row := yd[r : r+len(bd)]
		for j, v := range bd {
			row[j] += v
		}
	}
	return y
}
