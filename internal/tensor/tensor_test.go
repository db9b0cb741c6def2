package tensor

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCreation(t *testing.T) {
	tests := []struct {
		name  string
		got   *Tensor
		shape []int
		data  []float32
	}{
		{"New 1-D by default", New([]float32{1, 2, 3}), []int{3}, []float32{1, 2, 3}},
		{"New with shape", New([]float32{1, 2, 3, 4, 5, 6}, 2, 3), []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}},
		{"Scalar", Scalar(2.5), []int{}, []float32{2.5}},
		{"Zeros", Zeros(2, 2), []int{2, 2}, []float32{0, 0, 0, 0}},
		{"Zeros with no shape is a scalar", Zeros(), []int{}, []float32{0}},
		{"Zeros with an empty axis", Zeros(2, 0), []int{2, 0}, []float32{}},
		{"Ones", Ones(3), []int{3}, []float32{1, 1, 1}},
		{"Full", Full(7, 1, 2), []int{1, 2}, []float32{7, 7}},
		{"Arange", Arange(4), []int{4}, []float32{0, 1, 2, 3}},
		{"FromBF16", FromBF16([]uint16{0x3F80, 0xC000}), []int{2}, []float32{1, -2}},
		{"FromF16", FromF16([]uint16{0x3C00, 0xC000, 0x3800, 0}, 2, 2), []int{2, 2}, []float32{1, -2, 0.5, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.shape, tc.got.Shape())
			require.Equal(t, len(tc.shape), tc.got.NDim())
			require.Equal(t, len(tc.data), tc.got.Size())
			require.Equal(t, tc.data, tc.got.Data())
		})
	}
}

func TestCreationPanics(t *testing.T) {
	require.PanicsWithValue(t, "tensor.New: 3 elements do not fit shape [2 2] (4 elements)", func() { New([]float32{1, 2, 3}, 2, 2) })
	require.PanicsWithValue(t, "tensor.FromBF16: 1 elements do not fit shape [2] (2 elements)", func() { FromBF16([]uint16{1}, 2) })
	require.PanicsWithValue(t, "tensor.Zeros: negative dimension in shape [2 -1]", func() { Zeros(2, -1) })
}

func TestNewSharesData(t *testing.T) {
	data := []float32{1, 2, 3, 4}
	x := New(data, 2, 2)
	data[3] = 40
	require.Equal(t, float32(40), x.At(1, 1))
	x.Data()[0] = 10
	require.Equal(t, float32(10), data[0])

	bits := []uint16{0x3F80}
	b := FromBF16(bits)
	b.Bits()[0] = 0x4000
	require.Equal(t, uint16(0x4000), bits[0])
	// Data of a 16-bit tensor is a widened copy.
	b.Data()[0] = 99
	require.Equal(t, float32(2), b.At(0))
}

func TestRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := RandN(rng, 100, 100)
	require.Equal(t, []int{100, 100}, n.Shape())
	mean := Mean(Reshape(n, -1), 0, false).Item()
	variance := Mean(Square(Reshape(n, -1)), 0, false).Item()
	require.InDelta(t, 0, mean, 0.05)
	require.InDelta(t, 1, variance, 0.05)

	u := RandUniform(rng, -2, 3, 1000)
	require.GreaterOrEqual(t, Min(u, 0, false).Item(), float32(-2))
	require.Less(t, Max(u, 0, false).Item(), float32(3))

	// Reproducible from the seed.
	a := RandN(rand.New(rand.NewPCG(7, 7)), 5)
	b := RandN(rand.New(rand.NewPCG(7, 7)), 5)
	require.Equal(t, a.Data(), b.Data())
}

func TestAccessors(t *testing.T) {
	x := New([]float32{0, 1, 2, 3, 4, 5}, 2, 3)
	require.Equal(t, Float32, x.DType())
	require.Equal(t, 3, x.Dim(1))
	require.Equal(t, 3, x.Dim(-1))
	require.Equal(t, 2, x.Dim(-2))
	require.Equal(t, float32(5), x.At(1, 2))
	require.Equal(t, float32(5), x.At(-1, -1))
	require.Equal(t, float32(3), x.At(-1, 0))
	require.Equal(t, float32(2.5), Scalar(2.5).Item())
	require.Equal(t, float32(4), New([]float32{4}, 1, 1, 1).Item())

	shape := x.Shape()
	shape[0] = 100
	require.Equal(t, []int{2, 3}, x.Shape(), "Shape returns a copy")

	require.PanicsWithValue(t, "tensor.Dim: axis 2 out of range for a 2-D tensor", func() { x.Dim(2) })
	require.PanicsWithValue(t, "tensor.At: index [2 0] out of range for shape [2 3]", func() { x.At(2, 0) })
	require.PanicsWithValue(t, "tensor.At: index [0 -4] out of range for shape [2 3]", func() { x.At(0, -4) })
	require.PanicsWithValue(t, "tensor.At: 1 indices for a tensor of shape [2 3]", func() { x.At(1) })
	require.PanicsWithValue(t, "tensor.Item: tensor of shape [2 3] has 6 elements, not 1", func() { x.Item() })
	require.PanicsWithValue(t, "tensor.Bits: tensor is float32, not a 16-bit type", func() { x.Bits() })

	h := FromF16([]uint16{0x3C00, 0x4000}, 2)
	require.Equal(t, float32(2), h.At(-1))
	require.Equal(t, Float16, h.DType())
}

func TestClone(t *testing.T) {
	x := New([]float32{1, 2}, 2)
	c := x.Clone()
	c.Data()[0] = 5
	require.Equal(t, float32(1), x.At(0))

	b := FromBF16([]uint16{0x3F80})
	cb := b.Clone()
	require.Equal(t, BFloat16, cb.DType())
	cb.Bits()[0] = 0
	require.Equal(t, uint16(0x3F80), b.Bits()[0])
}

func TestString(t *testing.T) {
	tests := []struct {
		name string
		t    *Tensor
		want string
	}{
		{"scalar", Scalar(1.5), "tensor(1.5, shape=[], dtype=float32)"},
		{"vector", New([]float32{1, -2, 0.25}), "tensor([1, -2, 0.25], shape=[3], dtype=float32)"},
		{"matrix", New([]float32{1, 2, 3, 4, 5, 6}, 2, 3), "tensor([[1, 2, 3],\n        [4, 5, 6]], shape=[2 3], dtype=float32)"},
		{"3-D", Arange(4).reshaped(2, 1, 2), "tensor([[[0, 1]],\n\n        [[2, 3]]], shape=[2 1 2], dtype=float32)"},
		{"bfloat16", FromBF16([]uint16{0x3F80, 0x4000}), "tensor([1, 2], shape=[2], dtype=bfloat16)"},
		{"empty", Zeros(0), "tensor([], shape=[0], dtype=float32)"},
		{"special values", New([]float32{float32(math.Inf(1)), float32(math.NaN())}), "tensor([+Inf, NaN], shape=[2], dtype=float32)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.t.String())
		})
	}
}

func TestStringAbbreviatesLargeTensors(t *testing.T) {
	s := Arange(2000).reshaped(2, 1000).String()
	require.Equal(t, "tensor([[0, 1, 2, ..., 997, 998, 999],\n        [1000, 1001, 1002, ..., 1997, 1998, 1999]], shape=[2 1000], dtype=float32)", s)

	s = Zeros(100, 100).String()
	require.Equal(t, 7, strings.Count(s, "\n")+1, "3 rows, ..., 3 rows")
	require.Contains(t, s, "...")
}

// reshaped is Reshape as a method, to keep table-driven tests short.
func (t *Tensor) reshaped(shape ...int) *Tensor { return Reshape(t, shape...) }
