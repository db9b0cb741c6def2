package tensor

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReshape(t *testing.T) {
	x := Arange(12)
	tests := []struct {
		shape []int
		want  []int
	}{
		{[]int{3, 4}, []int{3, 4}},
		{[]int{-1, 6}, []int{2, 6}},
		{[]int{2, -1, 2}, []int{2, 3, 2}},
		{[]int{12, 1}, []int{12, 1}},
		{[]int{-1}, []int{12}},
	}
	for _, tc := range tests {
		r := Reshape(x, tc.shape...)
		require.Equal(t, tc.want, r.Shape())
		require.Equal(t, x.Data(), r.Data())
	}
	// Reshape shares the data of a float32 tensor.
	r := Reshape(x, 3, 4)
	r.Data()[0] = 100
	require.Equal(t, float32(100), x.At(0))

	require.Equal(t, []int{}, Reshape(New([]float32{5}), []int{}...).Shape())
	require.Equal(t, BFloat16, Reshape(FromBF16(make([]uint16, 4)), 2, 2).DType())

	require.PanicsWithValue(t, "tensor.Reshape: cannot reshape [12] into [5 -1]", func() { Reshape(x, 5, -1) })
	require.PanicsWithValue(t, "tensor.Reshape: cannot reshape [12] into [3 5]", func() { Reshape(x, 3, 5) })
	require.PanicsWithValue(t, "tensor.Reshape: shape [-1 -1] has more than one -1", func() { Reshape(x, -1, -1) })
}

// naiveTranspose permutes axes by computing every element's source index.
func naiveTranspose(x *Tensor, perm []int) []float32 {
	inShape := x.Shape()
	outShape := make([]int, len(perm))
	for i, p := range perm {
		outShape[i] = inShape[p]
	}
	inStrides := rowMajorStrides(inShape)
	out := make([]float32, x.Size())
	idx := make([]int, len(perm))
	for flat := range out {
		rem := flat
		for axis := len(outShape) - 1; axis >= 0; axis-- {
			idx[axis] = rem % outShape[axis]
			rem /= outShape[axis]
		}
		src := 0
		for axis, p := range perm {
			src += idx[axis] * inStrides[p]
		}
		out[flat] = x.Data()[src]
	}
	return out
}

func TestTranspose(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := RandN(rng, 2, 3, 4, 5)
	tests := []struct {
		perm  []int
		shape []int
		naive []int
	}{
		{[]int{0, 2, 1, 3}, []int{2, 4, 3, 5}, []int{0, 2, 1, 3}},
		{[]int{3, 2, 1, 0}, []int{5, 4, 3, 2}, []int{3, 2, 1, 0}},
		{nil, []int{5, 4, 3, 2}, []int{3, 2, 1, 0}},
		{[]int{1, 3, 0, 2}, []int{3, 5, 2, 4}, []int{1, 3, 0, 2}},
		{[]int{0, 1, 2, 3}, []int{2, 3, 4, 5}, []int{0, 1, 2, 3}},
		{[]int{0, -2, 1, -1}, []int{2, 4, 3, 5}, []int{0, 2, 1, 3}},
	}
	for _, tc := range tests {
		got := Transpose(x, tc.perm...)
		require.Equal(t, tc.shape, got.Shape(), "perm %v", tc.perm)
		require.Equal(t, naiveTranspose(x, tc.naive), got.Data(), "perm %v", tc.perm)
	}

	m := New([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	require.Equal(t, []float32{1, 4, 2, 5, 3, 6}, Transpose(m).Data())
	// Transposing twice is the identity, and the dtype is kept.
	b := AsType(x, BFloat16)
	bt := Transpose(Transpose(b, 2, 0, 3, 1), 1, 3, 0, 2)
	require.Equal(t, BFloat16, bt.DType())
	require.Equal(t, b.Bits(), bt.Bits())

	// A large transpose takes the parallel path.
	big := RandN(rng, 64, 3, 200)
	require.Equal(t, naiveTranspose(big, []int{2, 0, 1}), Transpose(big, 2, 0, 1).Data())

	require.PanicsWithValue(t, "tensor.Transpose: [0 0 1 2] is not a permutation of the axes of shape [2 3 4 5]", func() { Transpose(x, 0, 0, 1, 2) })
	require.PanicsWithValue(t, "tensor.Transpose: permutation [1 0] does not match shape [2 3 4 5]", func() { Transpose(x, 1, 0) })
}

func TestSwapAxes(t *testing.T) {
	x := Arange(24).reshaped(2, 3, 4)
	require.Equal(t, Transpose(x, 0, 2, 1).Data(), SwapAxes(x, 1, 2).Data())
	require.Equal(t, []int{4, 3, 2}, SwapAxes(x, 0, -1).Shape())
	require.Equal(t, Transpose(x, 2, 1, 0).Data(), SwapAxes(x, 0, -1).Data())
	require.PanicsWithValue(t, "tensor.SwapAxes: axis 3 out of range for a 3-D tensor", func() { SwapAxes(x, 0, 3) })
}

func TestSliceConcatSplit(t *testing.T) {
	x := Arange(2*5*3).reshaped(2, 5, 3)
	s := Slice(x, 1, 1, 4)
	require.Equal(t, []int{2, 3, 3}, s.Shape())
	require.Equal(t, []float32{3, 4, 5, 6, 7, 8, 9, 10, 11, 18, 19, 20, 21, 22, 23, 24, 25, 26}, s.Data())
	require.Equal(t, []float32{2, 5, 8, 11, 14, 17, 20, 23, 26, 29}, Slice(x, -1, 2, 3).Data())
	require.Equal(t, []int{2, 0, 3}, Slice(x, 1, 2, 2).Shape())

	// Slices along an axis, concatenated, give the original back; Split
	// is the inverse of Concat.
	for axis := -3; axis < 3; axis++ {
		n := x.Dim(axis)
		parts := []*Tensor{Slice(x, axis, 0, 1), Slice(x, axis, 1, n-1), Slice(x, axis, n-1, n)}
		require.Equal(t, x.Data(), Concat(axis, parts...).Data(), "axis %d", axis)
		split := Split(x, axis, 1, n-2, 1)
		for i := range parts {
			require.Equal(t, parts[i].Shape(), split[i].Shape())
			require.Equal(t, parts[i].Data(), split[i].Data())
		}
	}

	a := New([]float32{1, 2, 3, 4}, 2, 2)
	b := New([]float32{5, 6}, 2, 1)
	require.Equal(t, []float32{1, 2, 5, 3, 4, 6}, Concat(1, a, b).Data())
	require.Equal(t, []float32{1, 2, 3, 4, 1, 2, 3, 4}, Concat(0, a, a).Data())

	bf := AsType(a, BFloat16)
	cb := Concat(0, bf, bf)
	require.Equal(t, BFloat16, cb.DType())
	require.Equal(t, append(bf.Bits(), bf.Bits()...), cb.Bits())
	require.Equal(t, BFloat16, Slice(bf, 0, 0, 1).DType())

	require.PanicsWithValue(t, "tensor.Slice: range [2, 6) out of bounds for axis 1 of shape [2 5 3]", func() { Slice(x, 1, 2, 6) })
	require.PanicsWithValue(t, "tensor.Slice: range [3, 2) out of bounds for axis 1 of shape [2 5 3]", func() { Slice(x, 1, 3, 2) })
	require.PanicsWithValue(t, "tensor.Concat: shapes [2 2] and [2 1] differ outside axis 0", func() { Concat(0, a, b) })
	require.PanicsWithValue(t, "tensor.Concat: dtypes float32 and bfloat16 differ", func() { Concat(0, a, bf) })
	require.PanicsWithValue(t, "tensor.Split: sizes [2 2] add up to 4, but axis 1 of shape [2 5 3] has 5", func() { Split(x, 1, 2, 2) })
}

func TestStack(t *testing.T) {
	a := New([]float32{1, 2, 3}, 3)
	b := New([]float32{4, 5, 6}, 3)
	s0 := Stack(0, a, b)
	require.Equal(t, []int{2, 3}, s0.Shape())
	require.Equal(t, []float32{1, 2, 3, 4, 5, 6}, s0.Data())
	s1 := Stack(-1, a, b)
	require.Equal(t, []int{3, 2}, s1.Shape())
	require.Equal(t, []float32{1, 4, 2, 5, 3, 6}, s1.Data())
	require.PanicsWithValue(t, "tensor.Stack: shapes [3] and [2] differ", func() { Stack(0, a, New([]float32{1, 2})) })
}

func TestExpandDimsSqueeze(t *testing.T) {
	x := Arange(6).reshaped(2, 3)
	tests := []struct {
		axis  int
		shape []int
	}{
		{0, []int{1, 2, 3}},
		{1, []int{2, 1, 3}},
		{2, []int{2, 3, 1}},
		{-1, []int{2, 3, 1}},
		{-3, []int{1, 2, 3}},
	}
	for _, tc := range tests {
		e := ExpandDims(x, tc.axis)
		require.Equal(t, tc.shape, e.Shape(), "axis %d", tc.axis)
		require.Equal(t, x.Shape(), Squeeze(e, tc.axis).Shape())
		require.Equal(t, x.Data(), e.Data())
	}
	require.PanicsWithValue(t, "tensor.Squeeze: axis 1 of shape [2 3] has size 3, not 1", func() { Squeeze(x, 1) })
	require.PanicsWithValue(t, "tensor.ExpandDims: axis 3 out of range for a 3-D tensor", func() { ExpandDims(x, 3) })
}

func TestBroadcastShapes(t *testing.T) {
	tests := []struct {
		a, b, want []int
	}{
		{[]int{}, []int{2, 3}, []int{2, 3}},
		{[]int{3, 1}, []int{1, 4}, []int{3, 4}},
		{[]int{2, 1, 3}, []int{4, 1}, []int{2, 4, 3}},
		{[]int{5, 1, 4}, []int{3, 1}, []int{5, 3, 4}},
		{[]int{8, 1, 6, 1}, []int{7, 1, 5}, []int{8, 7, 6, 5}},
		{[]int{0, 3}, []int{1, 3}, []int{0, 3}},
		{[]int{2, 3}, []int{2, 3}, []int{2, 3}},
	}
	for _, tc := range tests {
		got, err := BroadcastShapes(tc.a, tc.b)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%v and %v", tc.a, tc.b)
		got, err = BroadcastShapes(tc.b, tc.a)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%v and %v", tc.b, tc.a)
	}
	_, err := BroadcastShapes([]int{2, 3}, []int{4})
	require.EqualError(t, err, "shapes [2 3] and [4] do not broadcast")
	_, err = BroadcastShapes([]int{2, 1}, []int{8, 4, 3})
	require.Error(t, err)
}

func TestBroadcastTo(t *testing.T) {
	x := New([]float32{1, 2, 3}, 3, 1)
	got := BroadcastTo(x, 2, 3, 2)
	require.Equal(t, []int{2, 3, 2}, got.Shape())
	require.Equal(t, []float32{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}, got.Data())
	require.Equal(t, []float32{7, 7, 7}, BroadcastTo(Scalar(7), 3).Data())
	require.Equal(t, BFloat16, BroadcastTo(FromBF16([]uint16{1}), 2).DType())
	require.PanicsWithValue(t, "tensor.BroadcastTo: cannot broadcast [3 1] to [2 2]", func() { BroadcastTo(x, 2, 2) })
	require.PanicsWithValue(t, "tensor.BroadcastTo: cannot broadcast [3 1] to [3]", func() { BroadcastTo(x, 3) })
}

func TestTake(t *testing.T) {
	emb := Arange(12).reshaped(4, 3)
	rows := Take(emb, []int{2, 0, 2}, 0)
	require.Equal(t, []int{3, 3}, rows.Shape())
	require.Equal(t, []float32{6, 7, 8, 0, 1, 2, 6, 7, 8}, rows.Data())

	cols := Take(emb, []int{1}, -1)
	require.Equal(t, []int{4, 1}, cols.Shape())
	require.Equal(t, []float32{1, 4, 7, 10}, cols.Data())

	x := Arange(24).reshaped(2, 3, 4)
	mid := Take(x, []int{2, 1}, 1)
	require.Equal(t, []int{2, 2, 4}, mid.Shape())
	require.Equal(t, []float32{8, 9, 10, 11, 4, 5, 6, 7, 20, 21, 22, 23, 16, 17, 18, 19}, mid.Data())

	require.Equal(t, []int{0, 3}, Take(emb, nil, 0).Shape())

	bf := AsType(emb, BFloat16)
	tb := Take(bf, []int{3}, 0)
	require.Equal(t, BFloat16, tb.DType())
	require.Equal(t, []float32{9, 10, 11}, tb.Data())

	require.PanicsWithValue(t, "tensor.Take: index 4 (position 1) out of range [0, 4) for axis 0 of shape [4 3]", func() { Take(emb, []int{0, 4}, 0) })
	require.PanicsWithValue(t, "tensor.Take: index -1 (position 0) out of range [0, 3) for axis 1 of shape [4 3]", func() { Take(emb, []int{-1}, 1) })
}
