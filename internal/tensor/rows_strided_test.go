package tensor

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// DotRows and Axpy against plain loops, on lengths with and without a
// vector tail, and DotRows refusing a view that runs past its slice.
func TestDotRowsAndAxpy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	// k of 32, 64, 96 and 128 takes the amd64 kernel for short rows, four
	// rows at a time: 7 rows are one group of four and three more.
	for _, k := range []int{1, 5, 8, 32, 37, 64, 96, 128} {
		rows, ld, off := 7, 3*k+2, 11
		m := make([]float32, off+rows*ld)
		for i := range m {
			m[i] = float32(rng.NormFloat64())
		}
		x := make([]float32, k)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		y := make([]float32, rows)
		DotRows(x, m, off, ld, y)
		for r := range rows {
			var want float64
			for i := range k {
				want += float64(x[i]) * float64(m[off+r*ld+i])
			}
			if math.Abs(float64(y[r])-want) > 1e-5*(1+math.Abs(want)) {
				t.Errorf("DotRows k=%d row %d: %v, want %v", k, r, y[r], want)
			}
		}
		acc := make([]float32, k+3)
		want := make([]float32, k+3)
		copy(acc, m)
		copy(want, m)
		Axpy(0.7, x, acc)
		for i := range x {
			want[i] += 0.7 * x[i]
		}
		for i := range acc {
			if math.Abs(float64(acc[i]-want[i])) > 1e-6 {
				t.Errorf("Axpy k=%d element %d: %v, want %v", k, i, acc[i], want[i])
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Errorf("DotRows read past the end of m without a panic")
		}
	}()
	DotRows(make([]float32, 4), make([]float32, 7), 0, 4, make([]float32, 2))
}

func TestSwiGLUInPlaceIsSiLUTimesUp(t *testing.T) {
	rng := rand.New(rand.NewPCG(52, 52))
	for _, n := range []int{1, 255, 256, 257, 3000} {
		gate, up := RandN(rng, 2, n), AsType(RandN(rng, 2, n), BFloat16)
		want := Mul(Mul(gate, Sigmoid(gate)), up)
		got := SwiGLUInPlace(gate, up)
		require.Same(t, gate, got, "the result is gate itself")
		require.Equal(t, want.Data(), got.Data(), "n = %d", n)
	}
	require.Panics(t, func() { SwiGLUInPlace(RandN(rng, 4), RandN(rng, 5)) })
}

// SumRows against a plain loop, on widths that take the 64- and 32-column
// blocks of the fast path and its row-by-row tail (head dimensions 32, 64,
// 96 and 128 among them), with rows farther apart than they are wide, as a
// head's values in a page are.
func TestSumRowsMatchesLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 8, 31, 32, 40, 64, 96, 100, 128, 160} {
		for _, k := range []int{1, 3, 16} {
			ld, off := 2*n+5, 9
			m := make([]float32, off+k*ld)
			for i := range m {
				m[i] = float32(rng.NormFloat64())
			}
			x := make([]float32, k)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			y := make([]float32, n)
			want := make([]float64, n)
			for j := range y {
				y[j] = float32(rng.NormFloat64())
				want[j] = float64(y[j])
			}
			for r := range k {
				for j := range n {
					want[j] += float64(x[r]) * float64(m[off+r*ld+j])
				}
			}
			SumRows(x, m, off, ld, y)
			for j := range n {
				if math.Abs(float64(y[j])-want[j]) > 1e-5*(1+math.Abs(want[j])) {
					t.Fatalf("SumRows %d rows of %d, column %d: %v, want %v", k, n, j, y[j], want[j])
				}
			}
		}
	}
}

// ExpScaled against the formula in float64 (within float32 rounding of the
// shifted scores, about 4e-6 at 50): e^(x·scale + mask - max), with
// and without a mask, masked keys (-Inf) at 0, scores large enough that
// e^x alone would overflow float32, and lengths with and without a vector
// tail.
func TestExpScaled(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for _, n := range []int{1, 7, 8, 37, 128} {
		for _, masked := range []bool{false, true} {
			row := make([]float32, n)
			var mask []float32
			if masked {
				mask = make([]float32, n)
			}
			for j := range row {
				row[j] = float32(rng.NormFloat64()*50 + 400) // e^400 overflows
				if masked {
					mask[j] = float32(rng.NormFloat64())
					if j%3 == 1 {
						mask[j] = float32(math.Inf(-1))
					}
				}
			}
			const scale = 0.125
			want := make([]float64, n)
			top := math.Inf(-1)
			for j, x := range row {
				want[j] = float64(float32(x * scale))
				if masked {
					want[j] += float64(mask[j])
				}
				top = max(top, want[j])
			}
			got := append([]float32(nil), row...)
			ExpScaled(got, mask, scale)
			for j := range want {
				w := math.Exp(want[j] - top)
				require.InDelta(t, w, float64(got[j]), 2e-5*w+1e-12, "n %d masked %v: element %d", n, masked, j)
				if masked && j%3 == 1 {
					require.Zero(t, got[j], "n %d: masked element %d", n, j)
				}
			}
		}
	}
}

// BenchmarkSwiGLU is SwiGLUInPlace on a 128-token prefill's MLP of
// Qwen2-0.5B (128 x 4864).
func BenchmarkSwiGLU(b *testing.B) {
	rng := rand.New(rand.NewPCG(53, 53))
	gate, up := RandN(rng, 128, 4864), RandN(rng, 128, 4864)
	g0 := append([]float32(nil), gate.Data()...)
	for b.Loop() {
		copy(gate.f32, g0) // the same values every time, not a product of products
		SwiGLUInPlace(gate, up)
	}
}
