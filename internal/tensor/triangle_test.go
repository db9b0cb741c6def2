package tensor

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTrilTriu(t *testing.T) {
	// x[i][j] = 1 + 4i + j, so every kept element is recognisable.
	x := AddScalar(Arange(12), 1).reshaped(3, 4)
	tests := []struct {
		name string
		got  *Tensor
		want []float32
	}{
		{"Tril 0", Tril(x, 0), []float32{
			1, 0, 0, 0,
			5, 6, 0, 0,
			9, 10, 11, 0}},
		{"Tril 1", Tril(x, 1), []float32{
			1, 2, 0, 0,
			5, 6, 7, 0,
			9, 10, 11, 12}},
		{"Tril -1", Tril(x, -1), []float32{
			0, 0, 0, 0,
			5, 0, 0, 0,
			9, 10, 0, 0}},
		{"Tril far below keeps nothing", Tril(x, -3), make([]float32, 12)},
		{"Triu 0", Triu(x, 0), []float32{
			1, 2, 3, 4,
			0, 6, 7, 8,
			0, 0, 11, 12}},
		{"Triu 2", Triu(x, 2), []float32{
			0, 0, 3, 4,
			0, 0, 0, 8,
			0, 0, 0, 0}},
		{"Triu -1", Triu(x, -1), []float32{
			1, 2, 3, 4,
			5, 6, 7, 8,
			0, 10, 11, 12}},
		{"Triu far above keeps nothing", Triu(x, 4), make([]float32, 12)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, []int{3, 4}, tc.got.Shape())
			require.Equal(t, tc.want, tc.got.Data())
		})
	}

	// Leading axes are a batch: each 2 x 2 matrix is treated alike.
	b := AddScalar(Arange(8), 1).reshaped(2, 2, 2)
	require.Equal(t, []float32{1, 0, 3, 4, 5, 0, 7, 8}, Tril(b, 0).Data())
	require.Equal(t, []float32{1, 2, 0, 4, 5, 6, 0, 8}, Triu(b, 0).Data())

	// The 16-bit dtype is kept; dropped elements are +0.
	h := Triu(FromBF16([]uint16{0x3F80, 0x4000, 0x4040, 0x4080}, 2, 2), 0)
	require.Equal(t, BFloat16, h.DType())
	require.Equal(t, []uint16{0x3F80, 0x4000, 0, 0x4080}, h.Bits())

	// The input is not modified.
	require.Equal(t, float32(9), x.At(2, 0))

	require.PanicsWithValue(t, "tensor.Tril: needs a matrix (at least 2 dimensions), got shape [4]", func() { Tril(Zeros(4), 0) })
	require.PanicsWithValue(t, "tensor.Triu: needs a matrix (at least 2 dimensions), got shape []", func() { Triu(Scalar(1), 0) })
}

// TestTriuCausalMask builds the bottom-right-aligned causal mask as the
// package doc of Triu shows and compares it with the (3, 5) mask written
// out by hand: query i sees keys j <= i + S - L.
func TestTriuCausalMask(t *testing.T) {
	inf := float32(math.Inf(-1))
	tests := []struct {
		l, s int
		want []float32
	}{
		{3, 3, []float32{
			0, inf, inf,
			0, 0, inf,
			0, 0, 0}},
		{3, 5, []float32{
			0, 0, 0, inf, inf,
			0, 0, 0, 0, inf,
			0, 0, 0, 0, 0}},
		{1, 4, []float32{0, 0, 0, 0}},
	}
	for _, tc := range tests {
		got := Triu(Full(inf, tc.l, tc.s), tc.s-tc.l+1)
		require.Equal(t, tc.want, got.Data(), "L=%d S=%d", tc.l, tc.s)
		for _, v := range got.Data() {
			require.False(t, math.IsNaN(float64(v)), "a dropped -Inf must become 0, not NaN")
		}
	}
}
