package tensor

import "unsafe"

// The amd64 kernels, in kernel_amd64.s. They use 256-bit AVX2 vectors (8
// float32 lanes) and fused multiply-add, which Go's compiler does not emit
// for the portable code.
//
// gemm6x16 keeps a 6×16 block of C in 12 of the 16 vector registers, and
// each k step loads two vectors of B and broadcasts six values of A: 12
// FMAs (192 flops) for 8 loads, which keeps both FMA units of a modern
// x86 core busy. dotRows* stream the weight rows one after another against
// x, widening bfloat16 with a zero-extend and a shift, and float16 with the
// F16C instruction VCVTPH2PS, in registers: a weight matrix is never copied
// to float32.

// gemm6x16 adds the 6×16 block A·Bᵀ of packed panels a (kc×6) and b
// (kc×16) into c (row stride ldc); kc is a positive multiple of 4.
//
//go:noescape
func gemm6x16(kc int, a, b, c *float32, ldc int)

// archKernels returns the assembly sets this CPU and OS support, the
// fastest first: AVX-512, then AVX2.
func archKernels() []*kernelSet {
	var sets []*kernelSet
	for _, ks := range []*kernelSet{avx512Kernels(), avx2Kernels()} {
		if ks != nil {
			sets = append(sets, ks)
		}
	}
	return sets
}

// avx2Kernels returns the AVX2 set when the CPU and OS support it.
func avx2Kernels() *kernelSet {
	if !hasAVX2FMA() {
		return nil
	}
	return &kernelSet{
		name:     "amd64 AVX2+FMA (6×16)",
		mr:       6,
		nr:       16,
		gemm:     gemmAVX2,
		gemmRows: gemmRowsAVX2,
		dotRows:  dotRowsFast,
		axpy:     axpyFast,
		sumRows:  sumRowsAVX2,
		widen:    widenFast,
		packT:    packT16AVX2,
		packN:    packN16AVX2,
		packA:    packA6AVX2,
		prefetch: prefetchOperand,
		exp:      expAVX2,
		sigmoid:  sigmoidAVX2,
		swiglu:   swigluAVX2,

		prepPacked:    prepPackedAVX2,
		dotRowsPacked: dotRowsPackedAVX2,
		dequantRow:    dequantRowAVX2,
		dotRowsQ4I8:   dotRowsQ4I8AVX2,
		dotRowsQ4I8x4: dotRowsQ4I8x4AVX2,
		quantizeQ8:    quantizeQ8AVX2,
	}
}

func gemmAVX2(kc int, a, b, c []float32, ldc int) {
	_ = a[kc*6-1]
	_ = b[kc*16-1]
	_ = c[5*ldc+15]
	gemm6x16(kc, &a[0], &b[0], &c[0], ldc)
}

// gemm4x16 and gemm2x16 are gemm6x16 for the first rows (3–4 and 1–2) of
// a 6-row A panel; they add only those rows into c.
//
//go:noescape
func gemm4x16(kc int, a, b, c *float32, ldc, rows int)

//go:noescape
func gemm2x16(kc int, a, b, c *float32, ldc, rows int)

// gemmRowsAVX2 is the set's gemmRows: 1–4 rows with the narrower kernels,
// 5 (which saves too little to be worth a kernel of its own) not at all.
func gemmRowsAVX2(rows, kc int, a, b, c []float32, ldc int) bool {
	_ = a[kc*6-1]
	_ = b[kc*16-1]
	switch {
	case rows >= 1 && rows <= 2:
		_ = c[(rows-1)*ldc+15]
		gemm2x16(kc, &a[0], &b[0], &c[0], ldc, rows)
	case rows >= 3 && rows <= 4:
		_ = c[(rows-1)*ldc+15]
		gemm4x16(kc, &a[0], &b[0], &c[0], ldc, rows)
	default:
		return false
	}
	return true
}

// sumRows64 adds Σ_r x[r]·B[r][j] into y[j] for the 64 columns j of B
// starting at b (row stride ld elements), over k > 0 rows: a vector times
// a [K, 64] block, the accumulators held in registers for all k rows.
//
//go:noescape
func sumRows64(x *float32, b *float32, ld, k int, y *float32)

// sumRows32 is sumRows64 for 32 columns (kernel_sumrows_amd64.s).
//
//go:noescape
func sumRows32(x *float32, b *float32, ld, k int, y *float32)

// dotRows4F32 is dotRowsF32 for short rows, four at a time: n a positive
// multiple of 32, rows a positive multiple of 4 (kernel_sumrows_amd64.s).
//
//go:noescape
func dotRows4F32(x *float32, w *float32, ld, n, rows int, y *float32)

// dotRowsShortF32 is dotRowsF32 with the rows of 32 to 128 floats (a
// head's cached keys, for attention scores) taken four at a time by
// dotRows4F32; longer rows, the weights of a matrix-vector product, stay
// one stream at a time (see dotRowsF32). It reports whether it did the
// work.
func dotRowsShortF32(x, w []float32, off, ld int, y []float32) bool {
	k, rows := len(x), len(y)
	if k%32 != 0 || k > 128 || rows < 4 {
		return false
	}
	_ = w[off+(rows-1)*ld+k-1]
	r4 := rows &^ 3
	dotRows4F32(&x[0], &w[off], ld, k, r4, &y[0])
	if r4 < rows {
		dotRowsF32(&x[0], &w[off+r4*ld], ld, k, rows-r4, &y[r4])
	}
	return true
}

// sumRowsAVX2 is the set's sumRows: whole blocks of 64 columns, then of 32,
// in assembly, the rest row by row with axpy.
func sumRowsAVX2(x []float32, b []float32, off, ld int, y []float32) {
	k, n := len(x), len(y)
	if k == 0 || n == 0 {
		return
	}
	_ = b[off+(k-1)*ld+n-1]
	j := 0
	for ; j+64 <= n; j += 64 {
		sumRows64(&x[0], &b[off+j], ld, k, &y[j])
	}
	for ; j+32 <= n; j += 32 {
		sumRows32(&x[0], &b[off+j], ld, k, &y[j])
	}
	if j < n {
		for r, alpha := range x {
			axpyFast(alpha, b[off+r*ld+j:off+r*ld+n], y[j:])
		}
	}
}

// packT16F32, packT16BF16 and packT16F16 pack 16 rows of a row-major
// matrix (row stride ld elements) into a B panel, widening on the way:
// dst[k*16+r] = src[r*ld+k] for r < 16 and k < kc, kc a positive multiple
// of 8. Each 8×8 block is transposed in registers.
//
//go:noescape
func packT16F32(dst *float32, src *float32, ld, kc int)

//go:noescape
func packT16BF16(dst *float32, src *uint16, ld, kc int)

//go:noescape
func packT16F16(dst *float32, src *uint16, ld, kc int)

// packT16AVX2 packs the 16 rows starting at off (row stride ld) over kc
// steps into the panel dst.
func packT16AVX2(dst []float32, src operand, off, ld, kc int) {
	kv := kc &^ 7
	if kv > 0 {
		_ = dst[kv*16-1]
		last := off + 15*ld + kv - 1
		switch src.dtype {
		case Float32:
			_ = src.f32[last]
			packT16F32(&dst[0], &src.f32[off], ld, kv)
		case BFloat16:
			_ = src.u16[last]
			packT16BF16(&dst[0], &src.u16[off], ld, kv)
		default:
			_ = src.u16[last]
			packT16F16(&dst[0], &src.u16[off], ld, kv)
		}
	}
	for r := range 16 {
		for k := kv; k < kc; k++ {
			dst[k*16+r] = src.at(off + r*ld + k)
		}
	}
}

// expF32 sets dst[i] = e^src[i] and sigmoidF32 sets dst[i] =
// 1/(1+e^-src[i]), for i < n, n a positive multiple of 8. They evaluate
// Cephes' single-precision polynomial for e^x on 8 lanes at once, within 2
// units in the last place of the correctly rounded result.
//
//go:noescape
func expF32(dst, src *float32, n int)

//go:noescape
func sigmoidF32(dst, src *float32, n int)

// expAVX2 and sigmoidAVX2 run the vector kernels over whole vectors and
// the portable code over the tail.
func expAVX2(dst, src []float32)     { vectorThenTail(dst, src, expF32, expPortable) }
func sigmoidAVX2(dst, src []float32) { vectorThenTail(dst, src, sigmoidF32, sigmoidPortable) }

// swigluF32 sets gate[i] = gate[i]·σ(gate[i])·up[i] for i < n, n a
// positive multiple of 8.
//
//go:noescape
func swigluF32(gate, up *float32, n int)

// swigluAVX2 is the set's swiglu: whole vectors in assembly, the rest as
// swigluWith does it with the portable sigmoid (which sigmoidAVX2 also
// uses for its tail), so the values are those of SwiGLUInPlace's loop.
func swigluAVX2(g, u []float32) {
	u = u[:len(g)]
	n := len(g) &^ 7
	if n > 0 {
		swigluF32(&g[0], &u[0], n)
	}
	swigluWith(g[n:], u[n:], sigmoidPortable)
}

func vectorThenTail(dst, src []float32, kernel func(dst, src *float32, n int), tail func(dst, src []float32)) {
	n := len(src) &^ 7
	if n > 0 {
		_ = dst[n-1]
		kernel(&dst[0], &src[0], n)
	}
	tail(dst[n:len(src)], src[n:])
}

// packN16F32 copies 16 columns of kc rows of a row-major float32 matrix
// (row stride ld elements) into a B panel: dst[k*16+j] = src[k*ld+j] for
// j < 16, k < kc; kc > 0. It is packCols for one whole panel of Matmul.
//
//go:noescape
func packN16F32(dst, src *float32, ld, kc int)

// packN16AVX2 packs 16 float32 columns, kc rows from off (row stride ld).
func packN16AVX2(dst []float32, src operand, off, ld, kc int) {
	if kc == 0 {
		return
	}
	_ = dst[kc*16-1]
	_ = src.f32[off+(kc-1)*ld+15]
	packN16F32(&dst[0], &src.f32[off], ld, kc)
}

// packM6F32 packs 6 rows of a row-major float32 matrix (row stride ld
// elements) into an A panel: dst[k*6+r] = src[r*ld+k] for r < 6 and
// k < kc, kc a positive multiple of 4.
//
//go:noescape
func packM6F32(dst, src *float32, ld, kc int)

// packA6AVX2 packs the 6 rows starting at off (row stride ld) over kc
// steps into an A panel.
func packA6AVX2(dst, src []float32, off, ld, kc int) {
	kv := kc &^ 3
	if kv > 0 {
		_ = dst[kv*6-1]
		_ = src[off+5*ld+kv-1]
		packM6F32(&dst[0], &src[off], ld, kv)
	}
	for r := range 6 {
		for k := kv; k < kc; k++ {
			dst[k*6+r] = src[off+r*ld+k]
		}
	}
}

// prefetchL2 requests the n > 0 bytes starting at p into the L2 cache.
//
//go:noescape
func prefetchL2(p unsafe.Pointer, n int)

// prefetchOperand is the set's prefetch: the n elements of src from off,
// whatever their width. Elements past the end of src are not requested.
func prefetchOperand(src operand, off, n int) {
	switch {
	case n <= 0:
	case src.dtype == Float32 && off < len(src.f32):
		n = min(n, len(src.f32)-off)
		prefetchL2(unsafe.Pointer(&src.f32[off]), 4*n)
	case src.dtype != Float32 && off < len(src.u16):
		n = min(n, len(src.u16)-off)
		prefetchL2(unsafe.Pointer(&src.u16[off]), 2*n)
	}
}
