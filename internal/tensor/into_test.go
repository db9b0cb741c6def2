package tensor

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// nanLike returns a tensor of shape filled with NaN: a reused buffer's
// garbage, which shows in the result if a product reads its destination
// before writing it.
func nanLike(shape ...int) *Tensor {
	t := Zeros(shape...)
	for i := range t.f32 {
		t.f32[i] = float32(math.NaN())
	}
	return t
}

// requireSameBits fails unless got and want hold the same float32 bits.
func requireSameBits(t *testing.T, want, got *Tensor, what string) {
	t.Helper()
	require.Equal(t, want.Size(), got.Size(), what)
	for i, w := range want.Data() {
		if math.Float32bits(w) != math.Float32bits(got.Data()[i]) {
			t.Fatalf("%s: element %d is %v, want %v", what, i, got.Data()[i], w)
		}
	}
}

// MatmulTInto writes MatmulT's values into a destination that held
// garbage, on every path: a single row, a few rows, the tiled product,
// batches, and bf16 weights.
func TestMatmulTIntoMatchesMatmulT(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 61))
	for _, c := range []struct {
		a, b []int
		dt   DType
	}{
		{[]int{1, 96}, []int{40, 96}, Float32},
		{[]int{5, 96}, []int{40, 96}, BFloat16},
		{[]int{37, 600}, []int{70, 600}, BFloat16},
		{[]int{2, 3, 9, 16}, []int{2, 1, 11, 16}, Float32},
	} {
		a, b := RandN(rng, c.a...), AsType(RandN(rng, c.b...), c.dt)
		want := MatmulT(a, b)
		dst := nanLike(want.Shape()...)
		require.Same(t, dst, MatmulTInto(dst, a, b))
		requireSameBits(t, want, dst, "MatmulTInto")
	}
	require.Panics(t, func() { MatmulTInto(Zeros(3, 4), RandN(rng, 3, 8), RandN(rng, 5, 8)) })
}

// MatmulInto writes Matmul's values (B stored [K, N]) into a destination
// that held garbage: the tiled product (packing B's columns), a single
// row, batches, and bf16 B.
func TestMatmulIntoMatchesMatmul(t *testing.T) {
	rng := rand.New(rand.NewPCG(62, 62))
	for _, c := range []struct {
		a, b []int
		dt   DType
	}{
		{[]int{1, 96}, []int{96, 40}, Float32},
		{[]int{37, 600}, []int{600, 70}, BFloat16},
		{[]int{112, 64}, []int{64, 33}, Float32},
		{[]int{2, 3, 9, 16}, []int{2, 1, 16, 11}, Float32},
	} {
		a, b := RandN(rng, c.a...), AsType(RandN(rng, c.b...), c.dt)
		want := Matmul(a, b)
		dst := nanLike(want.Shape()...)
		require.Same(t, dst, MatmulInto(dst, a, b))
		requireSameBits(t, want, dst, "MatmulInto")
	}
	require.Panics(t, func() { MatmulInto(Zeros(3, 4), RandN(rng, 3, 8), RandN(rng, 8, 5)) })
}

// MatmulTEachInto gives MatmulTEach's values for one row (the shared
// pass) and for many.
func TestMatmulTEachIntoMatchesMatmulTEach(t *testing.T) {
	rng := rand.New(rand.NewPCG(62, 62))
	ws := []*Tensor{AsType(RandN(rng, 24, 64), BFloat16), RandN(rng, 8, 64)}
	for _, lead := range [][]int{{1, 1}, {2, 7}} {
		x := RandN(rng, append(lead, 64)...)
		want := MatmulTEach(x, ws...)
		dst := []*Tensor{nanLike(append(lead, 24)...), nanLike(append(lead, 8)...)}
		got := MatmulTEachInto(dst, x, ws...)
		for i := range ws {
			require.Same(t, dst[i], got[i])
			requireSameBits(t, want[i], got[i], "MatmulTEachInto")
		}
	}
	require.Panics(t, func() { MatmulTEachInto([]*Tensor{Zeros(1, 24)}, RandN(rng, 1, 64), ws...) })
	require.Panics(t, func() { MatmulTEachInto([]*Tensor{Zeros(1, 23), Zeros(1, 8)}, RandN(rng, 1, 64), ws...) })
}

// MatmulQ4EachInto gives MatmulQ4Each's values for a decode row and for a
// prefill's rows (four at a time, and the rows left over).
func TestMatmulQ4EachIntoMatchesMatmulQ4Each(t *testing.T) {
	rng := rand.New(rand.NewPCG(63, 63))
	w1, _ := randomQ4(rng, 24, 128)
	w2, _ := randomQ4(rng, 8, 128)
	for _, m := range []int{1, 6} {
		x := RandN(rng, 1, m, 128)
		want := MatmulQ4Each(x, w1, w2)
		dst := []*Tensor{nanLike(1, m, 24), nanLike(1, m, 8)}
		got := MatmulQ4EachInto(dst, x, w1, w2)
		for i := range dst {
			require.Same(t, dst[i], got[i])
			requireSameBits(t, want[i], got[i], "MatmulQ4EachInto")
		}
	}
	require.Panics(t, func() { MatmulQ4EachInto([]*Tensor{Zeros(1, 24), Zeros(1, 7)}, RandN(rng, 1, 128), w1, w2) })
}
