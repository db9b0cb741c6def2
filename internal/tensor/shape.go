package tensor

import (
	"fmt"
	"slices"
)

// element is the storage type of a tensor: float32, or the raw uint16 bits of
// a 16-bit float. Shape operations only move elements around, so they are
// written once for both and keep the dtype of their input.
type element interface{ float32 | uint16 }

// rowMajorStrides returns, for each axis, how many elements apart two
// neighbouring indices along that axis are in row-major storage.
func rowMajorStrides(shape []int) []int {
	strides := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = s
		s *= shape[i]
	}
	return strides
}

// copyStrided fills the contiguous, row-major dst of the given shape from
// src, reading the element at index (i0, i1, ...) from
// src[i0*strides[0] + i1*strides[1] + ...]. Permuted strides give a
// transpose; zero strides repeat an element, which is broadcasting.
func copyStrided[E element](dst, src []E, shape, strides []int) {
	if len(dst) == 0 {
		return
	}
	if len(shape) == 0 {
		dst[0] = src[0]
		return
	}
	last := len(shape) - 1
	n, step := shape[last], strides[last]
	rows := len(dst) / n
	// Each goroutine gets whole rows; a row's start in src is found by
	// decomposing its index, which costs O(ndim) per row, not per element.
	parallelFor(rows, max(1, elementwiseGrain/n), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			off, rem := 0, r
			for axis := last - 1; axis >= 0; axis-- {
				off += (rem % shape[axis]) * strides[axis]
				rem /= shape[axis]
			}
			row := dst[r*n : (r+1)*n]
			if step == 1 {
				copy(row, src[off:off+n])
				continue
			}
			for i := range row {
				row[i] = src[off]
				off += step
			}
		}
	})
}

// stridedCopy is copyStrided for a tensor of either storage type, producing
// a new tensor of t's dtype with the given shape.
func stridedCopy(t *Tensor, shape, strides []int) *Tensor {
	out := newTensor(t.dtype, shape)
	if t.dtype == Float32 {
		copyStrided(out.f32, t.f32, shape, strides)
	} else {
		copyStrided(out.u16, t.u16, shape, strides)
	}
	return out
}

// withShape returns a tensor that shares t's elements under a new shape.
// Tensors are always contiguous, so this is all Reshape needs to do.
func withShape(t *Tensor, shape []int) *Tensor {
	return &Tensor{shape: shape, dtype: t.dtype, f32: t.f32, u16: t.u16}
}

// Reshape returns t with a new shape holding the same number of elements.
// One dimension may be -1, meaning "whatever makes the sizes match". The
// result shares t's data.
func Reshape(t *Tensor, shape ...int) *Tensor {
	shape = slices.Clone(shape)
	infer, known := -1, 1
	for i, d := range shape {
		switch {
		case d == -1 && infer >= 0:
			panic(fmt.Sprintf("tensor.Reshape: shape %v has more than one -1", shape))
		case d == -1:
			infer = i
		case d < 0:
			panic(fmt.Sprintf("tensor.Reshape: invalid dimension %d in shape %v", d, shape))
		default:
			known *= d
		}
	}
	if infer >= 0 {
		if known == 0 || t.Size()%known != 0 {
			panic(fmt.Sprintf("tensor.Reshape: cannot reshape %v into %v", t.shape, shape))
		}
		shape[infer] = t.Size() / known
	}
	if numel("Reshape", shape) != t.Size() {
		panic(fmt.Sprintf("tensor.Reshape: cannot reshape %v into %v", t.shape, shape))
	}
	return withShape(t, shape)
}

// Flatten merges the axes start … end (inclusive; negative axes count from
// the end) into one, keeping the axes before and after as they are. It is
// the Reshape you can write without knowing how many leading axes t has:
// Flatten(x, -2, -1) turns N.. x H x D into N.. x H·D, whatever N.. is. The
// result shares t's data.
func Flatten(t *Tensor, start, end int) *Tensor {
	start = normAxis("Flatten", start, len(t.shape))
	end = normAxis("Flatten", end, len(t.shape))
	if start > end {
		panic(fmt.Sprintf("tensor.Flatten: axis %d comes after axis %d in shape %v", start, end, t.shape))
	}
	merged := 1
	for _, d := range t.shape[start : end+1] {
		merged *= d
	}
	shape := slices.Concat(t.shape[:start], []int{merged}, t.shape[end+1:])
	return withShape(t, shape)
}

// Unflatten splits one axis into several, keeping the other axes as they
// are: Unflatten(x, -1, H, D) turns N.. x H·D into N.. x H x D, whatever
// N.. is. It undoes Flatten. One size may be -1, inferred from the others.
// The result shares t's data.
func Unflatten(t *Tensor, axis int, sizes ...int) *Tensor {
	axis = normAxis("Unflatten", axis, len(t.shape))
	if len(sizes) == 0 {
		panic(fmt.Sprintf("tensor.Unflatten: no sizes to split axis %d of shape %v into", axis, t.shape))
	}
	sizes = slices.Clone(sizes)
	dim := t.shape[axis]
	infer, known := -1, 1
	for i, d := range sizes {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			panic(fmt.Sprintf("tensor.Unflatten: invalid sizes %v (one -1 at most, no other negative)", sizes))
		default:
			known *= d
		}
	}
	if infer >= 0 && known != 0 && dim%known == 0 {
		sizes[infer] = dim / known
		known = dim
	}
	if known != dim || (infer >= 0 && sizes[infer] < 0) {
		panic(fmt.Sprintf("tensor.Unflatten: cannot split axis %d (size %d) of shape %v into %v", axis, dim, t.shape, sizes))
	}
	shape := slices.Concat(t.shape[:axis], sizes, t.shape[axis+1:])
	return withShape(t, shape)
}

// Transpose permutes the axes of t: axis i of the result is axis perm[i] of
// t. With no perm the axes are reversed (a matrix transpose for 2-D input).
// Negative axes count from the end. The result is a new, contiguous tensor.
func Transpose(t *Tensor, perm ...int) *Tensor {
	nd := len(t.shape)
	if len(perm) == 0 {
		perm = make([]int, nd)
		for i := range perm {
			perm[i] = nd - 1 - i
		}
	}
	if len(perm) != nd {
		panic(fmt.Sprintf("tensor.Transpose: permutation %v does not match shape %v", perm, t.shape))
	}
	seen := make([]bool, nd)
	inStrides := rowMajorStrides(t.shape)
	shape := make([]int, nd)
	strides := make([]int, nd)
	for i, p := range perm {
		if p < -nd || p >= nd || seen[(p+nd)%nd] {
			panic(fmt.Sprintf("tensor.Transpose: %v is not a permutation of the axes of shape %v", perm, t.shape))
		}
		p = (p + nd) % nd
		seen[p] = true
		shape[i] = t.shape[p]
		strides[i] = inStrides[p]
	}
	return stridedCopy(t, shape, strides)
}

// SwapAxes exchanges two axes of t (negative axes count from the end),
// for example turning [batch, seq, heads, dim] into [batch, heads, seq, dim].
func SwapAxes(t *Tensor, a, b int) *Tensor {
	a = normAxis("SwapAxes", a, len(t.shape))
	b = normAxis("SwapAxes", b, len(t.shape))
	perm := make([]int, len(t.shape))
	for i := range perm {
		perm[i] = i
	}
	perm[a], perm[b] = perm[b], perm[a]
	return Transpose(t, perm...)
}

// outerInner splits shape around axis: the result can be seen as an
// [outer, shape[axis], inner] array, which is how every single-axis
// operation (slicing, concatenation, reductions) walks its data.
func outerInner(shape []int, axis int) (outer, inner int) {
	outer, inner = 1, 1
	for _, d := range shape[:axis] {
		outer *= d
	}
	for _, d := range shape[axis+1:] {
		inner *= d
	}
	return outer, inner
}

// copyAxisRange copies, for every outer index, the block of n rows of length
// inner starting at row srcStart of src (srcDim rows per outer index) into
// dst at row dstStart (dstDim rows per outer index).
func copyAxisRange[E element](dst, src []E, outer, inner, n, srcDim, srcStart, dstDim, dstStart int) {
	for o := 0; o < outer; o++ {
		s := (o*srcDim + srcStart) * inner
		d := (o*dstDim + dstStart) * inner
		copy(dst[d:d+n*inner], src[s:s+n*inner])
	}
}

// Slice returns the elements with index in [start, end) along axis, as a new
// tensor. A negative axis counts from the end; start and end must satisfy
// 0 <= start <= end <= t.Dim(axis).
func Slice(t *Tensor, axis, start, end int) *Tensor {
	axis = normAxis("Slice", axis, len(t.shape))
	dim := t.shape[axis]
	if start < 0 || end < start || end > dim {
		panic(fmt.Sprintf("tensor.Slice: range [%d, %d) out of bounds for axis %d of shape %v", start, end, axis, t.shape))
	}
	shape := t.Shape()
	shape[axis] = end - start
	out := newTensor(t.dtype, shape)
	outer, inner := outerInner(t.shape, axis)
	if t.dtype == Float32 {
		copyAxisRange(out.f32, t.f32, outer, inner, end-start, dim, start, end-start, 0)
	} else {
		copyAxisRange(out.u16, t.u16, outer, inner, end-start, dim, start, end-start, 0)
	}
	return out
}

// Concat joins tensors along an existing axis. All inputs must have the same
// dtype and the same shape except along axis.
func Concat(axis int, ts ...*Tensor) *Tensor {
	if len(ts) == 0 {
		panic("tensor.Concat: no tensors")
	}
	first := ts[0]
	axis = normAxis("Concat", axis, len(first.shape))
	shape := first.Shape()
	shape[axis] = 0
	for _, t := range ts {
		if t.dtype != first.dtype {
			panic(fmt.Sprintf("tensor.Concat: dtypes %v and %v differ", first.dtype, t.dtype))
		}
		if !sameExceptAxis(first.shape, t.shape, axis) {
			panic(fmt.Sprintf("tensor.Concat: shapes %v and %v differ outside axis %d", first.shape, t.shape, axis))
		}
		shape[axis] += t.shape[axis]
	}
	out := newTensor(first.dtype, shape)
	outer, inner := outerInner(shape, axis)
	at := 0
	for _, t := range ts {
		n := t.shape[axis]
		if t.dtype == Float32 {
			copyAxisRange(out.f32, t.f32, outer, inner, n, n, 0, shape[axis], at)
		} else {
			copyAxisRange(out.u16, t.u16, outer, inner, n, n, 0, shape[axis], at)
		}
		at += n
	}
	return out
}

func sameExceptAxis(a, b []int, axis int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if i != axis && a[i] != b[i] {
			return false
		}
	}
	return true
}

// Stack joins tensors of identical shape along a new axis, so stacking n
// tensors of shape [3 4] on axis 0 gives [n 3 4]. axis may be -1 for a new
// last axis.
func Stack(axis int, ts ...*Tensor) *Tensor {
	if len(ts) == 0 {
		panic("tensor.Stack: no tensors")
	}
	axis = normAxis("Stack", axis, len(ts[0].shape)+1)
	expanded := make([]*Tensor, len(ts))
	for i, t := range ts {
		if !slices.Equal(t.shape, ts[0].shape) {
			panic(fmt.Sprintf("tensor.Stack: shapes %v and %v differ", ts[0].shape, t.shape))
		}
		expanded[i] = ExpandDims(t, axis)
	}
	return Concat(axis, expanded...)
}

// Split cuts t along axis into consecutive pieces of the given sizes, which
// must add up to t.Dim(axis). It is the inverse of Concat.
func Split(t *Tensor, axis int, sizes ...int) []*Tensor {
	axis = normAxis("Split", axis, len(t.shape))
	total := 0
	for _, s := range sizes {
		if s < 0 {
			panic(fmt.Sprintf("tensor.Split: negative size in %v", sizes))
		}
		total += s
	}
	if total != t.shape[axis] {
		panic(fmt.Sprintf("tensor.Split: sizes %v add up to %d, but axis %d of shape %v has %d", sizes, total, axis, t.shape, t.shape[axis]))
	}
	out := make([]*Tensor, len(sizes))
	start := 0
	for i, s := range sizes {
		out[i] = Slice(t, axis, start, start+s)
		start += s
	}
	return out
}

// ExpandDims inserts a new axis of size 1 at position axis (which may equal
// NDim, or be negative: -1 appends). The result shares t's data.
func ExpandDims(t *Tensor, axis int) *Tensor {
	axis = normAxis("ExpandDims", axis, len(t.shape)+1)
	shape := slices.Insert(t.Shape(), axis, 1)
	return withShape(t, shape)
}

// Squeeze removes an axis of size 1. The result shares t's data.
func Squeeze(t *Tensor, axis int) *Tensor {
	axis = normAxis("Squeeze", axis, len(t.shape))
	if t.shape[axis] != 1 {
		panic(fmt.Sprintf("tensor.Squeeze: axis %d of shape %v has size %d, not 1", axis, t.shape, t.shape[axis]))
	}
	shape := slices.Delete(t.Shape(), axis, axis+1)
	return withShape(t, shape)
}

// BroadcastShapes returns the shape that arrays of shapes a and b broadcast
// to under numpy rules: align the shapes at their last axis; each pair of
// dimensions must be equal or contain a 1, which stretches to match.
func BroadcastShapes(a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 1; i <= n; i++ {
		da, db := 1, 1
		if i <= len(a) {
			da = a[len(a)-i]
		}
		if i <= len(b) {
			db = b[len(b)-i]
		}
		switch {
		case da == db || db == 1:
			out[n-i] = da
		case da == 1:
			out[n-i] = db
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// broadcastStrides returns strides for reading a tensor of shape `shape` as
// if it had shape `to` (which it must broadcast to): stretched axes, and
// the missing leading ones, get stride 0 so the same element is reread.
func broadcastStrides(shape, to []int) []int {
	strides := make([]int, len(to))
	inner := rowMajorStrides(shape)
	lead := len(to) - len(shape)
	for i := range shape {
		if shape[i] != 1 {
			strides[lead+i] = inner[i]
		}
	}
	return strides
}

// BroadcastTo returns t stretched to shape by numpy broadcasting rules,
// as a new tensor with the elements repeated.
func BroadcastTo(t *Tensor, shape ...int) *Tensor {
	got, err := BroadcastShapes(t.shape, shape)
	if err != nil || !slices.Equal(got, shape) {
		panic(fmt.Sprintf("tensor.BroadcastTo: cannot broadcast %v to %v", t.shape, shape))
	}
	shape = slices.Clone(shape)
	return stridedCopy(t, shape, broadcastStrides(t.shape, shape))
}
