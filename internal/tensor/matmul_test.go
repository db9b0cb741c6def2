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

// batchedNaive computes a broadcast-batched product with naiveMatmul, by
// materialising both operands at the full batch shape.
func batchedNaive(a, b *Tensor, batch []int, bTransposed bool) []float32 {
	m, k := a.Dim(-2), a.Dim(-1)
	n := b.Dim(-1)
	if bTransposed {
		n = b.Dim(-2)
	}
	full := func(t *Tensor) []float32 {
		return BroadcastTo(t, append(append([]int{}, batch...), t.Dim(-2), t.Dim(-1))...).Data()
	}
	ad, bd := full(a), full(b)
	var out []float32
	for i := 0; i < numel("test", batch); i++ {
		out = append(out, naiveMatmul(ad[i*m*k:(i+1)*m*k], bd[i*k*n:(i+1)*k*n], m, k, n, bTransposed)...)
	}
	return out
}

func TestMatmulBatchBroadcast(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	tests := []struct {
		name         string
		aShape       []int
		bShape       []int // as given to Matmul; MatmulT gets the last two swapped
		batch, shape []int
	}{
		{"[2,1,M,K] x [3,K,N]", []int{2, 1, 5, 7}, []int{3, 7, 6}, []int{2, 3}, []int{2, 3, 5, 6}},
		{"[M,K] x [4,K,N]", []int{5, 7}, []int{4, 7, 9}, []int{4}, []int{4, 5, 9}},
		{"[4,M,K] x [K,N]", []int{4, 9, 7}, []int{7, 3}, []int{4}, []int{4, 9, 3}},
		{"attention decode [H,1,D] x [H,D,L]", []int{3, 1, 16}, []int{3, 16, 37}, []int{3}, []int{3, 1, 37}},
		{"[1,3,M,K] x [2,1,K,N]", []int{1, 3, 4, 5}, []int{2, 1, 5, 6}, []int{2, 3}, []int{2, 3, 4, 6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := RandN(rng, tc.aShape...)
			b := RandN(rng, tc.bShape...)
			got := Matmul(a, b)
			require.Equal(t, tc.shape, got.Shape())
			requireClose(t, batchedNaive(a, b, tc.batch, false), got.Data(), 1e-4)

			bt := SwapAxes(b, -1, -2)
			got = MatmulT(a, bt)
			require.Equal(t, tc.shape, got.Shape())
			requireClose(t, batchedNaive(a, bt, tc.batch, true), got.Data(), 1e-4)
		})
	}
}

func TestMatmulLargeK(t *testing.T) {
	// K larger than one packing block (kcBlock), tiles larger than one
	// cache tile, and matrix-vector products long enough to run in
	// parallel.
	rng := rand.New(rand.NewPCG(8, 8))
	for _, size := range [][3]int{{67, 600, 131}, {1, 3000, 70}, {2, 513, 300}, {1, 40, 5000}} {
		m, k, n := size[0], size[1], size[2]
		a, b, bt := RandN(rng, m, k), RandN(rng, k, n), RandN(rng, n, k)
		requireClose(t, naiveMatmul(a.Data(), b.Data(), m, k, n, false), Matmul(a, b).Data(), 1e-4, "Matmul", size)
		requireClose(t, naiveMatmul(a.Data(), bt.Data(), m, k, n, true), MatmulT(a, bt).Data(), 1e-4, "MatmulT", size)
	}
}

func TestMatmul16BitWeights(t *testing.T) {
	// With 16-bit b, the products must equal widening b to float32 first;
	// the rounding happens when the weights are stored, not in the kernel.
	rng := rand.New(rand.NewPCG(4, 2))
	for _, size := range [][3]int{{1, 896, 130}, {5, 300, 17}, {64, 65, 63}, {3, 7, 1}} {
		m, k, n := size[0], size[1], size[2]
		a := RandN(rng, m, k)
		for _, dt := range []DType{BFloat16, Float16} {
			wt := AsType(RandN(rng, n, k), dt)
			want := MatmulT(a, AsType(wt, Float32))
			got := MatmulT(a, wt)
			require.Equal(t, want.Shape(), got.Shape())
			require.Equal(t, want.Data(), got.Data(), "MatmulT %v %v", dt, size)

			w := AsType(RandN(rng, k, n), dt)
			want = Matmul(a, AsType(w, Float32))
			got = Matmul(a, w)
			require.Equal(t, want.Data(), got.Data(), "Matmul %v %v", dt, size)
		}
	}
	// 16-bit activations are accepted too.
	a := AsType(New([]float32{1, 2, 3, 4}, 2, 2), BFloat16)
	require.Equal(t, []float32{7, 10, 15, 22}, Matmul(a, a).Data())
}

func TestMatmulSmallExact(t *testing.T) {
	a := New([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	b := New([]float32{7, 8, 9, 10, 11, 12}, 3, 2)
	require.Equal(t, []float32{58, 64, 139, 154}, Matmul(a, b).Data())
	require.Equal(t, []float32{58, 64, 139, 154}, MatmulT(a, Transpose(b)).Data())
	// K == 0 gives zeros; M == 0 gives an empty result.
	require.Equal(t, []float32{0, 0, 0, 0}, Matmul(Zeros(2, 0), Zeros(0, 2)).Data())
	require.Equal(t, []int{0, 2}, Matmul(Zeros(0, 3), b).Shape())
}

func TestMatmulPanics(t *testing.T) {
	require.PanicsWithValue(t, "tensor.Matmul: shapes [2 3] and [4 5] are incompatible: inner dimensions 3 and 4 differ",
		func() { Matmul(Zeros(2, 3), Zeros(4, 5)) })
	require.PanicsWithValue(t, "tensor.MatmulT: shapes [2 3] and [5 4] are incompatible: inner dimensions 3 and 4 differ",
		func() { MatmulT(Zeros(2, 3), Zeros(5, 4)) })
	require.PanicsWithValue(t, "tensor.Matmul: operands need at least 2 dimensions, got shapes [3] and [3 2]",
		func() { Matmul(Zeros(3), Zeros(3, 2)) })
	require.PanicsWithValue(t, "tensor.Matmul: batch dimensions of shapes [2 2 3] and [3 3 2] do not broadcast",
		func() { Matmul(Zeros(2, 2, 3), Zeros(3, 3, 2)) })
}

// BenchmarkMatmul1024 multiplies two 1024×1024 matrices (2·1024³ flops).
func BenchmarkMatmul1024(b *testing.B) {
	const n = 1024
	rng := rand.New(rand.NewPCG(1, 2))
	x, y := RandN(rng, n, n), RandN(rng, n, n)
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

// BenchmarkMatmulTPrefill is a 32-token prompt through the same projection,
// with bfloat16 weights: the tiled path, widening weights while packing.
func BenchmarkMatmulTPrefill(b *testing.B) {
	const m, k, n = 32, 896, 4864
	rng := rand.New(rand.NewPCG(1, 2))
	x := RandN(rng, m, k)
	w := AsType(RandN(rng, n, k), BFloat16)
	for b.Loop() {
		MatmulT(x, w)
	}
	b.ReportMetric(2*m*k*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkPrefillLayers runs the seven weight products of Qwen2-0.5B
// layers on a 128-token prompt, as a prefill does: bf16 weights, four
// layers' worth (120 MB, more than any L3 cache) so they stream from
// memory. It reports GFLOP/s of the whole sequence.
func BenchmarkPrefillLayers(b *testing.B) {
	const m, e, i, kv = 128, 896, 4864, 128
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][2]int{{e, e}, {kv, e}, {kv, e}, {e, e}, {i, e}, {i, e}, {e, i}} // q k v o gate up down
	var layers [][]*Tensor
	flops := 0.0
	for range 4 {
		var ws []*Tensor
		for _, s := range shapes {
			ws = append(ws, AsType(MulScalar(RandN(rng, s[0], s[1]), 0.02), BFloat16))
		}
		layers = append(layers, ws)
	}
	for _, s := range shapes {
		flops += 2 * m * float64(s[0]*s[1])
	}
	xe, xi := RandN(rng, m, e), RandN(rng, m, i)
	n := 0
	cpu := processCPUSeconds()
	for b.Loop() {
		for li, w := range layers[n%4] {
			x := xe
			if li == 6 {
				x = xi
			}
			MatmulT(x, w)
		}
		n++
	}
	reportFlops(b, flops*float64(n)/float64(b.N), cpu)
}

func TestMatmulFewRowsEqualsRowByRow(t *testing.T) {
	// A product of a few rows (fewRows) must give every row exactly what
	// the matrix-vector product of that row alone gives: speculative
	// decoding verifies k+1 tokens in one pass and compares the argmax
	// with one-token decode steps. Also with batch dimensions.
	rng := rand.New(rand.NewPCG(7, 2))
	for _, size := range [][4]int{{2, 896, 130, 1}, {5, 256, 3072, 1}, {8, 300, 17, 1}, {3, 64, 33, 3}} {
		m, k, n, batches := size[0], size[1], size[2], size[3]
		for _, dt := range []DType{Float32, BFloat16} {
			a := RandN(rng, batches, m, k)
			w := AsType(RandN(rng, n, k), dt)
			got := MatmulT(a, w)
			require.Equal(t, []int{batches, m, n}, got.Shape())
			for b := range batches {
				for i := range m {
					row := Take(Take(a, []int{b}, 0), []int{i}, 1)
					want := MatmulT(Reshape(row, 1, k), w).Data()
					at := (b*m + i) * n
					require.Equal(t, want, got.Data()[at:at+n], "MatmulT %v %v, batch %d row %d", dt, size, b, i)
				}
			}
		}
	}
}

func TestMatmulTEachMatchesMatmulT(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 51))
	for _, dt := range []DType{Float32, BFloat16, Float16} {
		ws := []*Tensor{AsType(RandN(rng, 96, 64), dt), AsType(RandN(rng, 8, 64), dt), AsType(RandN(rng, 40, 64), dt)}
		for _, shape := range [][]int{{64}, {1, 1, 64}, {3, 64}, {2, 5, 64}} {
			x := RandN(rng, shape...)
			got := MatmulTEach(x, ws...)
			for i, w := range ws {
				want := Reshape(MatmulT(Reshape(x, -1, 64), w), append(append([]int(nil), shape[:len(shape)-1]...), w.Dim(0))...)
				require.Equal(t, want.Shape(), got[i].Shape())
				require.InDeltaSlice(t, want.Data(), got[i].Data(), 1e-4, "%v weight %d of %v", dt, i, shape)
			}
		}
	}
	require.Panics(t, func() { MatmulTEach(RandN(rng, 2, 8), RandN(rng, 3, 7)) })
}

// BenchmarkGemmKernel times the micro-kernel of the active set alone, on
// one core, with its packed panels (kcBlock steps) and its block of C all
// in the L1 cache: the ceiling that the tiled product approaches as
// packing, cache misses and the split across cores cost less. Compare it
// with the machine's FMA peak (2 FMA units × 8 lanes × 2 flops per cycle
// on AVX2 cores).
func BenchmarkGemmKernel(b *testing.B) {
	ks := active
	kc := kcBlock
	rng := rand.New(rand.NewPCG(1, 3))
	a := RandN(rng, kc*ks.mr).Data()
	w := RandN(rng, kc*ks.nr).Data()
	c := make([]float32, ks.mr*ks.nr)
	cpu := processCPUSeconds()
	for b.Loop() {
		ks.gemm(kc, a, w, c, ks.nr)
	}
	reportFlops(b, 2*float64(kc*ks.mr*ks.nr), cpu)
}

// reportFlops reports a benchmark's rate in GFLOP/s of wall-clock time,
// for flops per iteration, and where the system measures it also per
// second of CPU time used since cpu (processCPUSeconds at the start):
// "GFLOP/cpu-s" for all cores together. On a machine shared with other
// work, the second moves less when the benchmark is descheduled, so
// comparisons of two builds are steadier in it; spinning and waiting
// workers count as used.
func reportFlops(b *testing.B, flops, cpu float64) {
	total := flops * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if used := processCPUSeconds() - cpu; cpu > 0 && used > 0 {
		b.ReportMetric(total/used/1e9, "GFLOP/cpu-s")
	}
}

// BenchmarkMatmulTShapes is a 128-token prefill through each weight shape
// of a Qwen2-0.5B layer (bf16 weights [N, K], activations [128, K]), one
// at a time: the products that a prefill spends most of its time in.
func BenchmarkMatmulTShapes(b *testing.B) {
	const m = 128
	rng := rand.New(rand.NewPCG(1, 4))
	for _, s := range [][2]int{{896, 896}, {128, 896}, {4864, 896}, {896, 4864}} {
		n, k := s[0], s[1]
		x := RandN(rng, m, k)
		w := AsType(MulScalar(RandN(rng, n, k), 0.02), BFloat16)
		b.Run(fmt.Sprintf("%dx%d", n, k), func(b *testing.B) {
			cpu := processCPUSeconds()
			for b.Loop() {
				MatmulT(x, w)
			}
			reportFlops(b, 2*m*float64(n*k), cpu)
		})
	}
}
