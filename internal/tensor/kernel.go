package tensor

import "math"

// The micro-kernel computes one mr×nr block of C from two packed panels.
//
// Why 2×4, when BLAS libraries use 4×4 or larger? Go on amd64 has 15 float
// registers to work with, and its instruction scheduler places an add whose
// result is only needed by the next loop iteration (an accumulator update)
// after every multiply of the current iteration. So a tile needs a register
// per accumulator plus one per pending product: 2×4 needs 8+8 and fits,
// while 4×4 needs 16+16 and spills to the stack on every iteration, running
// at less than half the speed. Unrolling by kStep helps for the same reason:
// the adds of the first steps feed the later steps, so they are scheduled
// in between and only the last step's products pile up. On the 2.5 GHz AMD
// EPYC (Zen 3) development machine this kernel runs at about 8 GFLOP/s per
// core, scalar code with no SIMD.
const (
	mr = 2 // rows of A (and of the C block) per micro-kernel call
	nr = 4 // columns of B (and of the C block) per micro-kernel call
	// kStep is how many k steps one loop iteration handles. Packed panels
	// are zero-padded to a multiple of it, so the kernel needs no tail loop.
	kStep = 4
)

// kernel2x4 sets c to the 2×4 block A·Bᵀ, where a is an A panel and b a
// B panel packed by packRows or packCols: for each k in turn, a holds the
// mr values A[0][k], A[1][k] and b holds the nr values B[0][k] ... B[3][k].
// Both panels must cover the same number of k steps, a multiple of kStep.
//
// The loop advances two indices, ia and ib, and slices fixed-size windows
// out of the panels. The compiler then knows each window's length, so the
// 48 element accesses in the body need no bounds checks: there is one check
// per window instead of one per element.
// Unrolling by kStep amortises the loop overhead and lets all but the last
// step's adds interleave with the multiplies.
//
// This is the portable kernel. The assembly kernels (gemm6x16 on amd64,
// gemm8x8 on arm64) compute larger blocks the same way, with vector
// registers; fastpath.go chooses between them.
func kernel2x4(a, b []float32, c *[mr * nr]float32) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	for ia, ib := 0, 0; ia+mr*kStep <= len(a) && ib+nr*kStep <= len(b); ia, ib = ia+mr*kStep, ib+nr*kStep {
		a := a[ia : ia+mr*kStep : ia+mr*kStep]
		b := b[ib : ib+nr*kStep : ib+nr*kStep]

		c00 += a[0] * b[0]
		c01 += a[0] * b[1]
		c02 += a[0] * b[2]
		c03 += a[0] * b[3]
		c10 += a[1] * b[0]
		c11 += a[1] * b[1]
		c12 += a[1] * b[2]
		c13 += a[1] * b[3]

		c00 += a[2] * b[4]
		c01 += a[2] * b[5]
		c02 += a[2] * b[6]
		c03 += a[2] * b[7]
		c10 += a[3] * b[4]
		c11 += a[3] * b[5]
		c12 += a[3] * b[6]
		c13 += a[3] * b[7]

		c00 += a[4] * b[8]
		c01 += a[4] * b[9]
		c02 += a[4] * b[10]
		c03 += a[4] * b[11]
		c10 += a[5] * b[8]
		c11 += a[5] * b[9]
		c12 += a[5] * b[10]
		c13 += a[5] * b[11]

		c00 += a[6] * b[12]
		c01 += a[6] * b[13]
		c02 += a[6] * b[14]
		c03 += a[6] * b[15]
		c10 += a[7] * b[12]
		c11 += a[7] * b[13]
		c12 += a[7] * b[14]
		c13 += a[7] * b[15]
	}
	*c = [mr * nr]float32{c00, c01, c02, c03, c10, c11, c12, c13}
}

// dot returns Σ x[i]·y[i] over len(x) elements; y must be at least as long.
// It is the matrix-vector kernel. Four independent partial sums hide the
// latency of floating-point addition, and adding pairs of products before
// they reach an accumulator keeps the scheduler from hoisting all eight
// multiplies at once (see kernel2x4).
func dot(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= len(x); i += 8 {
		xs := x[i : i+8 : i+8]
		ys := y[i : i+8 : i+8]
		s0 += xs[0]*ys[0] + xs[4]*ys[4]
		s1 += xs[1]*ys[1] + xs[5]*ys[5]
		s2 += xs[2]*ys[2] + xs[6]*ys[6]
		s3 += xs[3]*ys[3] + xs[7]*ys[7]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// dotBF16 is dot with y stored as bfloat16 bits. Widening a bfloat16 is a
// single shift, cheap enough to do inline, and reading 2 bytes per weight
// instead of 4 matters because a matrix-vector product is limited by how
// fast the weights stream in from memory. Measured, it is about twice as
// fast as widening a row into a buffer and calling dot.
func dotBF16(x []float32, y []uint16) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= len(x); i += 8 {
		xs := x[i : i+8 : i+8]
		ys := y[i : i+8 : i+8]
		s0 += xs[0]*bf16(ys[0]) + xs[4]*bf16(ys[4])
		s1 += xs[1]*bf16(ys[1]) + xs[5]*bf16(ys[5])
		s2 += xs[2]*bf16(ys[2]) + xs[6]*bf16(ys[6])
		s3 += xs[3]*bf16(ys[3]) + xs[7]*bf16(ys[7])
	}
	for ; i < len(x); i++ {
		s0 += x[i] * bf16(y[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// bf16 widens one bfloat16; it is BF16ToFloat32, short enough to inline.
func bf16(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// axpy adds alpha·x to y elementwise (the BLAS name: "a x plus y"); y must
// be at least as long as x.
func axpy(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}
