package tensor

// The arm64 kernels, in kernel_arm64.s, use NEON (Advanced SIMD): 32
// vector registers of 4 float32 lanes, part of every arm64 CPU, so no
// feature check is needed.
//
// gemm8x8 keeps an 8×8 block of C in 16 registers; each k step loads two
// vectors of A and two of B and does 16 FMAs by element (each A value is
// used straight from its lane). bfloat16 is widened by interleaving zero
// half-words below the 16 bits (ZIP1/ZIP2), float16 by FCVTL.

// gemm8x8 adds the 8×8 block A·Bᵀ of packed panels a (kc×8) and b (kc×8)
// into c (row stride ldc); kc is a positive multiple of 4.
//
//go:noescape
func gemm8x8(kc int, a, b, c *float32, ldc int)

// archKernels returns the NEON set, which every arm64 CPU can run.
func archKernels() []*kernelSet {
	return []*kernelSet{{
		name:    "arm64 NEON (8×8)",
		mr:      8,
		nr:      8,
		gemm:    gemmNEON,
		dotRows: dotRowsFast,
		axpy:    axpyFast,
		widen:   widenFast,
		exp:     expGo, // float32 Go, no NEON version yet
		sigmoid: sigmoidGo,

		prepPacked:    prepPackedEvenOdd32,
		dotRowsPacked: dotRowsPackedNEON,
		dequantRow:    dequantRowPortable,
	}}
}

func gemmNEON(kc int, a, b, c []float32, ldc int) {
	_ = a[kc*8-1]
	_ = b[kc*8-1]
	_ = c[7*ldc+7]
	gemm8x8(kc, &a[0], &b[0], &c[0], ldc)
}

// dotRowsShortF32 has no short-row kernel on arm64: dotRowsF32 takes every
// row (see the amd64 version).
func dotRowsShortF32(x, w []float32, off, ld int, y []float32) bool { return false }
