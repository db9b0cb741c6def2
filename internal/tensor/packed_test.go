package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// randomPacked returns an out×in matrix of random codes with scales of
// both signs, and the same matrix widened by the definition (one element
// at a time, independently of the kernels).
func randomPacked(rng *rand.Rand, out, in, bits, group int) (*PackedMatrix, *Tensor) {
	per := 32 / bits
	w := &PackedMatrix{Out: out, In: in, Bits: bits, GroupSize: group,
		Words: make([]uint32, out*in/per), Scales: make([]float32, out*in/group), Biases: make([]float32, out*in/group)}
	for i := range w.Words {
		w.Words[i] = rng.Uint32()
	}
	for i := range w.Scales {
		w.Scales[i] = float32(rng.NormFloat64() * 0.02)
		w.Biases[i] = float32(rng.NormFloat64() * 0.1)
	}
	dense := make([]float32, out*in)
	for r := range out {
		for j := range in {
			q := w.Words[(r*in+j)/per] >> (bits * (j % per)) & (1<<bits - 1)
			g := (r*in + j) / group
			dense[r*in+j] = float32(q)*w.Scales[g] + w.Biases[g]
		}
	}
	return w, New(dense, out, in)
}

func TestMatmulPackedMatchesDenseEveryKernelSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 31))
	sets := append([]*kernelSet{portableKernels}, fastKernelSets...)
	for _, bits := range []int{4, 8} {
		for _, group := range []int{32, 64, 128} {
			for _, in := range []int{128, 384, 896} {
				for _, out := range []int{1, 3, 17, 33} {
					w, dense := randomPacked(rng, out, in, bits, group)
					for _, m := range []int{1, 2, 7, 8, 9, 17, 40} {
						x := RandN(rng, m, in)
						var want, bound *Tensor
						withKernels(portableKernels, func() {
							want = MatmulT(x, dense)
							bound = MatmulT(Abs(x), Abs(dense))
						})
						for _, ks := range sets {
							var got *Tensor
							withKernels(ks, func() { got = MatmulPacked(x, w) })
							require.Equal(t, []int{m, out}, got.Shape())
							requireAgree(t, want.Data(), got.Data(), bound.Data(),
								fmt.Sprintf("%s: %d-bit group %d, x %dx%d times %dx%d", ks.name, bits, group, m, in, out, in))
						}
					}
				}
			}
		}
	}
}

func TestMatmulPackedEachMatchesOneAtATime(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 35))
	q, _ := randomPacked(rng, 64, 128, 4, 64)
	k, _ := randomPacked(rng, 8, 128, 4, 64)
	v, _ := randomPacked(rng, 8, 128, 4, 64)
	other, _ := randomPacked(rng, 5, 128, 8, 32) // another format: multiplied on its own
	for _, m := range []int{1, 3, 9} {
		x := RandN(rng, 1, m, 128)
		ws := []*PackedMatrix{q, k, v, other}
		for _, set := range [][]*PackedMatrix{ws[:3], ws} {
			got := MatmulPackedEach(x, set...)
			require.Len(t, got, len(set))
			for i, w := range set {
				want := MatmulPacked(x, w)
				require.Equal(t, want.Shape(), got[i].Shape())
				require.Equal(t, want.Data(), got[i].Data(), "matrix %d, %d rows", i, m)
			}
		}
	}
	require.Panics(t, func() { MatmulPackedEach(RandN(rng, 1, 64), q) })
}

func TestMatmulPackedKeepsLeadingDimensions(t *testing.T) {
	rng := rand.New(rand.NewPCG(32, 32))
	w, dense := randomPacked(rng, 5, 64, 4, 32)
	x := RandN(rng, 2, 3, 64)
	got := MatmulPacked(x, w)
	require.Equal(t, []int{2, 3, 5}, got.Shape())
	want := MatmulT(x, dense)
	for i, v := range want.Data() {
		require.InDelta(t, v, got.Data()[i], 1e-4*(1+math.Abs(float64(v))))
	}
}

func TestMatmulPackedRejectsBadShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 33))
	w, _ := randomPacked(rng, 4, 64, 4, 32)
	require.PanicsWithValue(t, "tensor.MatmulPacked: x [2 32] times a 4x64 weight: x's last dimension must be 64",
		func() { MatmulPacked(RandN(rng, 2, 32), w) })
	bad := *w
	bad.Words = bad.Words[1:]
	require.Panics(t, func() { MatmulPacked(RandN(rng, 1, 64), &bad) })
	bad = *w
	bad.GroupSize = 48
	require.Panics(t, func() { MatmulPacked(RandN(rng, 1, 64), &bad) })
}

// BenchmarkMatVecPacked times one decode-step product at the Qwen2-0.5B
// MLP shapes with 4-bit weights in groups of 64, beside the same product
// on bf16 weights, and reports the bytes of weights read per second.
func BenchmarkMatVecPacked(b *testing.B) {
	rng := rand.New(rand.NewPCG(34, 34))
	for _, s := range [][2]int{{4864, 896}, {896, 4864}, {151936, 896}} {
		out, in := s[0], s[1]
		w, dense := randomPacked(rng, out, in, 4, 64)
		x := RandN(rng, 1, in)
		packedBytes := float64(len(w.Words)*4 + len(w.Scales)*8)
		b.Run(fmt.Sprintf("q4g64_%dx%d", out, in), func(b *testing.B) {
			for b.Loop() {
				MatmulPacked(x, w)
			}
			b.ReportMetric(packedBytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
		bf := AsType(dense, BFloat16)
		b.Run(fmt.Sprintf("bf16_%dx%d", out, in), func(b *testing.B) {
			for b.Loop() {
				MatmulT(x, bf)
			}
			b.ReportMetric(float64(out*in*2)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
