package tensor

import (
	"fmt"
	"math"
	"sync"

	"github.com/x448/float16"
)

// DType is the element type a tensor stores. Arithmetic always happens in
// float32; the 16-bit types exist so that model weights can stay in the
// format they were published in, at half the memory.
type DType uint8

const (
	// Float32 is IEEE 754 single precision, the type all computation uses.
	Float32 DType = iota
	// BFloat16 is "brain float": the top 16 bits of a float32 (8 exponent,
	// 7 mantissa bits). Same range as float32, about 3 significant digits.
	// Qwen2 checkpoints are published in this format.
	BFloat16
	// Float16 is IEEE 754 half precision (5 exponent, 10 mantissa bits):
	// more precise than bfloat16 but with a range of only ±65504.
	Float16
)

// String returns the numpy-style name of the type: "float32", "bfloat16"
// or "float16".
func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case BFloat16:
		return "bfloat16"
	case Float16:
		return "float16"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size returns the number of bytes one element occupies.
func (d DType) Size() int {
	switch d {
	case Float32:
		return 4
	case BFloat16, Float16:
		return 2
	}
	panic(fmt.Sprintf("tensor.DType.Size: unknown dtype %v", d))
}

// BF16FromFloat32 rounds f to the nearest bfloat16, ties to even, and returns
// its bits. NaN stays NaN (made quiet), ±Inf stays ±Inf, and finite values too
// large for bfloat16 become ±Inf, as IEEE rounding requires.
func BF16FromFloat32(f float32) uint16 {
	bits := math.Float32bits(f)
	if f != f {
		// Plain truncation could drop every set payload bit and turn the
		// NaN into Inf, so keep the top bits and force the quiet bit.
		return uint16(bits>>16) | 0x0040
	}
	// bfloat16 is the top half of a float32, so rounding is integer
	// arithmetic on the bits: adding 0x7FFF rounds up anything above the
	// halfway point, and adding the lowest kept bit as well breaks exact
	// ties towards an even result. A carry out of the mantissa correctly
	// bumps the exponent (and the largest finite values round up to Inf).
	lsb := (bits >> 16) & 1
	return uint16((bits + 0x7FFF + lsb) >> 16)
}

// BF16ToFloat32 widens a bfloat16 to float32. It is exact: the bfloat16 bits
// simply become the top half of the float32.
func BF16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// F16FromFloat32 rounds f to the nearest IEEE float16, ties to even, and
// returns its bits. Values beyond ±65504 become ±Inf.
func F16FromFloat32(f float32) uint16 {
	return float16.Fromfloat32(f).Bits()
}

// F16ToFloat32 widens an IEEE float16 to float32 (exactly).
func F16ToFloat32(h uint16) float32 {
	return float16.Frombits(h).Float32()
}

// f16Table maps every float16 bit pattern to its float32 value. Widening
// float16 bit-by-bit needs branches (subnormals, NaN); for the large, hot
// conversions of weight matrices a 256 KiB lookup table is much faster.
var f16Table = sync.OnceValue(func() []float32 {
	t := make([]float32, 1<<16)
	for i := range t {
		t[i] = F16ToFloat32(uint16(i))
	}
	return t
})

// widen converts 16-bit words of type dt into float32, writing
// dst[i] = value(src[i]) for every i < len(dst), with the active kernels
// (see fastpath.go).
func widen(dst []float32, src []uint16, dt DType) {
	active.widen(dst, src, dt)
}

// widenPortable is widen in plain Go.
func widenPortable(dst []float32, src []uint16, dt DType) {
	src = src[:len(dst)]
	switch dt {
	case BFloat16:
		for i, b := range src {
			dst[i] = math.Float32frombits(uint32(b) << 16)
		}
	case Float16:
		table := f16Table()
		for i, h := range src {
			dst[i] = table[h]
		}
	default:
		panic(fmt.Sprintf("tensor: cannot widen from %v", dt))
	}
}

// AsFloat32 returns t in float32: t itself when it already is (or is
// nil), else AsType's widened copy. A model that reads a small 16-bit
// tensor (a norm's weights, a bias) at every step widens it once with this,
// since Data makes a new float32 slice of a 16-bit tensor at every call.
func AsFloat32(t *Tensor) *Tensor {
	if t == nil || t.dtype == Float32 {
		return t
	}
	return AsType(t, Float32)
}

// AsType converts t to dtype dt and returns a new tensor (a copy even when
// t already has that dtype, so the result never aliases t). Narrowing rounds
// to nearest, ties to even.
func AsType(t *Tensor, dt DType) *Tensor {
	if t.dtype == dt {
		return t.Clone()
	}
	out := &Tensor{shape: t.Shape(), dtype: dt}
	src := t.Data() // float32: shared slice; 16-bit: already a widened copy
	switch dt {
	case Float32:
		out.f32 = src // t is 16-bit here, so Data made a fresh copy
	case BFloat16, Float16:
		out.u16 = make([]uint16, len(src))
		narrow := BF16FromFloat32
		if dt == Float16 {
			narrow = F16FromFloat32
		}
		parallelFor(len(src), elementwiseGrain, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				out.u16[i] = narrow(src[i])
			}
		})
	default:
		panic(fmt.Sprintf("tensor.AsType: unknown dtype %v", dt))
	}
	return out
}
