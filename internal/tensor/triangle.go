package tensor

import "fmt"

// Tril returns t with every element above diagonal k of its last two axes
// set to 0: element (i, j) of each matrix is kept where j - i <= k. k = 0 is
// the main diagonal, k > 0 keeps that many diagonals above it, k < 0 zeroes
// the main diagonal too. Leading axes are a batch. The dtype is kept.
//
// The elements are replaced, not multiplied by 0, so an -Inf that is
// dropped becomes 0, never NaN.
func Tril(t *Tensor, k int) *Tensor {
	// Row i keeps columns 0 … i+k.
	return triangle("Tril", t, func(i int) (lo, hi int) { return 0, i + k + 1 })
}

// Triu returns t with every element below diagonal k of its last two axes
// set to 0: element (i, j) of each matrix is kept where j - i >= k. It is the
// complement of Tril(t, k-1). A causal attention mask is one call:
//
//	Triu(Full(float32(math.Inf(-1)), L, S), S-L+1)
//
// keeps -Inf strictly above diagonal S-L, where query i may not look, and
// writes 0 everywhere else.
func Triu(t *Tensor, k int) *Tensor {
	// Row i keeps columns i+k … the end.
	return triangle("Triu", t, func(i int) (lo, hi int) { return i + k, t.Dim(-1) })
}

// triangle copies, in row i of each matrix of t, the columns [lo, hi) that
// span(i) returns (clipped to the matrix) and leaves the rest 0.
func triangle(op string, t *Tensor, span func(i int) (lo, hi int)) *Tensor {
	nd := len(t.shape)
	if nd < 2 {
		panic(fmt.Sprintf("tensor.%s: needs a matrix (at least 2 dimensions), got shape %v", op, t.shape))
	}
	rows, cols := t.shape[nd-2], t.shape[nd-1]
	out := newTensor(t.dtype, t.Shape())
	if t.dtype == Float32 {
		copyTriangle(out.f32, t.f32, rows, cols, span)
	} else {
		copyTriangle(out.u16, t.u16, rows, cols, span)
	}
	return out
}

func copyTriangle[E element](dst, src []E, rows, cols int, span func(i int) (lo, hi int)) {
	if cols == 0 {
		return
	}
	parallelFor(len(dst)/cols, max(1, elementwiseGrain/cols), func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			lo, hi := span(r % rows)
			lo, hi = max(lo, 0), min(hi, cols)
			if lo < hi {
				copy(dst[r*cols+lo:r*cols+hi], src[r*cols+lo:r*cols+hi])
			}
		}
	})
}
