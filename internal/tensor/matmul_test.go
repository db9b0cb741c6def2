package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// naiveMatmul is the textbook triple loop on 2-D float32 matrices, in
// float64, used as the reference for the optimised kernels.
func naiveMatmul(a []float32, b []float32, m, k, n int, bTransposed bool) []float32 {
	c := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				bv := b[p*n+j]
				if bTransposed {
					bv = b[j*k+p]
				}
				s += float64(a[i*k+p]) * float64(bv)
			}
			c[i*n+j] = float32(s)
		}
	}
	return c
}

// requireClose checks two float32 slices agree to a tolerance that scales
// with the length of the dot products that produced them.
func requireClose(t *testing.T, want, got []float32, tol float64, msgAndArgs ...any) {
	t.Helper()
	require.Len(t, got, len(want), msgAndArgs...)
	for i := range want {
		if math.Abs(float64(want[i]-got[i])) > tol*(1+math.Abs(float64(want[i]))) {
			require.Failf(t, "values differ", "index %d: want %v, got %v (%v)", i, want[i], got[i], fmt.Sprint(msgAndArgs...))
		}
	}
}

func TestMatmulMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 3, 7, 17, 63, 65, 130}
	for _, m := range sizes {
		for _, k := range sizes {
			for _, n := range sizes {
				a := RandN(rng, m, k)
				b := RandN(rng, k, n)
				bt := RandN(rng, n, k)
				want := naiveMatmul(a.Data(), b.Data(), m, k, n, false)
				got := Matmul(a, b)
				require.Equal(t, []int{m, n}, got.Shape())
				requireClose(t, want, got.Data(), 1e-4, "Matmul", m, k, n)

				want = naiveMatmul(a.Data(), bt.Data(), m, k, n, true)
				got = MatmulT(a, bt)
				require.Equal(t, []int{m, n}, got.Shape())
				requireClose(t, want, got.Data(), 1e-4, "MatmulT", m, k, n)
			}
		}
	}
}

// BenchmarkMatmul1024 multiplies two 1024×1024 matrices (2·1024³ flops).
func BenchmarkMatmul1024(b *testing.B) {
	const n = 1024
	rng := rand.New(rand.NewPCG(1, 2))
	x, y := RandN(rng, n, n), RandN(rng, n, n)
	b.ResetTimer()
	for b.Loop() {
		Matmul(x, y)
	}
	b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkMatmulTVec is one decode step through a Qwen2-0.5B MLP
// projection: a single 896-wide activation times a [4864, 896] weight.
func BenchmarkMatmulTVec(b *testing.B) {
	const k, n = 896, 4864
	rng := rand.New(rand.NewPCG(1, 2))
	x := RandN(rng, 1, k)
	w := RandN(rng, n, k)
	weights := map[string]*Tensor{
		"f32":  w,
		"bf16": AsType(w, BFloat16),
	}
	for _, name := range []string{"f32", "bf16"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				MatmulT(x, weights[name])
			}
			b.ReportMetric(2*k*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
