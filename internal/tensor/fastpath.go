package tensor

import (
	"math"
	"os"
	"sync"
)

// A kernelSet is one implementation of the few inner loops that all the
// time of a matrix product is spent in. The code around them — shape
// checks, broadcasting, cache blocking, packing and the split across
// cores, in matmul.go — is the same whichever set runs.
//
// The sets are:
//
//   - portableKernels, plain Go, the reference (kernel.go), everywhere;
//   - fast sets in Go assembly, registered by kernel_amd64.go (AVX2 and
//     FMA; AVX-512, kernel_avx512_amd64.go, on CPUs that have it) or
//     kernel_arm64.go (NEON), when the CPU has what they need.
//
// The fastest set is chosen when the package initialises. Setting the
// environment variable TINYLLM_PORTABLE=1 (or building with the tag
// tinyllm_portable) keeps the portable one, so both can be timed and
// tested on one machine; the tests also switch between them in-process
// and check that they agree (fastpath_test.go).
type kernelSet struct {
	name string
	// mr×nr is the block of C one gemm call computes.
	mr, nr int
	// gemm adds the mr×nr block A·Bᵀ into c, whose rows are ldc elements
	// apart. a and b are packed panels (see packA and packB) covering kc
	// steps: a[k*mr+r] = A[r][k] and b[k*nr+j] = B[j][k]. kc is a
	// positive multiple of kStep.
	gemm func(kc int, a, b, c []float32, ldc int)
	// gemmRows, if not nil, is gemm for the first rows (< mr) of the
	// panels alone, added into c: the last panel of A when M is not a
	// multiple of mr, without the arithmetic on its zero padding. It
	// returns false, having done nothing, for a row count it does not
	// handle.
	gemmRows func(rows, kc int, a, b, c []float32, ldc int) bool
	// dotRows sets y[r] = Σ_k x[k]·W[r][k] for r < len(y), where row r of
	// W holds len(x) elements starting at off + r*ld of w: the
	// matrix-vector product of a decode step.
	dotRows func(x []float32, w operand, off, ld int, y []float32)
	// axpy adds alpha·x to y elementwise (len(y) >= len(x)).
	axpy func(alpha float32, x, y []float32)
	// sumRows, if not nil, adds Σ_r x[r]·B[r][j] into y[j] for j <
	// len(y), row r of float32 B starting at off + r*ld of b: Matmul's
	// [K, N] operand times one row, for a narrow block of columns
	// (attention's values in a decode step), without a call per row.
	sumRows func(x []float32, b []float32, off, ld int, y []float32)
	// widen converts 16-bit words of type dt to float32 (len(dst) of them).
	widen func(dst []float32, src []uint16, dt DType)
	// packT, if not nil, packs nr whole rows of a row-major matrix into
	// a B panel, as packRows does: dst[k*nr+r] = M[r][k] for k < kc, the
	// rows starting at off, ld elements apart. It is the transposition
	// that MatmulT's weights need, done in registers.
	packT func(dst []float32, src operand, off, ld, kc int)
	// packN, if not nil, packs nr whole columns of a row-major float32
	// matrix into a B panel, as packCols does: dst[k*nr+j] = M[k][j] for
	// k < kc, row k starting at off + k*ld. It is what Matmul's [K, N]
	// operand needs.
	packN func(dst []float32, src operand, off, ld, kc int)
	// prefetch, if not nil, asks for the n elements of src starting at
	// off to be brought into the L2 cache, without waiting for them: the
	// weights the tiled product packs next.
	prefetch func(src operand, off, n int)
	// packA, if not nil, packs mr whole rows of a row-major float32
	// matrix into an A panel, as packRows does: dst[k*mr+r] = M[r][k].
	packA func(dst, src []float32, off, ld, kc int)
	// exp and sigmoid set dst[i] to e^src[i] and 1/(1+e^-src[i]) for
	// i < len(src). They are here because the SiLU of Qwen2's MLP and the
	// softmax of attention call them once per activation, and the float64
	// math.Exp of the portable set costs as much as a tenth of a prefill.
	exp, sigmoid func(dst, src []float32)
	// swiglu, if not nil, sets g[i] = g[i]·sigmoid(g[i])·u[i] for
	// i < len(g), the values SwiGLUInPlace's loop over sigmoid gives, in
	// one pass: a prefill's MLP runs it on 600 thousand values a layer.
	swiglu func(g, u []float32)
	// prepPacked readies one row x for dotRowsPacked: xp is x in the order
	// the set's kernel reads it, xsum[g] the sum of group g of x.
	prepPacked func(xp, xsum, x []float32, w *PackedMatrix)
	// dotRowsPacked sets y[i] = Σ_j x[j]·W[r0+i][j] for a quantized W.
	dotRowsPacked func(xp, xsum []float32, w *PackedMatrix, r0 int, y []float32)
	// dequantRow sets dst[k] = W[r][k0+k] for a quantized W; k0 and
	// len(dst) are multiples of the group size.
	dequantRow func(dst []float32, w *PackedMatrix, r, k0 int)
	// dotRowsQ4I8, if not nil, sets y[i] = Σ_j x[j]·W[r0+i][j] for a
	// Q4Matrix W and a row x quantized to 8 bits (packed_i8.go) in
	// integer vector instructions. Without it the portable loop runs.
	dotRowsQ4I8 func(r q8Row, w *Q4Matrix, r0 int, y []float32)
	// dotRowsQ4I8x4, if not nil, is dotRowsQ4I8 for four rows of x at
	// once (a prefill): y[r*ldy+i] for r < 4 and i < n.
	dotRowsQ4I8x4 func(q q8Quad, w *Q4Matrix, r0, n int, y []float32, ldy int)
	// quantizeQ8, if not nil, rounds activations to 8 bits for the two
	// above, as quantizeQ8Portable does.
	quantizeQ8 func(x []float32, x8 []int8, x8Stride int, dx, xsum []float32, dStride int)
}

// portableKernels is the pure-Go set: the 2×4 register-tiled kernel and
// the scalar loops of kernel.go.
var portableKernels = &kernelSet{
	name:    "portable Go (2×4 scalar)",
	mr:      mr,
	nr:      nr,
	gemm:    gemmPortable,
	dotRows: dotRowsPortable,
	axpy:    axpy,
	widen:   widenPortable,
	exp:     expPortable,
	sigmoid: sigmoidPortable,

	prepPacked:    prepPackedPortable,
	dotRowsPacked: dotRowsPackedPortable,
	dequantRow:    dequantRowPortable,
}

// fastKernelSets are the assembly sets this CPU can run, the fastest
// first (on amd64, AVX-512 and then AVX2); archKernels is defined in
// kernel_$GOARCH.go. fastKernels is the fastest, or nil when there is none
// (another architecture, or a CPU without the instructions). The tests
// check every set against the portable one.
var (
	fastKernelSets = archKernels()
	fastKernels    = first(fastKernelSets)
)

func first(sets []*kernelSet) *kernelSet {
	if len(sets) == 0 {
		return nil
	}
	return sets[0]
}

// active is the set every product uses, chosen when the package
// initialises (init functions run after every package-level variable,
// fastKernels included, is set).
var active *kernelSet

func init() { active = chooseKernels() }

func chooseKernels() *kernelSet {
	if fastKernels != nil && !forcePortable && os.Getenv("TINYLLM_PORTABLE") != "1" {
		return fastKernels
	}
	return portableKernels
}

// KernelName describes the matrix-product kernels in use, for example
// "amd64 AVX2+FMA (6×16)" or "portable Go (2×4 scalar)"; benchmarks print
// it beside their figures.
func KernelName() string { return active.name }

// gemmPortable adapts kernel2x4, which returns its block, to the gemm
// contract, which adds the block into C.
func gemmPortable(kc int, a, b, c []float32, ldc int) {
	var block [mr * nr]float32
	kernel2x4(a[:kc*mr], b[:kc*nr], &block)
	for r := range mr {
		row := c[r*ldc : r*ldc+nr]
		for q := range nr {
			row[q] += block[r*nr+q]
		}
	}
}

// dotRowsPortable is one dot product per row, bfloat16 widened inline.
func dotRowsPortable(x []float32, w operand, off, ld int, y []float32) {
	k := len(x)
	var scratch []float32
	if w.dtype == Float16 {
		scratch = make([]float32, k)
	}
	for r := range y {
		o := off + r*ld
		switch w.dtype {
		case Float32:
			y[r] = dot(x, w.f32[o:o+k])
		case BFloat16:
			y[r] = dotBF16(x, w.u16[o:o+k])
		default:
			y[r] = dot(x, w.load(o, k, scratch))
		}
	}
}

// expPortable computes e^x in float64 and rounds once: as accurate as a
// float32 result can be.
func expPortable(dst, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = float32(math.Exp(float64(x)))
	}
}

// sigmoidPortable is 1/(1+e^-x) in float64. For very negative x, e^-x
// overflows to +Inf and the result is correctly 0.
func sigmoidPortable(dst, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = float32(1 / (1 + math.Exp(-float64(x))))
	}
}

// Scratch buffers for packing are reused between products instead of
// being allocated by every call: a 24-layer model issues thousands of
// matrix products per token.
var f32Pool sync.Pool

// getBuf returns a float32 buffer of length n from the pool. Its contents
// are arbitrary.
func getBuf(n int) *[]float32 {
	if v, ok := f32Pool.Get().(*[]float32); ok && cap(*v) >= n {
		*v = (*v)[:n]
		return v
	}
	b := make([]float32, n)
	return &b
}

// putBuf hands a buffer from getBuf back to the pool.
func putBuf(b *[]float32) { f32Pool.Put(b) }
