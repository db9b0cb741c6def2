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
	// An A panel of 16 rows has the layout of a B panel of 16 rows.
	ks.packA = func(dst, src []float32, off, ld, kc int) {
		packT16AVX2(dst, operand{dtype: Float32, f32: src}, off, ld, kc)
	}
	ks.prepPacked = prepPackedAVX512
	ks.dotRowsPacked = dotRowsPackedAVX512
	return &ks
}

// The quantized matrix-vector products are limited by arithmetic, not
// memory, with AVX2 on two cores (about 7 GB/s of packed weights against
// 18 GB/s for bf16): a code costs a zero-extension, a shift or a mask, a
// conversion and a multiply-add. 16 lanes halve the instructions per code.

//go:noescape
func dotRowsQ4Z(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)

//go:noescape
func dotRowsQ8Z(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)

// prepPackedAVX512 orders x for dotRowsQ4Z: within every 32 inputs, the 16
// even ones, then the 16 odd ones.
func prepPackedAVX512(xp, xsum, x []float32, w *PackedMatrix) {
	groupSums(xsum, x, w.GroupSize)
	if w.Bits != 4 {
		copy(xp, x)
		return
	}
	evenOdd32(xp, x)
}

func dotRowsPackedAVX512(xp, xsum []float32, w *PackedMatrix, r0 int, y []float32) {
	rows := len(y)
	if rows == 0 {
		return
	}
	groups := w.In / w.GroupSize
	wordsPerRow := w.In * w.Bits / 32
	_ = xp[w.In-1]
	_ = xsum[groups-1]
	_ = w.Words[(r0+rows)*wordsPerRow-1]
	_ = w.Scales[(r0+rows)*groups-1]
	_ = w.Biases[(r0+rows)*groups-1]
	kernel := dotRowsQ8Z
	if w.Bits == 4 {
		kernel = dotRowsQ4Z
	}
	kernel(&xp[0], &xsum[0], &w.Words[r0*wordsPerRow], &w.Scales[r0*groups], &w.Biases[r0*groups],
		groups, w.GroupSize/32, rows, &y[0])
}

func gemmAVX512(kc int, a, b, c []float32, ldc int) {
	_ = a[kc*16-1]
	_ = b[kc*16-1]
	_ = c[15*ldc+15]
	gemm16x16(kc, &a[0], &b[0], &c[0], ldc)
}
