package tensor

import (
	"fmt"
	"math/rand/v2"
)

// Tensor is an n-dimensional array stored contiguously in row-major order.
//
// Exactly one of f32 and u16 holds the elements, depending on dtype: f32 for
// Float32, u16 (raw bit patterns) for BFloat16 and Float16. A tensor with
// shape [] is a scalar holding one element.
//
// Tensors are not copied on assignment: two *Tensor values, or a tensor and a
// slice returned by Data, may share elements. Operations never modify their
// inputs, so sharing is only visible if you write through Data yourself or
// through SetSlice (see the package documentation for what shares).
type Tensor struct {
	shape []int
	dtype DType
	f32   []float32
	u16   []uint16
}

// elementwiseGrain is the smallest number of elements worth handing to
// another goroutine for cheap per-element work (a few nanoseconds each):
// below it, waking a worker costs more than it saves.
const elementwiseGrain = 1 << 14

// numel returns the number of elements of a tensor with the given shape
// (1 for the empty shape of a scalar). It panics on negative dimensions.
func numel(op string, shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("tensor.%s: negative dimension in shape %v", op, shape))
		}
		n *= d
	}
	return n
}

// New wraps data in a Float32 tensor of the given shape, without copying:
// the tensor and the caller share data. With no shape the tensor is 1-D.
// It panics if len(data) does not match the shape.
func New(data []float32, shape ...int) *Tensor {
	if len(shape) == 0 {
		shape = []int{len(data)}
	}
	if n := numel("New", shape); n != len(data) {
		panic(fmt.Sprintf("tensor.New: %d elements do not fit shape %v (%d elements)", len(data), shape, n))
	}
	return &Tensor{shape: append([]int(nil), shape...), dtype: Float32, f32: data}
}

// Scalar returns a 0-dimensional Float32 tensor (shape []) holding v.
func Scalar(v float32) *Tensor {
	return &Tensor{shape: []int{}, dtype: Float32, f32: []float32{v}}
}

// Zeros returns a Float32 tensor of the given shape filled with 0.
func Zeros(shape ...int) *Tensor {
	return &Tensor{shape: append([]int{}, shape...), dtype: Float32, f32: make([]float32, numel("Zeros", shape))}
}

// Ones returns a Float32 tensor of the given shape filled with 1.
func Ones(shape ...int) *Tensor {
	return Full(1, shape...)
}

// Full returns a Float32 tensor of the given shape filled with v.
func Full(v float32, shape ...int) *Tensor {
	t := Zeros(shape...)
	for i := range t.f32 {
		t.f32[i] = v
	}
	return t
}

// Arange returns the 1-D Float32 tensor [0, 1, ..., n-1].
func Arange(n int) *Tensor {
	t := Zeros(n)
	for i := range t.f32 {
		t.f32[i] = float32(i)
	}
	return t
}

// FromBF16 wraps raw bfloat16 words (for example read straight from a
// safetensors file) in a BFloat16 tensor, without copying. With no shape the
// tensor is 1-D.
func FromBF16(bits []uint16, shape ...int) *Tensor {
	return from16("FromBF16", BFloat16, bits, shape)
}

// FromF16 wraps raw IEEE float16 words in a Float16 tensor, without copying.
// With no shape the tensor is 1-D.
func FromF16(bits []uint16, shape ...int) *Tensor {
	return from16("FromF16", Float16, bits, shape)
}

func from16(op string, dt DType, bits []uint16, shape []int) *Tensor {
	if len(shape) == 0 {
		shape = []int{len(bits)}
	}
	if n := numel(op, shape); n != len(bits) {
		panic(fmt.Sprintf("tensor.%s: %d elements do not fit shape %v (%d elements)", op, len(bits), shape, n))
	}
	return &Tensor{shape: append([]int(nil), shape...), dtype: dt, u16: bits}
}

// RandN returns a Float32 tensor of samples from the standard normal
// distribution. Passing the generator explicitly keeps tests reproducible.
func RandN(rng *rand.Rand, shape ...int) *Tensor {
	t := Zeros(shape...)
	for i := range t.f32 {
		t.f32[i] = float32(rng.NormFloat64())
	}
	return t
}

// RandUniform returns a Float32 tensor of samples drawn uniformly from
// [lo, hi).
func RandUniform(rng *rand.Rand, lo, hi float32, shape ...int) *Tensor {
	t := Zeros(shape...)
	for i := range t.f32 {
		t.f32[i] = lo + (hi-lo)*rng.Float32()
	}
	return t
}

// newTensor allocates a zeroed tensor of the given dtype and shape. The shape
// slice is owned by the new tensor.
func newTensor(dt DType, shape []int) *Tensor {
	n := numel("newTensor", shape)
	t := &Tensor{shape: shape, dtype: dt}
	if dt == Float32 {
		t.f32 = make([]float32, n)
	} else {
		t.u16 = make([]uint16, n)
	}
	return t
}

// Shape returns a copy of the tensor's dimensions; changing it does not
// affect the tensor.
func (t *Tensor) Shape() []int {
	return append([]int{}, t.shape...)
}

// Dim returns the size of one axis. A negative axis counts from the end, so
// Dim(-1) is the last dimension.
func (t *Tensor) Dim(axis int) int {
	return t.shape[normAxis("Dim", axis, len(t.shape))]
}

// NDim returns the number of dimensions (0 for a scalar).
func (t *Tensor) NDim() int {
	return len(t.shape)
}

// Size returns the total number of elements.
func (t *Tensor) Size() int {
	if t.dtype == Float32 {
		return len(t.f32)
	}
	return len(t.u16)
}

// DType returns the element type.
func (t *Tensor) DType() DType {
	return t.dtype
}

// Data returns the elements in row-major order as float32. For a Float32
// tensor this is the backing slice itself (writes are visible in the
// tensor); for BFloat16 and Float16 it is a freshly widened copy.
func (t *Tensor) Data() []float32 {
	if t.dtype == Float32 {
		return t.f32
	}
	out := make([]float32, len(t.u16))
	parallelFor(len(out), elementwiseGrain, func(lo, hi int) {
		widen(out[lo:hi], t.u16[lo:hi], t.dtype)
	})
	return out
}

// Bits returns the raw 16-bit words backing a BFloat16 or Float16 tensor
// (shared, not copied). It panics for Float32 tensors.
func (t *Tensor) Bits() []uint16 {
	if t.dtype == Float32 {
		panic("tensor.Bits: tensor is float32, not a 16-bit type")
	}
	return t.u16
}

// at returns element i of the flat row-major data as float32.
func (t *Tensor) at(i int) float32 {
	switch t.dtype {
	case Float32:
		return t.f32[i]
	case BFloat16:
		return BF16ToFloat32(t.u16[i])
	default:
		return F16ToFloat32(t.u16[i])
	}
}

// At returns the element at the given index, one coordinate per axis.
// Negative coordinates count from the end of their axis.
func (t *Tensor) At(index ...int) float32 {
	if len(index) != len(t.shape) {
		panic(fmt.Sprintf("tensor.At: %d indices for a tensor of shape %v", len(index), t.shape))
	}
	flat := 0
	for axis, i := range index {
		d := t.shape[axis]
		if i < -d || i >= d {
			panic(fmt.Sprintf("tensor.At: index %v out of range for shape %v", index, t.shape))
		}
		if i < 0 {
			i += d
		}
		flat = flat*d + i
	}
	return t.at(flat)
}

// Item returns the only element of a tensor of size 1, whatever its shape.
func (t *Tensor) Item() float32 {
	if t.Size() != 1 {
		panic(fmt.Sprintf("tensor.Item: tensor of shape %v has %d elements, not 1", t.shape, t.Size()))
	}
	return t.at(0)
}

// Clone returns a deep copy of t with the same dtype.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{
		shape: t.Shape(),
		dtype: t.dtype,
		f32:   cloneSlice(t.f32),
		u16:   cloneSlice(t.u16),
	}
}

// cloneSlice copies s, keeping nil as nil so Clone preserves which of f32
// and u16 is in use.
func cloneSlice[E any](s []E) []E {
	if s == nil {
		return nil
	}
	return append(make([]E, 0, len(s)), s...)
}

// normAxis turns a possibly negative axis into an index in [0, ndim),
// panicking with the op's name if it is out of range.
func normAxis(op string, axis, ndim int) int {
	if axis < -ndim || axis >= ndim {
		panic(fmt.Sprintf("tensor.%s: axis %d out of range for a %d-D tensor", op, axis, ndim))
	}
	if axis < 0 {
		axis += ndim
	}
	return axis
}
