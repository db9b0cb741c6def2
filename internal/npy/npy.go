// Package npy reads the NumPy .npy files that refgen writes into testdata/.
//
// It wraps github.com/sbinet/npyio for the header and the payload and returns the
// array together with its shape, so tests can build tensors from fixtures. Only the
// dtypes refgen is allowed to write are accepted: float32, int64, uint32 and bool,
// little-endian and C order.
package npy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"

	"github.com/sbinet/npyio"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Array is one decoded .npy file. Exactly one of the data slices is set,
// according to DType ("float32", "int64", "uint32" or "bool").
type Array struct {
	Shape   []int
	DType   string
	Float32 []float32
	Int64   []int64
	Uint32  []uint32
	Bool    []bool
}

// ReadFile decodes the .npy file at path.
func ReadFile(path string) (*Array, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := npyio.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("npy: %s: %w", path, err)
	}
	d := r.Header.Descr
	if d.Fortran {
		return nil, fmt.Errorf("npy: %s: Fortran-ordered arrays are not supported", path)
	}
	a := &Array{Shape: append([]int{}, d.Shape...)}
	switch d.Type {
	case "<f4":
		a.DType = "float32"
		err = r.Read(&a.Float32)
	case "<i8":
		a.DType = "int64"
		err = r.Read(&a.Int64)
	case "<u4":
		a.DType = "uint32"
		err = r.Read(&a.Uint32)
	case "|b1":
		a.DType = "bool"
		err = r.Read(&a.Bool)
	default:
		return nil, fmt.Errorf("npy: %s: dtype %q is not one of float32, int64, uint32, bool", path, d.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("npy: %s: reading %s data: %w", path, a.DType, err)
	}
	// npyio fills a short payload with zeros instead of failing, so check that
	// the file is exactly header + payload.
	if want := headerLen(raw) + size(a.Shape)*itemSize(a.DType); len(raw) != want {
		return nil, fmt.Errorf("npy: %s: header shape %v needs a %d-byte file, it has %d bytes", path, a.Shape, want, len(raw))
	}
	return a, nil
}

// Len is the number of elements actually decoded.
func (a *Array) Len() int {
	return len(a.Float32) + len(a.Int64) + len(a.Uint32) + len(a.Bool)
}

// Tensor converts the array to a float32 tensor of the same shape. Integers must
// be exactly representable in float32 (|v| <= 2^24); booleans become 1 and 0.
func (a *Array) Tensor() (*tensor.Tensor, error) {
	out := make([]float32, a.Len())
	switch a.DType {
	case "float32":
		copy(out, a.Float32)
	case "int64":
		for i, v := range a.Int64 {
			if v > 1<<24 || v < -(1<<24) {
				return nil, fmt.Errorf("npy: int64 value %d at flat index %d is not exact in float32", v, i)
			}
			out[i] = float32(v)
		}
	case "uint32":
		for i, v := range a.Uint32 {
			if v > 1<<24 {
				return nil, fmt.Errorf("npy: uint32 value %d at flat index %d is not exact in float32", v, i)
			}
			out[i] = float32(v)
		}
	case "bool":
		for i, v := range a.Bool {
			if v {
				out[i] = 1
			}
		}
	}
	return tensor.New(out, a.Shape...), nil
}

// Ints returns integer data (int64 or uint32 arrays) as []int.
func (a *Array) Ints() ([]int, error) {
	switch a.DType {
	case "int64":
		out := make([]int, len(a.Int64))
		for i, v := range a.Int64 {
			out[i] = int(v)
		}
		return out, nil
	case "uint32":
		out := make([]int, len(a.Uint32))
		for i, v := range a.Uint32 {
			out[i] = int(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("npy: %s array is not an integer array", a.DType)
}

// headerLen is the offset of the payload: magic (6), version (2), a header
// length of 2 bytes (format 1.0) or 4 bytes (2.0 and 3.0), then the header.
func headerLen(raw []byte) int {
	if len(raw) < 10 {
		return len(raw)
	}
	if raw[6] == 1 {
		return 10 + int(binary.LittleEndian.Uint16(raw[8:10]))
	}
	if len(raw) < 12 {
		return len(raw)
	}
	return 12 + int(binary.LittleEndian.Uint32(raw[8:12]))
}

func itemSize(dtype string) int {
	switch dtype {
	case "int64":
		return 8
	case "bool":
		return 1
	}
	return 4
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
