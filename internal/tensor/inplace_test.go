package tensor

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSetSlice(t *testing.T) {
	tests := []struct {
		name       string
		dst        []int
		axis       int
		start      int
		src        *Tensor
		want       []float32
		sliceStart int
	}{
		{"rows of a matrix", []int{4, 2}, 0, 1, New([]float32{1, 2, 3, 4}, 2, 2),
			[]float32{0, 0, 1, 2, 3, 4, 0, 0}, 1},
		{"columns of a matrix", []int{2, 3}, 1, 2, New([]float32{7, 8}, 2, 1),
			[]float32{0, 0, 7, 0, 0, 8}, 2},
		// A KV cache [batch 2, heads 1, positions 3, D 2] receiving one
		// token at position 1 of every row: axis 2, negative as -2.
		{"one position of a cache", []int{2, 1, 3, 2}, -2, 1, New([]float32{1, 2, 3, 4}, 2, 1, 1, 2),
			[]float32{0, 0, 1, 2, 0, 0, 0, 0, 3, 4, 0, 0}, 1},
		{"the whole axis", []int{2}, 0, 0, New([]float32{5, 6}), []float32{5, 6}, 0},
		{"nothing", []int{2, 2}, 0, 2, Zeros(0, 2), []float32{0, 0, 0, 0}, 2},
		{"bf16 source is widened", []int{1, 3}, 1, 0, FromBF16([]uint16{0x3F80, 0xC000}, 1, 2),
			[]float32{1, -2, 0}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := Zeros(tc.dst...)
			alias := Reshape(dst, -1)
			SetSlice(dst, tc.axis, tc.start, tc.src)
			require.Equal(t, tc.want, dst.Data())
			require.Equal(t, tc.want, alias.Data(), "a tensor sharing dst sees the write")
			end := tc.sliceStart + tc.src.Dim(tc.axis)
			require.Equal(t, tc.src.Data(), Slice(dst, tc.axis, tc.sliceStart, end).Data())
		})
	}

	// 16-bit into 16-bit of the same kind, bit for bit.
	h := FromBF16(make([]uint16, 4), 2, 2)
	SetSlice(h, 1, 1, FromBF16([]uint16{0x3F80, 0x4000}, 2, 1))
	require.Equal(t, []uint16{0, 0x3F80, 0, 0x4000}, h.Bits())

	dst := Zeros(3, 2)
	require.PanicsWithValue(t, "tensor.SetSlice: rows [2, 4) do not fit axis 0 of shape [3 2]",
		func() { SetSlice(dst, 0, 2, Zeros(2, 2)) })
	require.PanicsWithValue(t, "tensor.SetSlice: rows [-1, 0) do not fit axis 0 of shape [3 2]",
		func() { SetSlice(dst, 0, -1, Zeros(1, 2)) })
	require.PanicsWithValue(t, "tensor.SetSlice: shapes [3 2] (destination) and [1 3] (source) differ outside axis 0",
		func() { SetSlice(dst, 0, 0, Zeros(1, 3)) })
	require.PanicsWithValue(t, "tensor.SetSlice: cannot store float32 into a bfloat16 tensor of shape [2 2]; convert it with AsType first",
		func() { SetSlice(h, 0, 0, Zeros(1, 2)) })
	require.Equal(t, make([]float32, 6), dst.Data(), "a rejected write changes nothing")
}

// The in-place adds give Add's values, bit for bit, in y's storage.
func TestAddInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 13))
	for _, shape := range [][]int{{2, 5, 3, 4}, {1, 1, 7, 8}, {1, 6, 1, 8}} {
		x, y := RandN(rng, shape...), RandN(rng, shape...)
		want := Add(x, y)
		got := AddInPlace(y, x)
		require.Same(t, y, got)
		require.Equal(t, want.Data(), got.Data(), "AddInPlace of %v", shape)
		bias := AsType(RandN(rng, shape[3]), BFloat16)
		want = Add(y, bias)
		require.Equal(t, want.Data(), AddRowsInPlace(y, bias).Data(), "AddRowsInPlace of %v", shape)
	}
	require.Panics(t, func() { AddInPlace(Zeros(2, 3), Zeros(3, 2)) }, "shapes that differ")
	require.Panics(t, func() { AddRowsInPlace(Zeros(2, 3), Zeros(4)) }, "a bias of the wrong length")
}
