package tensor

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestScalarOps(t *testing.T) {
	x := New([]float32{-2, -0.5, 0, 1, 4}, 5)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		name string
		got  *Tensor
		want []float32
	}{
		{"AddScalar", AddScalar(x, 1), []float32{-1, 0.5, 1, 2, 5}},
		{"SubScalar", SubScalar(x, 1), []float32{-3, -1.5, -1, 0, 3}},
		{"MulScalar", MulScalar(x, -2), []float32{4, 1, 0, -2, -8}},
		{"DivScalar", DivScalar(x, 4), []float32{-0.5, -0.125, 0, 0.25, 1}},
		{"DivScalar by 0", DivScalar(x, 0), []float32{-inf, -inf, nan, inf, inf}},
		{"PowScalar 2", PowScalar(x, 2), []float32{4, 0.25, 0, 1, 16}},
		{"PowScalar 3", PowScalar(x, 3), []float32{-8, -0.125, 0, 1, 64}},
		{"PowScalar 0.5", PowScalar(x, 0.5), []float32{nan, nan, 0, 1, 2}},
		{"PowScalar -1", PowScalar(x, -1), []float32{-0.5, -2, inf, 1, 0.25}},
		{"PowScalar 0", PowScalar(x, 0), []float32{1, 1, 1, 1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, x.Shape(), tc.got.Shape())
			require.Equal(t, Float32, tc.got.DType())
			requireSameFloats(t, tc.want, tc.got.Data())
		})
	}

	// DivScalar divides: 1/3 is not exactly representable, so multiplying
	// by it would round twice. 7/3 rounded once is 2.3333333.
	require.Equal(t, float32(7)/float32(3), DivScalar(Scalar(7), 3).Item())
	require.NotEqual(t, float32(7)*(float32(1)/float32(3)), DivScalar(Scalar(7), 3).Item())

	// Shapes of any rank, 16-bit inputs, and large inputs (split across
	// workers) give the same numbers as the broadcasting forms.
	require.Equal(t, []float32{0, 1, 2, 3}, SubScalar(FromBF16([]uint16{0x3F80, 0x4000, 0x4040, 0x4080}, 2, 2), 1).Data())
	big := Arange(3*elementwiseGrain).reshaped(3, elementwiseGrain)
	require.Equal(t, Sub(big, Scalar(0.5)).Data(), SubScalar(big, 0.5).Data())
	require.Equal(t, Div(big, Scalar(3)).Data(), DivScalar(big, 3).Data())
	require.Equal(t, []int{}, AddScalar(Scalar(1), 1).Shape())
	require.Equal(t, []int{0, 3}, MulScalar(Zeros(0, 3), 2).Shape())
}
