package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// randomQ4 returns an out×in Q4Matrix of random codes with bf16 scales of
// both signs, and its weights widened by the definition (float64, one
// element at a time, independently of the kernels).
func randomQ4(rng *rand.Rand, out, in int) (*Q4Matrix, []float64) {
	groups := out * in / 64
	w := &Q4Matrix{Out: out, In: in, Words: make([]uint32, out*in/8),
		Scales: make([]uint16, groups), Biases: make([]uint16, groups)}
	for i := range w.Words {
		w.Words[i] = rng.Uint32()
	}
	for i := range w.Scales {
		w.Scales[i] = BF16FromFloat32(float32(rng.NormFloat64() * 0.02))
		w.Biases[i] = BF16FromFloat32(float32(rng.NormFloat64() * 0.1))
	}
	dense := make([]float64, out*in)
	for r := range out {
		for j := range in {
			q := w.Words[(r*in+j)/8] >> (4 * (j % 8)) & 15
			g := (r*in + j) / 64
			dense[r*in+j] = float64(q)*float64(BF16ToFloat32(w.Scales[g])) + float64(BF16ToFloat32(w.Biases[g]))
		}
	}
	return w, dense
}

// activations returns m×in normal values with a few outliers 30 times
// larger, as the channels of a real model's activations have, and some
// all-zero blocks of 64.
func activations(rng *rand.Rand, m, in int) []float32 {
	x := make([]float32, m*in)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		if rng.IntN(50) == 0 {
			x[i] *= 30
		}
	}
	if in >= 128 {
		clear(x[64:128]) // a zero block: its scale is 0
	}
	return x
}

func TestMatmulQ4EachWithinTheRoundingOfX(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 41))
	sets := append([]*kernelSet{portableKernels}, fastKernelSets...)
	for _, in := range []int{64, 192, 448, 512, 896, 1152, 4864} {
		for _, out := range []int{1, 3, 17, 33} {
			w, dense := randomQ4(rng, out, in)
			for _, m := range []int{1, 2, 9} {
				xs := activations(rng, m, in)
				x := New(xs, m, in)
				for _, ks := range sets {
					var got *Tensor
					withKernels(ks, func() { got = MatmulQ4Each(x, w)[0] })
					require.Equal(t, []int{m, out}, got.Shape())
					for r := range m {
						xr := xs[r*in : (r+1)*in]
						for o := range out {
							// The exact product, and how far rounding x to
							// 8 bits may move it: each x_j by up to half its
							// block's step, max|x|/254, times |q_j·s|.
							var exact, slack, mag float64
							for j, v := range xr {
								wj := dense[o*in+j]
								exact += wj * float64(v)
								mag += math.Abs(wj * float64(v))
								if j%64 == 0 {
									var amax float64
									for _, u := range xr[j : j+64] {
										amax = math.Max(amax, math.Abs(float64(u)))
									}
									g := (o*in + j) / 64
									var qsum float64
									for k := j; k < j+64; k++ {
										qsum += float64(w.Words[(o*in+k)/8] >> (4 * (k % 8)) & 15)
									}
									slack += math.Abs(float64(BF16ToFloat32(w.Scales[g]))) * amax / 254 * qsum
								}
							}
							d := math.Abs(float64(got.Data()[r*out+o]) - exact)
							if d > slack*1.001+1e-5*mag {
								require.Failf(t, "8-bit activations moved the product too far",
									"%s: x %dx%d times %dx%d, row %d, output %d: got %v, exact %v: off by %g, allowed %g",
									ks.name, m, in, out, in, r, o, got.Data()[r*out+o], exact, d, slack+1e-5*mag)
							}
						}
					}
				}
			}
		}
	}
}

// The assembly must compute the portable loop's terms: the same integer
// sums and scales, added in another order.
func TestMatmulQ4EachFastMatchesPortable(t *testing.T) {
	sets := int8Sets(func(ks *kernelSet) bool { return ks.dotRowsQ4I8 != nil && ks.dotRowsQ4I8x4 != nil })
	if len(sets) == 0 {
		t.Skip("not run: no 8-bit-activation kernels on this machine (amd64 with AVX2 has them)")
	}
	rng := rand.New(rand.NewPCG(42, 42))
	for _, in := range []int{64, 128, 448, 896, 1152, 4864} {
		for _, out := range []int{1, 5, 40} {
			w, dense := randomQ4(rng, out, in)
			m := 3 + out%7 // 4, 8 and 5 rows: quads and single rows
			x := New(activations(rng, m, in), m, in)
			bound := make([]float32, m*out)
			for r := range m {
				for o := range out {
					var s float64
					for j := range in {
						s += math.Abs(dense[o*in+j] * float64(x.Data()[r*in+j]))
					}
					bound[r*out+o] = float32(s)
				}
			}
			var want *Tensor
			withKernels(portableKernels, func() { want = MatmulQ4Each(x, w)[0] })
			for _, ks := range sets {
				var got *Tensor
				withKernels(ks, func() { got = MatmulQ4Each(x, w)[0] })
				requireAgree(t, want.Data(), got.Data(), bound, fmt.Sprintf("%s: %dx%d times %dx%d", ks.name, m, in, out, in))
			}
		}
	}
}

// The vector rounding of x must give the portable loop's bytes, scales
// and (to rounding) sums, in both layouts.
func TestQuantizeQ8FastMatchesPortable(t *testing.T) {
	rng := rand.New(rand.NewPCG(46, 46))
	const n = 448
	x := activations(rng, 1, n)
	sets := int8Sets(func(ks *kernelSet) bool { return ks.quantizeQ8 != nil })
	if len(sets) == 0 {
		t.Skip("not run: no vector rounding to 8 bits on this machine (amd64 with AVX2 has it)")
	}
	for _, ks := range sets {
		for _, layout := range [][2]int{{64, 1}, {256, 8}} {
			x8Stride, dStride := layout[0], layout[1]
			want8, got8 := make([]int8, 4*n), make([]int8, 4*n)
			wantD, gotD := make([]float32, 8*n/64), make([]float32, 8*n/64)
			quantizeQ8Portable(x, want8, x8Stride, wantD, wantD[4:], dStride)
			ks.quantizeQ8(x, got8, x8Stride, gotD, gotD[4:], dStride)
			require.Equal(t, want8, got8, "%s: bytes, strides %d and %d", ks.name, x8Stride, dStride)
			for c := range n / 64 {
				require.Equal(t, wantD[c*dStride], gotD[c*dStride], "%s: dx of block %d", ks.name, c)
				require.InDelta(t, wantD[4+c*dStride], gotD[4+c*dStride], 1e-5*64*30, "%s: sum of block %d", ks.name, c)
			}
			// Rounding: every byte within half a step of x.
			for j, v := range x {
				c := j / 64
				t8 := j % 64 / 2
				if j%2 == 1 {
					t8 += 32
				}
				q := float64(got8[c*x8Stride+t8])
				require.LessOrEqual(t, math.Abs(q*float64(gotD[c*dStride])-float64(v)), float64(gotD[c*dStride])/2*1.0001+1e-30,
					"%s: x[%d] = %v rounded to %v steps of %v", ks.name, j, v, q, gotD[c*dStride])
			}
		}
	}
}

// int8Sets returns the assembly kernel sets that have what has reports.
func int8Sets(has func(*kernelSet) bool) []*kernelSet {
	var sets []*kernelSet
	for _, ks := range fastKernelSets {
		if has(ks) {
			sets = append(sets, ks)
		}
	}
	return sets
}

func TestMatmulQ4EachSharesOnePass(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 43))
	a, _ := randomQ4(rng, 7, 192)
	b, _ := randomQ4(rng, 90, 192)
	x := New(activations(rng, 2, 192), 2, 192)
	both := MatmulQ4Each(x, a, b)
	require.Equal(t, MatmulQ4Each(x, a)[0].Data(), both[0].Data())
	require.Equal(t, MatmulQ4Each(x, b)[0].Data(), both[1].Data())
	require.Equal(t, []int{2, 90}, both[1].Shape())
}

func TestMatmulQ4EachRejectsBadShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(44, 44))
	w, _ := randomQ4(rng, 4, 128)
	require.PanicsWithValue(t, "tensor.MatmulQ4Each: x [2 64] times a 4x128 weight: x's last dimension must be 128",
		func() { MatmulQ4Each(RandN(rng, 2, 64), w) })
	bad := *w
	bad.Scales = bad.Scales[1:]
	require.Panics(t, func() { MatmulQ4Each(RandN(rng, 1, 128), &bad) })
}

// BenchmarkMatVecQ4I8 times the 8-bit-activation product at Qwen2-0.5B's
// decode shapes beside MatmulPacked's float one, on weights in cache; the
// GB/s count the bytes each reads (bf16 or float32 scales and biases).
// internal/bench's BenchmarkMatVecQ4 measures them streaming from memory.
func BenchmarkMatVecQ4I8(b *testing.B) {
	rng := rand.New(rand.NewPCG(45, 45))
	for _, s := range [][2]int{{4864, 896}, {896, 4864}} {
		out, in := s[0], s[1]
		w, _ := randomQ4(rng, out, in)
		x := RandN(rng, 1, in)
		b.Run(fmt.Sprintf("i8_%dx%d", out, in), func(b *testing.B) {
			for b.Loop() {
				MatmulQ4Each(x, w)
			}
			b.ReportMetric(float64(out*in/2+out*in/64*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
