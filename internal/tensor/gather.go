package tensor

import "fmt"

// Take gathers entries of t along axis: the result has t's shape with that
// axis replaced by len(indices), and slice i of the result is slice
// indices[i] of t. With axis 0 on an embedding table [vocab, dim] this is
// the token-embedding lookup. The dtype is kept. Every index must be in
// [0, t.Dim(axis)); a bad one panics, naming it.
func Take(t *Tensor, indices []int, axis int) *Tensor {
	axis = normAxis("Take", axis, len(t.shape))
	dim := t.shape[axis]
	for i, idx := range indices {
		if idx < 0 || idx >= dim {
			panic(fmt.Sprintf("tensor.Take: index %d (position %d) out of range [0, %d) for axis %d of shape %v", idx, i, dim, axis, t.shape))
		}
	}
	shape := t.Shape()
	shape[axis] = len(indices)
	out := newTensor(t.dtype, shape)
	outer, inner := outerInner(t.shape, axis)
	for i, idx := range indices {
		if t.dtype == Float32 {
			copyAxisRange(out.f32, t.f32, outer, inner, 1, dim, idx, len(indices), i)
		} else {
			copyAxisRange(out.u16, t.u16, outer, inner, 1, dim, idx, len(indices), i)
		}
	}
	return out
}
