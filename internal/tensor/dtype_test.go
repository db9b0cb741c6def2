package tensor

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDTypeStringAndSize(t *testing.T) {
	tests := []struct {
		dt   DType
		name string
		size int
	}{
		{Float32, "float32", 4},
		{BFloat16, "bfloat16", 2},
		{Float16, "float16", 2},
	}
	for _, tc := range tests {
		require.Equal(t, tc.name, tc.dt.String())
		require.Equal(t, tc.size, tc.dt.Size())
	}
	require.Equal(t, "DType(9)", DType(9).String())
}

func TestBF16FromFloat32Rounding(t *testing.T) {
	f := math.Float32frombits
	tests := []struct {
		name string
		in   float32
		want uint16
	}{
		{"one is exact", 1, 0x3F80},
		{"minus two is exact", -2, 0xC000},
		{"zero", 0, 0x0000},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000},
		{"below half rounds down", f(0x3F807FFF), 0x3F80},
		{"above half rounds up", f(0x3F808001), 0x3F81},
		{"tie rounds to even (down)", f(0x3F808000), 0x3F80},
		{"tie rounds to even (up)", f(0x3F818000), 0x3F82},
		{"negative tie rounds to even", f(0xBF818000), 0xBF82},
		{"carry into exponent", f(0x3FFFFFFF), 0x4000},
		{"+Inf", float32(math.Inf(1)), 0x7F80},
		{"-Inf", float32(math.Inf(-1)), 0xFF80},
		{"max float32 overflows to Inf", math.MaxFloat32, 0x7F80},
		{"subnormal is exact", f(0x00010000), 0x0001},
		{"subnormal rounds to even", f(0x00018000), 0x0002},
		{"smallest subnormal rounds to zero", f(0x00000001), 0x0000},
		{"subnormal rounds up to the smallest normal", f(0x007FFFFF), 0x0080},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equalf(t, tc.want, BF16FromFloat32(tc.in), "got %#04x", BF16FromFloat32(tc.in))
		})
	}
}

func TestBF16NaNStaysNaN(t *testing.T) {
	// A NaN whose payload lives only in the low 16 bits would become Inf
	// under plain truncation or rounding.
	for _, bits := range []uint32{0x7FC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF} {
		got := BF16FromFloat32(math.Float32frombits(bits))
		back := BF16ToFloat32(got)
		require.Truef(t, back != back, "%#08x became %#04x, not NaN", bits, got)
		require.NotZerof(t, got&0x0040, "%#04x is not a quiet NaN", got)
		require.Equal(t, bits>>31, uint32(got>>15), "sign kept")
	}
}

func TestBF16ToFloat32(t *testing.T) {
	require.Equal(t, float32(1), BF16ToFloat32(0x3F80))
	require.Equal(t, float32(-2), BF16ToFloat32(0xC000))
	require.True(t, math.IsInf(float64(BF16ToFloat32(0xFF80)), -1))
	// Every finite bfloat16 survives a round trip through float32.
	for b := 0; b < 1<<16; b++ {
		f := BF16ToFloat32(uint16(b))
		if f != f {
			continue
		}
		require.Equal(t, uint16(b), BF16FromFloat32(f))
	}
}

func TestF16RoundTrip(t *testing.T) {
	// Every float16 value widens exactly and narrows back to itself.
	table := f16Table()
	for h := 0; h < 1<<16; h++ {
		f := F16ToFloat32(uint16(h))
		require.Equal(t, math.Float32bits(f), math.Float32bits(table[h]), "table entry %#04x", h)
		if f != f {
			require.True(t, F16FromFloat32(f)&0x7C00 == 0x7C00 && F16FromFloat32(f)&0x03FF != 0, "NaN stays NaN")
			continue
		}
		require.Equal(t, uint16(h), F16FromFloat32(f), "round trip of %#04x", h)
	}
}

func TestF16Rounding(t *testing.T) {
	tests := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3C00},
		{65504, 0x7BFF},                 // largest finite float16
		{65520, 0x7C00},                 // rounds up to +Inf
		{1 + 1.0/2048, 0x3C00},          // tie between 1 and 1+2⁻¹⁰ goes to even (1)
		{1 + 3.0/2048, 0x3C02},          // tie goes to even (1+2⁻⁹)
		{5.960464477539063e-08, 0x0001}, // smallest subnormal
	}
	for _, tc := range tests {
		require.Equalf(t, tc.want, F16FromFloat32(tc.in), "F16FromFloat32(%v)", tc.in)
	}
}

func TestAsType(t *testing.T) {
	x := New([]float32{1, 1.00390625, -3.5, 1e-3}, 2, 2)

	b := AsType(x, BFloat16)
	require.Equal(t, BFloat16, b.DType())
	require.Equal(t, []int{2, 2}, b.Shape())
	require.Equal(t, []uint16{0x3F80, 0x3F80, 0xC060, BF16FromFloat32(1e-3)}, b.Bits())

	h := AsType(x, Float16)
	require.Equal(t, Float16, h.DType())
	require.Equal(t, float32(1.00390625), h.At(0, 1), "exactly representable in float16")

	back := AsType(b, Float32)
	require.Equal(t, Float32, back.DType())
	require.Equal(t, []float32{1, 1, -3.5, BF16ToFloat32(BF16FromFloat32(1e-3))}, back.Data())

	// Same dtype: a copy that does not alias the input.
	c := AsType(x, Float32)
	c.Data()[0] = 42
	require.Equal(t, float32(1), x.At(0, 0))

	c16 := AsType(b, BFloat16)
	c16.Bits()[0] = 0
	require.Equal(t, uint16(0x3F80), b.Bits()[0])
}

// AsFloat32 widens a 16-bit tensor once and hands a float32 one (or nil)
// back as it is, so that reading its values afterwards allocates nothing.
func TestAsFloat32(t *testing.T) {
	x := New([]float32{1, -3.5, 0.25}, 3)
	require.Same(t, x, AsFloat32(x))
	require.Nil(t, AsFloat32(nil))

	b := AsType(x, BFloat16)
	w := AsFloat32(b)
	require.Equal(t, Float32, w.DType())
	require.Equal(t, []int{3}, w.Shape())
	require.Equal(t, []float32{1, -3.5, 0.25}, w.Data())
	require.Zero(t, testing.AllocsPerRun(10, func() { _ = w.Data() }))
}
