package tensor

import (
	"math"
)

// binary applies f to every pair of elements of a and b, broadcast together
// by numpy rules, and returns the Float32 result. Any input dtype is widened.
//
// The element function is passed as a closure for readability; the indirect
// call costs a nanosecond or two per element, which is noise next to the
// matrix products that dominate a transformer.
func binary(op string, a, b *Tensor, f func(x, y float32) float32) *Tensor {
	return binaryArith(op, opOther, a, b, f)
}

// binaryArith is binary for an operation that may be one of the four
// arithmetic ones, which run without a call per element (see applyRow).
func binaryArith(op string, kind arith, a, b *Tensor, f func(x, y float32) float32) *Tensor {
	shape, err := BroadcastShapes(a.shape, b.shape)
	if err != nil {
		panic("tensor." + op + ": " + err.Error())
	}
	out := newTensor(Float32, shape)
	dst, x, y := out.f32, a.Data(), b.Data()
	n := len(dst)
	if n == 0 {
		return out
	}
	// Fast paths for the overwhelmingly common layouts: equal shapes (an
	// input as large as the output is laid out exactly like it) and a
	// single-element operand.
	switch {
	case len(x) == n && len(y) == n:
		parallelFor(n, elementwiseGrain, func(lo, hi int) {
			applyRow(kind, f, dst[lo:hi], x[lo:hi], y[lo:hi], 1, 1)
		})
		return out
	case len(x) == n && len(y) == 1:
		parallelFor(n, elementwiseGrain, func(lo, hi int) {
			applyRow(kind, f, dst[lo:hi], x[lo:hi], y, 1, 0)
		})
		return out
	case len(x) == 1 && len(y) == n:
		parallelFor(n, elementwiseGrain, func(lo, hi int) {
			applyRow(kind, f, dst[lo:hi], x, y[lo:hi], 0, 1)
		})
		return out
	}
	// General broadcasting: walk the output one row (last axis) at a time.
	// Each input is read with its broadcast strides, so a stretched axis
	// has stride 0 and rereads the same elements.
	sa := broadcastStrides(a.shape, shape)
	sb := broadcastStrides(b.shape, shape)
	last := len(shape) - 1
	cols := shape[last]
	stepA, stepB := sa[last], sb[last]
	parallelFor(n/cols, max(1, elementwiseGrain/cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			ia, ib, rem := 0, 0, r
			for axis := last - 1; axis >= 0; axis-- {
				i := rem % shape[axis]
				rem /= shape[axis]
				ia += i * sa[axis]
				ib += i * sb[axis]
			}
			applyRow(kind, f, dst[r*cols:(r+1)*cols], x[ia:], y[ib:], stepA, stepB)
		}
	})
	return out
}

// Add returns a + b elementwise, with broadcasting.
func Add(a, b *Tensor) *Tensor {
	return binaryArith("Add", opAdd, a, b, func(x, y float32) float32 { return x + y })
}

// Sub returns a - b elementwise, with broadcasting.
func Sub(a, b *Tensor) *Tensor {
	return binaryArith("Sub", opSub, a, b, func(x, y float32) float32 { return x - y })
}

// Mul returns a * b elementwise, with broadcasting.
func Mul(a, b *Tensor) *Tensor {
	return binaryArith("Mul", opMul, a, b, func(x, y float32) float32 { return x * y })
}

// Div returns a / b elementwise, with broadcasting. Division by zero gives
// ±Inf or NaN, as in IEEE arithmetic.
func Div(a, b *Tensor) *Tensor {
	return binaryArith("Div", opDiv, a, b, func(x, y float32) float32 { return x / y })
}

// Maximum returns the elementwise larger of a and b, with broadcasting.
// NaN in either input gives NaN, as in numpy.
func Maximum(a, b *Tensor) *Tensor {
	return binary("Maximum", a, b, func(x, y float32) float32 {
		if x > y || x != x {
			return x
		}
		return y
	})
}

// Minimum returns the elementwise smaller of a and b, with broadcasting.
// NaN in either input gives NaN, as in numpy.
func Minimum(a, b *Tensor) *Tensor {
	return binary("Minimum", a, b, func(x, y float32) float32 {
		if x < y || x != x {
			return x
		}
		return y
	})
}

// The scalar forms below are the binary operations with a one-element
// operand: they share its loops (no function call per element), and
// AddScalar(t, s) gives exactly the numbers of Add(t, Scalar(s)).

// AddScalar returns t + s elementwise, for example the epsilon of a norm.
func AddScalar(t *Tensor, s float32) *Tensor {
	return binaryArith("AddScalar", opAdd, t, Scalar(s), func(x, y float32) float32 { return x + y })
}

// SubScalar returns t - s elementwise.
func SubScalar(t *Tensor, s float32) *Tensor {
	return binaryArith("SubScalar", opSub, t, Scalar(s), func(x, y float32) float32 { return x - y })
}

// MulScalar returns t * s elementwise, for example attention scores times
// their scale.
func MulScalar(t *Tensor, s float32) *Tensor {
	return binaryArith("MulScalar", opMul, t, Scalar(s), func(x, y float32) float32 { return x * y })
}

// DivScalar returns t / s elementwise, for example logits divided by a
// sampling temperature. It divides, rather than multiplying by 1/s, so the
// result is the correctly rounded quotient; s = 0 gives ±Inf or NaN.
func DivScalar(t *Tensor, s float32) *Tensor {
	return binaryArith("DivScalar", opDiv, t, Scalar(s), func(x, y float32) float32 { return x / y })
}

// PowScalar returns tᵖ elementwise, computed in float64 as math.Pow does
// (so a negative base with a non-integer p is NaN). Square and Sqrt are
// the common cases and cheaper.
func PowScalar(t *Tensor, p float32) *Tensor {
	e := float64(p)
	return Map(t, func(x float32) float32 { return float32(math.Pow(float64(x), e)) })
}

// Map returns a Float32 tensor of t's shape with f applied to every element.
// Large tensors are processed in parallel, so f must be safe to call from
// several goroutines at once (pure functions are).
func Map(t *Tensor, f func(float32) float32) *Tensor {
	out := newTensor(Float32, t.Shape())
	src, dst := t.Data(), out.f32
	parallelFor(len(dst), elementwiseGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst[i] = f(src[i])
		}
	})
	return out
}

// mapSlices is Map for a function that processes a whole slice at a time,
// such as a vector kernel: each worker hands it one contiguous range.
func mapSlices(t *Tensor, f func(dst, src []float32)) *Tensor {
	out := newTensor(Float32, t.Shape())
	src, dst := t.Data(), out.f32
	parallelFor(len(dst), elementwiseGrain, func(lo, hi int) {
		f(dst[lo:hi], src[lo:hi])
	})
	return out
}

// Most math functions below go through float64 because Go's math package
// only has float64 versions. Widening the input is exact, and computing in
// float64 then rounding once to float32 is as accurate as float32 gets.

// Neg returns -t elementwise.
func Neg(t *Tensor) *Tensor { return Map(t, func(x float32) float32 { return -x }) }

// Exp returns eˣ elementwise. It and Sigmoid are the math functions here
// with vector kernels (see kernelSet.exp), within 2 units in the last place
// of the correctly rounded result; softmax spends its time in it.
func Exp(t *Tensor) *Tensor { return mapSlices(t, active.exp) }

// Log returns the natural logarithm elementwise (-Inf for 0, NaN below 0).
func Log(t *Tensor) *Tensor {
	return Map(t, func(x float32) float32 { return float32(math.Log(float64(x))) })
}

// Sqrt returns the square root elementwise.
func Sqrt(t *Tensor) *Tensor {
	return Map(t, func(x float32) float32 { return float32(math.Sqrt(float64(x))) })
}

// Rsqrt returns 1/√x elementwise, the normalising factor of RMSNorm.
func Rsqrt(t *Tensor) *Tensor {
	return Map(t, func(x float32) float32 { return float32(1 / math.Sqrt(float64(x))) })
}

// Square returns x² elementwise.
func Square(t *Tensor) *Tensor { return Map(t, func(x float32) float32 { return x * x }) }

// Abs returns |x| elementwise.
func Abs(t *Tensor) *Tensor {
	return Map(t, func(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) })
}

// Tanh returns the hyperbolic tangent elementwise.
func Tanh(t *Tensor) *Tensor {
	return Map(t, func(x float32) float32 { return float32(math.Tanh(float64(x))) })
}

// Sigmoid returns 1/(1+e⁻ˣ) elementwise (SiLU, used by Qwen2's MLP, is
// x·sigmoid(x)). For very negative x, e⁻ˣ overflows to +Inf and the result
// is correctly 0. Like Exp, it has a vector kernel.
func Sigmoid(t *Tensor) *Tensor { return mapSlices(t, active.sigmoid) }

// Sin returns the sine elementwise (radians); used by rotary embeddings.
func Sin(t *Tensor) *Tensor {
	return Map(t, func(x float32) float32 { return float32(math.Sin(float64(x))) })
}

// Cos returns the cosine elementwise (radians); used by rotary embeddings.
func Cos(t *Tensor) *Tensor {
	return Map(t, func(x float32) float32 { return float32(math.Cos(float64(x))) })
}

// boolFloat encodes a comparison result the way comparisons return it.
func boolFloat(b bool) float32 {
	if b {
		return 1
	}
	return 0
}

// Greater returns 1 where a > b and 0 elsewhere, with broadcasting.
func Greater(a, b *Tensor) *Tensor {
	return binary("Greater", a, b, func(x, y float32) float32 { return boolFloat(x > y) })
}

// GreaterEqual returns 1 where a >= b and 0 elsewhere, with broadcasting.
func GreaterEqual(a, b *Tensor) *Tensor {
	return binary("GreaterEqual", a, b, func(x, y float32) float32 { return boolFloat(x >= y) })
}

// Less returns 1 where a < b and 0 elsewhere, with broadcasting.
func Less(a, b *Tensor) *Tensor {
	return binary("Less", a, b, func(x, y float32) float32 { return boolFloat(x < y) })
}

// LessEqual returns 1 where a <= b and 0 elsewhere, with broadcasting.
func LessEqual(a, b *Tensor) *Tensor {
	return binary("LessEqual", a, b, func(x, y float32) float32 { return boolFloat(x <= y) })
}

// Equal returns 1 where a == b and 0 elsewhere, with broadcasting.
// NaN equals nothing, itself included.
func Equal(a, b *Tensor) *Tensor {
	return binary("Equal", a, b, func(x, y float32) float32 { return boolFloat(x == y) })
}

// Where picks a where cond is non-zero and b elsewhere; the three inputs
// broadcast together. A typical use is the causal mask:
// Where(mask, scores, Scalar(-Inf)).
func Where(cond, a, b *Tensor) *Tensor {
	ab, err := BroadcastShapes(a.shape, b.shape)
	if err != nil {
		panic("tensor.Where: " + err.Error())
	}
	shape, err := BroadcastShapes(cond.shape, ab)
	if err != nil {
		panic("tensor.Where: " + err.Error())
	}
	// Three-way broadcasting is rare enough that materialising the inputs
	// at full size is worth the simpler loop.
	c := BroadcastTo(cond, shape...).Data()
	x := BroadcastTo(a, shape...).Data()
	y := BroadcastTo(b, shape...).Data()
	out := newTensor(Float32, shape)
	dst := out.f32
	parallelFor(len(dst), elementwiseGrain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if c[i] != 0 {
				dst[i] = x[i]
			} else {
				dst[i] = y[i]
			}
		}
	})
	return out
}
