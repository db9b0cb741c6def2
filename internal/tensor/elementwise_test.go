package tensor

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBroadcastingAdd(t *testing.T) {
	tests := []struct {
		name  string
		a, b  *Tensor
		shape []int
		want  []float32
	}{
		{"same shape", New([]float32{1, 2, 3}), New([]float32{10, 20, 30}), []int{3}, []float32{11, 22, 33}},
		{"tensor + scalar", New([]float32{1, 2}), Scalar(10), []int{2}, []float32{11, 12}},
		{"scalar + tensor", Scalar(10), New([]float32{1, 2}, 2, 1), []int{2, 1}, []float32{11, 12}},
		{"size-1 tensor + matrix", New([]float32{10}, 1, 1), New([]float32{1, 2, 3, 4}, 2, 2), []int{2, 2}, []float32{11, 12, 13, 14}},
		{"[3,1] + [1,4]", New([]float32{0, 10, 20}, 3, 1), New([]float32{1, 2, 3, 4}, 1, 4), []int{3, 4},
			[]float32{1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24}},
		{"[2,3] + [3] (row vector)", New([]float32{1, 2, 3, 4, 5, 6}, 2, 3), New([]float32{10, 20, 30}), []int{2, 3},
			[]float32{11, 22, 33, 14, 25, 36}},
		{"[2,3] + [2,1] (column vector)", New([]float32{1, 2, 3, 4, 5, 6}, 2, 3), New([]float32{10, 20}, 2, 1), []int{2, 3},
			[]float32{11, 12, 13, 24, 25, 26}},
		{"[2,1,3] + [4,1]", Arange(6).reshaped(2, 1, 3), New([]float32{0, 10, 20, 30}, 4, 1), []int{2, 4, 3},
			[]float32{0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32, 3, 4, 5, 13, 14, 15, 23, 24, 25, 33, 34, 35}},
		{"empty", Zeros(0, 3), Ones(3), []int{0, 3}, []float32{}},
		{"bfloat16 inputs", FromBF16([]uint16{0x3F80, 0x4000}), FromF16([]uint16{0x3C00}), []int{2}, []float32{2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Add(tc.a, tc.b)
			require.Equal(t, Float32, got.DType())
			require.Equal(t, tc.shape, got.Shape())
			require.Equal(t, tc.want, got.Data())
			// Addition commutes, broadcasting included.
			require.Equal(t, tc.want, Add(tc.b, tc.a).Data())
		})
	}
}

func TestBroadcastMismatchPanics(t *testing.T) {
	a := Zeros(2, 3)
	require.PanicsWithValue(t, "tensor.Add: shapes [2 3] and [4] do not broadcast", func() { Add(a, Zeros(4)) })
	require.PanicsWithValue(t, "tensor.Mul: shapes [2 3] and [3 3] do not broadcast", func() { Mul(a, Zeros(3, 3)) })
	require.PanicsWithValue(t, "tensor.Greater: shapes [2] and [2 3] do not broadcast", func() { Greater(Zeros(2), a) })
	require.PanicsWithValue(t, "tensor.Where: shapes [2] and [2 3] do not broadcast", func() { Where(Zeros(2), a, a) })
}

// TestLargeBroadcast checks the parallel general broadcasting path against a
// materialised BroadcastTo.
func TestLargeBroadcast(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	a := RandN(rng, 64, 1, 300)
	b := RandN(rng, 7, 1)
	got := Sub(a, b)
	want := Sub(BroadcastTo(a, 64, 7, 300), BroadcastTo(b, 64, 7, 300))
	require.Equal(t, want.Shape(), got.Shape())
	require.Equal(t, want.Data(), got.Data())
}

func TestBinaryOps(t *testing.T) {
	a := New([]float32{1, -2, 3, 0})
	b := New([]float32{2, -2, -1, 0})
	nan := float32(math.NaN())
	tests := []struct {
		name string
		f    func(a, b *Tensor) *Tensor
		want []float32
	}{
		{"Add", Add, []float32{3, -4, 2, 0}},
		{"Sub", Sub, []float32{-1, 0, 4, 0}},
		{"Mul", Mul, []float32{2, 4, -3, 0}},
		{"Div", Div, []float32{0.5, 1, -3, nan}},
		{"Maximum", Maximum, []float32{2, -2, 3, 0}},
		{"Minimum", Minimum, []float32{1, -2, -1, 0}},
		{"Greater", Greater, []float32{0, 0, 1, 0}},
		{"GreaterEqual", GreaterEqual, []float32{0, 1, 1, 1}},
		{"Less", Less, []float32{1, 0, 0, 0}},
		{"LessEqual", LessEqual, []float32{1, 1, 0, 1}},
		{"Equal", Equal, []float32{0, 1, 0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.f(a, b)
			require.Equal(t, Float32, got.DType())
			requireSameFloats(t, tc.want, got.Data())
		})
	}

	// NaN propagates through Maximum and Minimum, and equals nothing.
	n := New([]float32{nan, 1})
	m := New([]float32{1, nan})
	requireSameFloats(t, []float32{nan, nan}, Maximum(n, m).Data())
	requireSameFloats(t, []float32{nan, nan}, Minimum(n, m).Data())
	requireSameFloats(t, []float32{0, 1}, Equal(n, n).Data())
}

func TestWhere(t *testing.T) {
	// A causal mask: keep scores on and below the diagonal.
	mask := New([]float32{1, 0, 0, 1, 1, 0, 1, 1, 1}, 3, 3)
	scores := Arange(18).reshaped(2, 3, 3)
	inf := float32(math.Inf(-1))
	got := Where(mask, scores, Scalar(inf))
	require.Equal(t, []int{2, 3, 3}, got.Shape())
	require.Equal(t, []float32{0, inf, inf, 3, 4, inf, 6, 7, 8, 9, inf, inf, 12, 13, inf, 15, 16, 17}, got.Data())

	// cond [3,1], a [1,2], b scalar: all three broadcast to [3,2].
	got = Where(New([]float32{1, 0, -2}, 3, 1), New([]float32{5, 6}, 1, 2), Scalar(0))
	require.Equal(t, []int{3, 2}, got.Shape())
	require.Equal(t, []float32{5, 6, 0, 0, 5, 6}, got.Data())
}

// requireSameFloats compares float32 slices treating NaN as equal to NaN.
func requireSameFloats(t *testing.T, want, got []float32) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		if want[i] != want[i] {
			require.Truef(t, got[i] != got[i], "index %d: want NaN, got %v", i, got[i])
			continue
		}
		require.Equalf(t, want[i], got[i], "index %d", i)
	}
}

func TestUnaryOps(t *testing.T) {
	x := New([]float32{-2, -0.5, 0, 1, 4})
	ref := func(f func(float64) float64) []float32 {
		out := make([]float32, x.Size())
		for i, v := range x.Data() {
			out[i] = float32(f(float64(v)))
		}
		return out
	}
	tests := []struct {
		name string
		got  *Tensor
		want []float32
	}{
		{"Neg", Neg(x), []float32{2, 0.5, 0, -1, -4}},
		{"Exp", Exp(x), ref(math.Exp)},
		{"Log", Log(x), ref(math.Log)},
		{"Sqrt", Sqrt(x), ref(math.Sqrt)},
		{"Rsqrt", Rsqrt(x), ref(func(v float64) float64 { return 1 / math.Sqrt(v) })},
		{"Square", Square(x), []float32{4, 0.25, 0, 1, 16}},
		{"Abs", Abs(x), []float32{2, 0.5, 0, 1, 4}},
		{"Tanh", Tanh(x), ref(math.Tanh)},
		{"Sigmoid", Sigmoid(x), ref(func(v float64) float64 { return 1 / (1 + math.Exp(-v)) })},
		{"Sin", Sin(x), ref(math.Sin)},
		{"Cos", Cos(x), ref(math.Cos)},
		{"AddScalar", AddScalar(x, 1), []float32{-1, 0.5, 1, 2, 5}},
		{"MulScalar", MulScalar(x, -2), []float32{4, 1, 0, -2, -8}},
		{"Map", Map(x, func(v float32) float32 { return v * v * v }), []float32{-8, -0.125, 0, 1, 64}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, x.Shape(), tc.got.Shape())
			require.Equal(t, Float32, tc.got.DType())
			requireSameFloats(t, tc.want, tc.got.Data())
		})
	}
	require.Equal(t, float32(0), Sigmoid(Scalar(-1000)).Item())
	require.Equal(t, float32(1), Sigmoid(Scalar(1000)).Item())
	require.Equal(t, float32(0), Abs(Scalar(float32(math.Copysign(0, -1)))).Item())
	require.Equal(t, []float32{4, 0.25}, Square(FromBF16([]uint16{0xC000, 0x3F00})).Data(), "16-bit input, float32 output")
}
