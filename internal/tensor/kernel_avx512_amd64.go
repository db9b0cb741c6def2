package tensor

// The AVX-512 set: the AVX2 set with a larger micro-kernel for the tiled
// products (prefill). A 512-bit register holds 16 float32 lanes and there
// are 32 of them, so gemm16x16 keeps a whole 16×16 block of C in 16
// registers and, per k step, loads one vector of B and multiplies it by 16
// values of A, each broadcast from memory by the multiply-add itself. That
// is twice the work per instruction of gemm6x16 with the same number of
// loads per multiply-add, and the B panels it reads are the 16-column panels
// of the AVX2 set, packed by the same code. The matrix-vector products of
// decode are limited by memory, not arithmetic, so they keep the AVX2 code.

// gemm16x16 adds the 16×16 block A·Bᵀ of packed panels a (kc×16) and b
// (kc×16) into c (row stride ldc); kc is a positive multiple of 4.
//
//go:noescape
func gemm16x16(kc int, a, b, c *float32, ldc int)

// avx512Kernels returns the AVX-512 set, or nil when the CPU or the
// operating system lacks it.
func avx512Kernels() *kernelSet {
	if !hasAVX2FMA() || !hasAVX512F() {
		return nil
	}
	ks := *avx2Kernels()
	ks.name = "amd64 AVX-512 (16×16)"
	ks.mr = 16
	ks.gemm = gemmAVX512
	ks.gemmRows = nil // the AVX2 edge kernels read 6-row A panels
	// An A panel of 16 rows has the layout of a B panel of 16 rows.
	ks.packA = func(dst, src []float32, off, ld, kc int) {
		packT16AVX2(dst, operand{dtype: Float32, f32: src}, off, ld, kc)
	}
	ks.prepPacked = prepPackedEvenOdd32
	ks.dotRowsPacked = dotRowsPackedAVX512
	return &ks
}

// The quantized matrix-vector products do much more arithmetic per byte
// than bf16 ones: a code costs a zero-extension, a shift or a mask, a
// conversion and a multiply-add, so with 8 lanes a core decodes codes
// about as fast as memory delivers them. 16 lanes halve the instructions
// per code and leave the product limited by memory again.

//go:noescape
func dotRowsQ4Z(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)

//go:noescape
func dotRowsQ8Z(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)

func dotRowsPackedAVX512(xp, xsum []float32, w *PackedMatrix, r0 int, y []float32) {
	if w.Bits == 4 {
		runPacked(dotRowsQ4Z, 32, xp, xsum, w, r0, y)
	} else {
		runPacked(dotRowsQ8Z, 32, xp, xsum, w, r0, y)
	}
}

func gemmAVX512(kc int, a, b, c []float32, ldc int) {
	_ = a[kc*16-1]
	_ = b[kc*16-1]
	_ = c[15*ldc+15]
	gemm16x16(kc, &a[0], &b[0], &c[0], ldc)
}
