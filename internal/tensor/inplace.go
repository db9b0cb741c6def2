package tensor

import "fmt"

// SetSlice copies src into dst along axis, starting at index start: afterwards
// Slice(dst, axis, start, start+src.Dim(axis)) equals src. src must have
// dst's shape except along axis. It is the one operation of the package that
// writes into an existing tensor (see the package documentation), made for
// buffers that fill up over time, such as a KV cache that receives each new
// token's keys at the position after the last.
//
// dst may be Float32 with src of any dtype (it is widened), or 16-bit with
// src of the same dtype. src must not share memory with dst. Anyone else
// holding dst, or a Reshape of it, sees the change.
func SetSlice(dst *Tensor, axis, start int, src *Tensor) {
	axis = normAxis("SetSlice", axis, len(dst.shape))
	if !sameExceptAxis(dst.shape, src.shape, axis) {
		panic(fmt.Sprintf("tensor.SetSlice: shapes %v (destination) and %v (source) differ outside axis %d", dst.shape, src.shape, axis))
	}
	n, dim := src.shape[axis], dst.shape[axis]
	if start < 0 || start+n > dim {
		panic(fmt.Sprintf("tensor.SetSlice: rows [%d, %d) do not fit axis %d of shape %v", start, start+n, axis, dst.shape))
	}
	outer, inner := outerInner(dst.shape, axis)
	switch {
	case dst.dtype == Float32:
		copyAxisRange(dst.f32, src.Data(), outer, inner, n, n, 0, dim, start)
	case src.dtype == dst.dtype:
		copyAxisRange(dst.u16, src.u16, outer, inner, n, n, 0, dim, start)
	default:
		panic(fmt.Sprintf("tensor.SetSlice: cannot store %v into a %v tensor of shape %v; convert it with AsType first", src.dtype, dst.dtype, dst.shape))
	}
}
