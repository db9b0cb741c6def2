package tensor

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFlatten(t *testing.T) {
	x := Arange(24).reshaped(2, 3, 4)
	tests := []struct {
		name       string
		start, end int
		want       []int
	}{
		{"last two", -2, -1, []int{2, 12}},
		{"first two", 0, 1, []int{6, 4}},
		{"all", 0, -1, []int{24}},
		{"one axis is a no-op", 1, 1, []int{2, 3, 4}},
		{"mixed signs", 1, -1, []int{2, 12}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Flatten(x, tc.start, tc.end)
			require.Equal(t, tc.want, got.Shape())
			require.Equal(t, x.Data(), got.Data(), "row-major order is unchanged")
		})
	}
	// Any number of leading axes: N.. x H x D -> N.. x H·D.
	require.Equal(t, []int{5, 6}, Flatten(Zeros(5, 2, 3), -2, -1).Shape())
	require.Equal(t, []int{1, 2, 5, 6}, Flatten(Zeros(1, 2, 5, 2, 3), -2, -1).Shape())
	require.Equal(t, []int{6}, Flatten(Zeros(2, 3), -2, -1).Shape())

	// It shares the data, and keeps a 16-bit dtype.
	f := Flatten(x, 0, 1)
	f.Data()[5] = -1
	require.Equal(t, float32(-1), x.At(0, 1, 1))
	require.Equal(t, BFloat16, Flatten(FromBF16(make([]uint16, 6), 2, 3), 0, 1).DType())

	require.PanicsWithValue(t, "tensor.Flatten: axis 2 comes after axis 1 in shape [2 3 4]", func() { Flatten(x, 2, 1) })
	require.PanicsWithValue(t, "tensor.Flatten: axis 3 out of range for a 3-D tensor", func() { Flatten(x, 0, 3) })
}

func TestUnflatten(t *testing.T) {
	x := Arange(24).reshaped(2, 12)
	tests := []struct {
		name  string
		axis  int
		sizes []int
		want  []int
	}{
		{"split the last axis into heads", -1, []int{3, 4}, []int{2, 3, 4}},
		{"infer the second size", -1, []int{6, -1}, []int{2, 6, 2}},
		{"infer the first size", 1, []int{-1, 4}, []int{2, 3, 4}},
		{"three pieces", 1, []int{2, 3, 2}, []int{2, 2, 3, 2}},
		{"a leading axis", 0, []int{1, 2}, []int{1, 2, 12}},
		{"one size is a no-op", 0, []int{2}, []int{2, 12}},
		{"a size-1 axis from inference", 1, []int{12, -1}, []int{2, 12, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Unflatten(x, tc.axis, tc.sizes...)
			require.Equal(t, tc.want, got.Shape())
			require.Equal(t, x.Data(), got.Data(), "row-major order is unchanged")
		})
	}
	// Element (n, h, d) of the split is element (n, h·D + d) of the input.
	u := Unflatten(x, -1, 3, 4)
	require.Equal(t, x.At(1, 2*4+3), u.At(1, 2, 3))
	// Unflatten undoes Flatten.
	require.Equal(t, []int{2, 3, 4}, Unflatten(Flatten(u, -2, -1), -1, 3, 4).Shape())
	// It shares the data.
	u.Data()[0] = 99
	require.Equal(t, float32(99), x.At(0, 0))

	require.PanicsWithValue(t, "tensor.Unflatten: cannot split axis 1 (size 12) of shape [2 12] into [5 2]",
		func() { Unflatten(x, 1, 5, 2) })
	require.PanicsWithValue(t, "tensor.Unflatten: cannot split axis 1 (size 12) of shape [2 12] into [5 -1]",
		func() { Unflatten(x, 1, 5, -1) })
	require.PanicsWithValue(t, "tensor.Unflatten: invalid sizes [-1 -1] (one -1 at most, no other negative)",
		func() { Unflatten(x, 1, -1, -1) })
	require.PanicsWithValue(t, "tensor.Unflatten: no sizes to split axis 0 of shape [2 12] into",
		func() { Unflatten(x, 0) })
}
