package devtensor

import (
	"fmt"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
)

// Vector is a 1-D weight resident on the device, such as an RMSNorm weight
// or a projection's bias, held as float32. Such vectors are a few thousand
// values per layer, so widening them once costs nothing worth saving, and a
// bf16, f16 or f32 checkpoint gives exactly the values the CPU uses.
type Vector struct {
	Buf *kernels.Buffer
	Len int
}

// UploadVector copies a 1-D tensor of any float dtype to the device as
// float32, once.
func UploadVector(dev *kernels.Device, t *tensor.Tensor) (*Vector, error) {
	if t.NDim() != 1 || t.Dim(0) == 0 {
		return nil, fmt.Errorf("UploadVector: want a non-empty 1-D tensor, got %v %v", t.DType(), t.Shape())
	}
	if err := CheckFits(dev, 4*int64(t.Dim(0))); err != nil {
		return nil, fmt.Errorf("UploadVector %v: %w", t.Shape(), err)
	}
	b, err := kernels.Upload(dev, t.Data())
	if err != nil {
		return nil, err
	}
	return &Vector{Buf: b, Len: t.Dim(0)}, nil
}

// Free releases the vector's device memory.
func (v *Vector) Free() error { return v.Buf.Free() }
