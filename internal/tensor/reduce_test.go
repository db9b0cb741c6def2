package tensor

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReductions(t *testing.T) {
	// x[i][j][k] = 100i + 10j + k, shape [2 3 4]
	x := Zeros(2, 3, 4)
	for i := 0; i < 2; i++ {
		for j := 0; j < 3; j++ {
			for k := 0; k < 4; k++ {
				x.Data()[(i*3+j)*4+k] = float32(100*i + 10*j + k)
			}
		}
	}
	tests := []struct {
		name     string
		f        func(*Tensor, int, bool) *Tensor
		axis     int
		keepDims bool
		shape    []int
		want     []float32
	}{
		{"Sum middle axis", Sum, 1, false, []int{2, 4}, []float32{30, 33, 36, 39, 330, 333, 336, 339}},
		{"Sum middle axis keepDims", Sum, 1, true, []int{2, 1, 4}, []float32{30, 33, 36, 39, 330, 333, 336, 339}},
		{"Sum first axis", Sum, 0, false, []int{3, 4}, []float32{100, 102, 104, 106, 120, 122, 124, 126, 140, 142, 144, 146}},
		{"Sum last axis", Sum, -1, false, []int{2, 3}, []float32{6, 46, 86, 406, 446, 486}},
		{"Mean middle axis", Mean, -2, false, []int{2, 4}, []float32{10, 11, 12, 13, 110, 111, 112, 113}},
		{"Mean last axis keepDims", Mean, 2, true, []int{2, 3, 1}, []float32{1.5, 11.5, 21.5, 101.5, 111.5, 121.5}},
		{"Max middle axis", Max, 1, false, []int{2, 4}, []float32{20, 21, 22, 23, 120, 121, 122, 123}},
		{"Max first axis keepDims", Max, 0, true, []int{1, 3, 4}, x.Data()[12:]},
		{"Min middle axis", Min, 1, true, []int{2, 1, 4}, []float32{0, 1, 2, 3, 100, 101, 102, 103}},
		{"Min last axis", Min, -1, false, []int{2, 3}, []float32{0, 10, 20, 100, 110, 120}},
		{"Max last axis keepDims", Max, -1, true, []int{2, 3, 1}, []float32{3, 13, 23, 103, 113, 123}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.f(x, tc.axis, tc.keepDims)
			require.Equal(t, tc.shape, got.Shape())
			require.Equal(t, tc.want, got.Data())
		})
	}

	// Reducing a 1-D tensor gives a scalar, or [1] with keepDims.
	v := New([]float32{1, 2, 3})
	require.Equal(t, []int{}, Sum(v, 0, false).Shape())
	require.Equal(t, float32(6), Sum(v, 0, false).Item())
	require.Equal(t, []int{1}, Sum(v, 0, true).Shape())

	// keepDims results broadcast back against the input: softmax style.
	m := New([]float32{1, 2, 3, 4}, 2, 2)
	require.Equal(t, []float32{float32(1) / 3, float32(2) / 3, float32(3) / 7, float32(4) / 7}, Div(m, Sum(m, -1, true)).Data())

	require.PanicsWithValue(t, "tensor.Sum: axis 3 out of range for a 3-D tensor", func() { Sum(x, 3, false) })
	require.PanicsWithValue(t, "tensor.Max: axis 0 of shape [0 2] is empty", func() { Max(Zeros(0, 2), 0, false) })
}

func TestSumIsAccurate(t *testing.T) {
	// Summing 10⁷ copies of 0.1 one by one in float32 drifts by about 10%;
	// float64 accumulation is exact to float32 precision.
	const n = 10_000_000
	x := Full(0.1, n)
	require.InDelta(t, 1e6, float64(Sum(x, 0, false).Item()), 0.1)

	// Large values cancel exactly before small ones are added.
	y := New([]float32{1e8, 1, -1e8, 1})
	require.Equal(t, float32(2), Sum(y, 0, false).Item())
}

func TestReductionsOn16Bit(t *testing.T) {
	b := FromBF16([]uint16{0x3F80, 0x4000, 0x4040, 0x4080}, 2, 2) // 1 2 3 4
	require.Equal(t, []float32{4, 6}, Sum(b, 0, false).Data())
	require.Equal(t, []float32{2, 4}, Max(b, 1, false).Data())
	require.Equal(t, []int{1, 1}, ArgMax(b, 1))
}

func TestMaxMinNaN(t *testing.T) {
	nan := float32(math.NaN())
	x := New([]float32{1, nan, 3, 4, 5, 6}, 3, 2)
	mx := Max(x, 0, false).Data()
	require.True(t, mx[1] != mx[1], "NaN propagates")
	require.Equal(t, float32(5), mx[0])
	mn := Min(x, 0, false).Data()
	require.True(t, mn[1] != mn[1], "NaN propagates")
	require.Equal(t, float32(1), mn[0])

	// Along the last axis, wherever the NaN sits in the row.
	rows := New([]float32{nan, 1, 2, 1, nan, 2, 1, 2, nan, -1, 7, 3}, 4, 3)
	for _, f := range []func(*Tensor, int, bool) *Tensor{Max, Min} {
		got := f(rows, -1, false).Data()
		for i := 0; i < 3; i++ {
			require.True(t, got[i] != got[i], "row %d: NaN propagates", i)
		}
	}
	require.Equal(t, float32(7), Max(rows, -1, false).Data()[3])
	require.Equal(t, float32(-1), Min(rows, -1, false).Data()[3])
}

func TestArgMax(t *testing.T) {
	x := New([]float32{
		1, 5, 5, 0,
		7, 2, 7, 7,
		-1, -3, -2, -1,
	}, 3, 4)
	require.Equal(t, []int{1, 0, 0}, ArgMax(x, 1), "first index wins ties")
	require.Equal(t, []int{1, 0, 1, 1}, ArgMax(x, 0))
	require.Equal(t, []int{1, 0, 0}, ArgMax(x, -1))

	// Middle axis: result is row-major over the remaining [2, 2] axes.
	y := New([]float32{
		0, 9, 4, 1, 3, 3,
		5, 5, 6, 0, 6, 8,
	}, 2, 3, 2)
	require.Equal(t, []int{1, 0, 1, 2}, ArgMax(y, 1))
	require.PanicsWithValue(t, "tensor.ArgMax: axis 1 of shape [2 0] is empty", func() { ArgMax(Zeros(2, 0), 1) })
}

func TestTopK(t *testing.T) {
	x := New([]float32{
		3, 1, 4, 1, 5, 9, 2, 6,
		5, 5, 5, 1, 5, 0, 7, 5,
	}, 2, 8)
	values, indices := TopK(x, 3)
	require.Equal(t, []int{2, 3}, values.Shape())
	require.Equal(t, []float32{9, 6, 5, 7, 5, 5}, values.Data())
	require.Equal(t, []int{5, 7, 4, 6, 0, 1}, indices, "ties keep the lower index first")

	values, indices = TopK(x, 8)
	require.Equal(t, []float32{9, 6, 5, 4, 3, 2, 1, 1, 7, 5, 5, 5, 5, 5, 1, 0}, values.Data())
	require.Equal(t, []int{5, 7, 4, 2, 0, 6, 1, 3, 6, 0, 1, 2, 4, 7, 3, 5}, indices)

	values, indices = TopK(x, 0)
	require.Equal(t, []int{2, 0}, values.Shape())
	require.Empty(t, indices)

	// 3-D input: rows are all leading positions, in row-major order.
	v3, i3 := TopK(Reshape(x, 2, 2, 4), 1)
	require.Equal(t, []int{2, 2, 1}, v3.Shape())
	require.Equal(t, []float32{4, 9, 5, 7}, v3.Data())
	require.Equal(t, []int{2, 1, 0, 2}, i3)

	require.PanicsWithValue(t, "tensor.TopK: k = 9 out of range [0, 8] for shape [2 8]", func() { TopK(x, 9) })
}

func TestTopKMatchesSort(t *testing.T) {
	// A vocabulary-sized row with many duplicates, against a stable sort.
	rng := rand.New(rand.NewPCG(9, 9))
	const n, k = 5000, 50
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(rng.IntN(200))
	}
	values, indices := TopK(New(data), k)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	// Insertion sort by value descending, stable: the obvious reference.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && data[order[j]] > data[order[j-1]]; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	require.Equal(t, order[:k], indices)
	for i, idx := range indices {
		require.Equal(t, data[idx], values.Data()[i])
	}
}
