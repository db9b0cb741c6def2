package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// The fast (assembly) kernels and the portable Go ones must agree. These
// tests run every product twice, once with each set, on odd shapes (so
// every edge case of the blocking is hit) and on slices that do not start
// on a vector boundary.

// fastOrSkip returns the assembly kernel sets of this CPU (on amd64 with
// AVX-512, the AVX-512 set and the AVX2 one), or skips the test, saying
// why, on a machine that has none.
func fastOrSkip(t *testing.T) []*kernelSet {
	t.Helper()
	if len(fastKernelSets) == 0 {
		t.Skipf("no assembly kernels for this CPU (%s): only the portable path can run here", portableKernels.name)
	}
	return fastKernelSets
}

// withKernels runs fn with ks as the active set.
func withKernels(ks *kernelSet, fn func()) {
	saved := active
	active = ks
	defer func() { active = saved }()
	fn()
}

// unaligned returns a Float32 tensor of the given shape whose data starts
// one element into its backing array, so it is not 32-byte aligned.
func unaligned(rng *rand.Rand, dt DType, shape ...int) *Tensor {
	n := numel("test", shape)
	src := RandN(rng, n+1).Data()[1:]
	switch dt {
	case Float32:
		return New(src, shape...)
	case BFloat16:
		bits := make([]uint16, n+1)
		for i, v := range src {
			bits[i+1] = BF16FromFloat32(v)
		}
		return FromBF16(bits[1:], shape...)
	default:
		bits := make([]uint16, n+1)
		for i, v := range src {
			bits[i+1] = F16FromFloat32(v)
		}
		return FromF16(bits[1:], shape...)
	}
}

// requireAgree checks fast against portable results elementwise, allowing
// for the different order of additions (and fused multiply-adds): the
// tolerance scales with bound, Σ|a||b| for each element.
func requireAgree(t *testing.T, portable, fast, bound []float32, what string) {
	t.Helper()
	require.Len(t, fast, len(portable), what)
	for i := range portable {
		if d := math.Abs(float64(fast[i] - portable[i])); d > 1e-5*float64(bound[i])+1e-30 || math.IsNaN(float64(fast[i])) {
			require.Failf(t, "fast and portable kernels differ", "%s: index %d: portable %v, fast %v (difference %g, bound %g)",
				what, i, portable[i], fast[i], d, 1e-5*bound[i])
		}
	}
}

// compareProduct runs one product both ways and compares.
func compareProduct(t *testing.T, fast *kernelSet, a, b *Tensor, transposed bool, what string) {
	t.Helper()
	op := Matmul
	if transposed {
		op = MatmulT
	}
	var want, got, bound *Tensor
	withKernels(portableKernels, func() {
		want = op(a, b)
		bound = op(Abs(a), Abs(AsType(b, Float32)))
	})
	withKernels(fast, func() { got = op(a, b) })
	require.Equal(t, want.Shape(), got.Shape(), what)
	requireAgree(t, want.Data(), got.Data(), bound.Data(), what)
}

func TestFastKernelsMatchPortableOddShapes(t *testing.T) {
	for _, fast := range fastOrSkip(t) {
		t.Logf("comparing %q with %q", fast.name, portableKernels.name)
		rng := rand.New(rand.NewPCG(6, 6))
		sizes := []int{1, 7, 17, 63, 65}
		var shapes [][3]int
		for _, m := range sizes {
			for _, k := range sizes {
				for _, n := range sizes {
					shapes = append(shapes, [3]int{m, k, n})
				}
			}
		}
		// Larger ones: several K slices, several work items, long rows.
		shapes = append(shapes, [3]int{1000, 65, 17}, [3]int{63, 1000, 65}, [3]int{17, 63, 1000},
			[3]int{1, 1000, 1000}, [3]int{7, 1000, 257}, [3]int{250, 513, 130}, [3]int{128, 896, 200},
			[3]int{2100, 33, 40}) // more rows than mcBlock: three row blocks
		for _, s := range shapes {
			m, k, n := s[0], s[1], s[2]
			a := unaligned(rng, Float32, m, k)
			for _, dt := range []DType{Float32, BFloat16, Float16} {
				compareProduct(t, fast, a, unaligned(rng, dt, k, n), false, fmt.Sprintf("Matmul %v %v", s, dt))
				compareProduct(t, fast, a, unaligned(rng, dt, n, k), true, fmt.Sprintf("MatmulT %v %v", s, dt))
			}
		}
	}
}

func TestFastKernelsMatchPortableBatched(t *testing.T) {
	for _, fast := range fastOrSkip(t) {
		rng := rand.New(rand.NewPCG(7, 7))
		// Attention-like products with broadcast batch dimensions.
		compareProduct(t, fast, unaligned(rng, Float32, 2, 3, 17, 64), unaligned(rng, Float32, 2, 1, 33, 64), true, "scores")
		compareProduct(t, fast, unaligned(rng, Float32, 2, 3, 17, 33), unaligned(rng, Float32, 2, 1, 33, 64), false, "weighted values")
		compareProduct(t, fast, unaligned(rng, Float32, 14, 1, 64), unaligned(rng, Float32, 14, 129, 64), true, "decode scores")
		compareProduct(t, fast, unaligned(rng, Float32, 14, 1, 129), unaligned(rng, Float32, 14, 129, 64), false, "decode values")
	}
}

func TestFastKernelsMatchPortableMatVec(t *testing.T) {
	for _, fast := range fastOrSkip(t) {
		rng := rand.New(rand.NewPCG(8, 8))
		for _, k := range []int{1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 1000} {
			for _, n := range []int{1, 3, 4, 5, 17, 1000} {
				x := unaligned(rng, Float32, 1, k)
				for _, dt := range []DType{Float32, BFloat16, Float16} {
					compareProduct(t, fast, x, unaligned(rng, dt, n, k), true, fmt.Sprintf("MatmulT k=%d n=%d %v", k, n, dt))
					compareProduct(t, fast, x, unaligned(rng, dt, k, n), false, fmt.Sprintf("Matmul k=%d n=%d %v", k, n, dt))
				}
			}
		}
	}
}

func TestFastWidenMatchesPortableEveryBitPattern(t *testing.T) {
	for _, fast := range fastOrSkip(t) {
		src := make([]uint16, 1<<16+3)
		for i := range src {
			src[i] = uint16(i)
		}
		for _, dt := range []DType{BFloat16, Float16} {
			for _, off := range []int{0, 1, 3} { // unaligned starts, odd lengths
				s := src[off:]
				want := make([]float32, len(s))
				got := make([]float32, len(s))
				portableKernels.widen(want, s, dt)
				fast.widen(got, s, dt)
				for i := range want {
					w, g := math.Float32bits(want[i]), math.Float32bits(got[i])
					if want[i] != want[i] {
						// NaN: the hardware may set the quiet bit of a signalling
						// NaN; it must stay a NaN of the same sign.
						require.True(t, got[i] != got[i] && w>>31 == g>>31, "%v %#04x: want NaN, got %#08x", dt, s[i], g)
						continue
					}
					require.Equal(t, w, g, "%v %#04x", dt, s[i])
				}
			}
		}
	}
}

func TestFastAxpyMatchesPortable(t *testing.T) {
	for _, fast := range fastOrSkip(t) {
		rng := rand.New(rand.NewPCG(9, 9))
		for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 1000} {
			x := RandN(rng, n+1).Data()[1:]
			y := RandN(rng, n+1).Data()[1:]
			want := append([]float32(nil), y...)
			got := append([]float32(nil), y...)
			portableKernels.axpy(0.75, x, want)
			fast.axpy(0.75, x, got)
			for i := range want {
				require.InDelta(t, want[i], got[i], 1e-6*(1+math.Abs(float64(want[i]))), "n=%d i=%d", n, i)
			}
		}
	}
}

func TestPortableKernelsCanBeForced(t *testing.T) {
	t.Setenv("TINYLLM_PORTABLE", "1")
	require.Same(t, portableKernels, chooseKernels())
	t.Setenv("TINYLLM_PORTABLE", "")
	if fastKernels != nil && !forcePortable {
		require.Same(t, fastKernels, chooseKernels())
	}
	require.NotEmpty(t, KernelName())
}

// ulps is the distance between a and b in units in the last place: how
// many float32 values lie between them (0 when equal).
func ulps(a, b float32) int64 {
	key := func(x float32) int64 {
		u := int64(math.Float32bits(x))
		if u>>31 != 0 {
			return -(u &^ (1 << 31)) // negative floats count down from -0
		}
		return u
	}
	d := key(a) - key(b)
	if d < 0 {
		d = -d
	}
	return d
}

// TestFastExpSigmoidMatchPortable checks the exp and sigmoid kernels of
// the fast set (see checkExpSigmoid).
func TestFastExpSigmoidMatchPortable(t *testing.T) {
	for _, fast := range fastOrSkip(t) {
		checkExpSigmoid(t, fast.exp, fast.sigmoid)
	}
}

// TestGoExpSigmoidMatchPortable checks the float32 Go version of the
// kernels' algorithm (exp.go), on every machine.
func TestGoExpSigmoidMatchPortable(t *testing.T) {
	checkExpSigmoid(t, expGo, sigmoidGo)
}

// checkExpSigmoid sweeps the float32 range where e^x and the sigmoid
// change (every 1009th bit pattern from -110 to 100, about two million
// values), then the special values, and requires exp and sigmoid to be
// within 2 and 3 units in the last place of the portable float64 results.
// Results below the smallest normal float (about 1.2e-38) may be flushed
// to zero.
func checkExpSigmoid(t *testing.T, exp, sigmoid func(dst, src []float32)) {
	t.Helper()
	var xs []float32
	for _, limit := range []float32{-110, 100} {
		sign := float32(math.Copysign(1, float64(limit)))
		for u := uint32(0); u <= math.Float32bits(limit*sign); u += 1009 {
			xs = append(xs, sign*math.Float32frombits(u))
		}
	}
	inf := float32(math.Inf(1))
	xs = append(xs, 0, float32(math.Copysign(0, -1)), inf, -inf, float32(math.NaN()),
		88.72283, 88.72284, -87.33654, -87.33655, 1e-30, -1e-30, math.MaxFloat32, -math.MaxFloat32)
	xs = append(xs[1:], 0.5) // odd length, unaligned start: vector kernels leave a tail

	const tiny = 0x1p-126 // smallest normal float32
	for _, k := range []struct {
		name     string
		got, ref func(dst, src []float32)
		maxUlps  int64
	}{
		{"exp", exp, portableKernels.exp, 2},
		{"sigmoid", sigmoid, portableKernels.sigmoid, 3},
	} {
		want := make([]float32, len(xs))
		got := make([]float32, len(xs))
		k.ref(want, xs)
		k.got(got, xs)
		worst := int64(0)
		for i, x := range xs {
			w, g := want[i], got[i]
			switch {
			case w != w:
				require.True(t, g != g, "%s(%v): want NaN, got %v", k.name, x, g)
			case math.Abs(float64(w)) < tiny:
				require.InDelta(t, w, g, tiny, "%s(%v)", k.name, x)
			default:
				d := ulps(w, g)
				require.LessOrEqual(t, d, k.maxUlps, "%s(%v): want %v, got %v", k.name, x, w, g)
				worst = max(worst, d)
			}
		}
		t.Logf("%s: %d values, worst %d ulp", k.name, len(xs), worst)
	}
}
