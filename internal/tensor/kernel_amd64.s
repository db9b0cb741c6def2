// Code in this file is the amd64 fast path of the matrix products (see
// kernel_amd64.go for what each function computes and fastpath.go for how
// it is chosen). It needs AVX2, FMA and F16C.

#include "textflag.h"

#define A_PREFETCH 384

// Rows 0–3 of one k step of a 6-row A panel: two vectors of the B panel
// (16 columns), each of the first four A values broadcast and multiplied
// into its row's two accumulators. ao and bo are the byte offsets of this
// step in the panels. The 4×16 edge kernel runs this alone.
#define STEP4(ao, bo) \
	VMOVUPS (bo)(BX), Y12; \
	VMOVUPS (bo+32)(BX), Y13; \
	VBROADCASTSS (ao)(AX), Y14; \
	VFMADD231PS Y12, Y14, Y0; \
	VFMADD231PS Y13, Y14, Y1; \
	VBROADCASTSS (ao+4)(AX), Y15; \
	VFMADD231PS Y12, Y15, Y2; \
	VFMADD231PS Y13, Y15, Y3; \
	VBROADCASTSS (ao+8)(AX), Y14; \
	VFMADD231PS Y12, Y14, Y4; \
	VFMADD231PS Y13, Y14, Y5; \
	VBROADCASTSS (ao+12)(AX), Y15; \
	VFMADD231PS Y12, Y15, Y6; \
	VFMADD231PS Y13, Y15, Y7

// One k step of the 6×16 kernel: STEP4, then rows 4 and 5.
#define STEP(ao, bo) \
	STEP4(ao, bo); \
	VBROADCASTSS (ao+16)(AX), Y14; \
	VFMADD231PS Y12, Y14, Y8; \
	VFMADD231PS Y13, Y14, Y9; \
	VBROADCASTSS (ao+20)(AX), Y15; \
	VFMADD231PS Y12, Y15, Y10; \
	VFMADD231PS Y13, Y15, Y11

// Adds the accumulators of one row (two vectors) into C and moves to the
// next row.
#define STOREROW(lo, hi) \
	VADDPS (DI), lo, lo; \
	VMOVUPS lo, (DI); \
	VADDPS 32(DI), hi, hi; \
	VMOVUPS hi, 32(DI); \
	ADDQ DX, DI

// The arguments of gemm4x16 and gemm2x16 into registers, and their eight
// accumulators zeroed.
#define EDGEPROLOGUE \
	MOVQ kc+0(FP), CX; \
	MOVQ a+8(FP), AX; \
	MOVQ b+16(FP), BX; \
	MOVQ c+24(FP), DI; \
	MOVQ ldc+32(FP), DX; \
	MOVQ rows+40(FP), SI; \
	SHLQ $2, DX; \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7

// func gemm6x16(kc int, a, b, c *float32, ldc int)
TEXT ·gemm6x16(SB), NOSPLIT, $0-40
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ b+16(FP), BX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), DX
	SHLQ $2, DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	// All six rows of the block of C, so that they are in L1 when the
	// loop ends: it runs for a thousand cycles and more.
	LEAQ (DX)(DX*2), R8
	LEAQ (DI)(R8*1), R9
	PREFETCHT0 (DI)
	PREFETCHT0 (DI)(DX*1)
	PREFETCHT0 (DI)(DX*2)
	PREFETCHT0 (R9)
	PREFETCHT0 (R9)(DX*1)
	PREFETCHT0 (R9)(DX*2)

gemmloop:
	// The A panel streams from L2 (the B panel stays in L1): ask for it
	// a few iterations ahead.
	PREFETCHT0 A_PREFETCH(AX)
	STEP(0, 0)
	STEP(24, 64)
	STEP(48, 128)
	STEP(72, 192)
	ADDQ $96, AX
	ADDQ $256, BX
	SUBQ $4, CX
	JGT  gemmloop

	STOREROW(Y0, Y1)
	STOREROW(Y2, Y3)
	STOREROW(Y4, Y5)
	STOREROW(Y6, Y7)
	STOREROW(Y8, Y9)
	STOREROW(Y10, Y11)
	VZEROUPPER
	RET


// func dotRowsF32(x *float32, w *float32, ld, n, rows int, y *float32)
TEXT ·dotRowsF32(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), DI
	MOVQ w+8(FP), R8
	MOVQ ld+16(FP), DX
	MOVQ n+24(FP), R9
	MOVQ rows+32(FP), BX
	MOVQ y+40(FP), SI
	SHLQ $2, DX

dotF32row:
	MOVQ DI, R12
	MOVQ R8, R13
	MOVQ R9, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

dotF32loop32:
	CMPQ CX, $32
	JLT  dotF32loop8
	VMOVUPS 0(R13), Y4
	VFMADD231PS 0(R12), Y4, Y0
	VMOVUPS 32(R13), Y5
	VFMADD231PS 32(R12), Y5, Y1
	VMOVUPS 64(R13), Y6
	VFMADD231PS 64(R12), Y6, Y2
	VMOVUPS 96(R13), Y7
	VFMADD231PS 96(R12), Y7, Y3
	ADDQ $128, R12
	ADDQ $128, R13
	SUBQ $32, CX
	JMP  dotF32loop32

dotF32loop8:
	CMPQ CX, $8
	JLT  dotF32done
	VMOVUPS (R13), Y4
	VFMADD231PS (R12), Y4, Y0
	ADDQ $32, R12
	ADDQ $32, R13
	SUBQ $8, CX
	JMP  dotF32loop8

dotF32done:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (SI)
	ADDQ $4, SI
	ADDQ DX, R8
	DECQ BX
	JNZ  dotF32row
	VZEROUPPER
	RET

// func dotRowsBF16(x *float32, w *uint16, ld, n, rows int, y *float32)
TEXT ·dotRowsBF16(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), DI
	MOVQ w+8(FP), R8
	MOVQ ld+16(FP), DX
	MOVQ n+24(FP), R9
	MOVQ rows+32(FP), BX
	MOVQ y+40(FP), SI
	SHLQ $1, DX

dotBF16row:
	MOVQ DI, R12
	MOVQ R8, R13
	MOVQ R9, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

dotBF16loop32:
	CMPQ CX, $32
	JLT  dotBF16loop8
	// Ask for the weights 1 KiB ahead: the rows are one sequential
	// stream, and a request in flight early keeps more of it moving
	// than the hardware prefetcher alone, which stops at page borders.
	// (On a 2-core Zen 3, reading 272 MB on both cores: 24.5 GB/s at
	// 1 KiB against 22.8 at 2 KiB, medians of 40 interleaved runs;
	// 768 to 1280 bytes were alike.)
	PREFETCHT0 1024(R13)
	VPMOVZXWD 0(R13), Y4
	VPSLLD $16, Y4, Y4
	VFMADD231PS 0(R12), Y4, Y0
	VPMOVZXWD 16(R13), Y5
	VPSLLD $16, Y5, Y5
	VFMADD231PS 32(R12), Y5, Y1
	VPMOVZXWD 32(R13), Y6
	VPSLLD $16, Y6, Y6
	VFMADD231PS 64(R12), Y6, Y2
	VPMOVZXWD 48(R13), Y7
	VPSLLD $16, Y7, Y7
	VFMADD231PS 96(R12), Y7, Y3
	ADDQ $128, R12
	ADDQ $64, R13
	SUBQ $32, CX
	JMP  dotBF16loop32

dotBF16loop8:
	CMPQ CX, $8
	JLT  dotBF16done
	VPMOVZXWD (R13), Y4
	VPSLLD $16, Y4, Y4
	VFMADD231PS (R12), Y4, Y0
	ADDQ $32, R12
	ADDQ $16, R13
	SUBQ $8, CX
	JMP  dotBF16loop8

dotBF16done:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (SI)
	ADDQ $4, SI
	ADDQ DX, R8
	DECQ BX
	JNZ  dotBF16row
	VZEROUPPER
	RET

// func dotRowsF16(x *float32, w *uint16, ld, n, rows int, y *float32)
TEXT ·dotRowsF16(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), DI
	MOVQ w+8(FP), R8
	MOVQ ld+16(FP), DX
	MOVQ n+24(FP), R9
	MOVQ rows+32(FP), BX
	MOVQ y+40(FP), SI
	SHLQ $1, DX

dotF16row:
	MOVQ DI, R12
	MOVQ R8, R13
	MOVQ R9, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

dotF16loop32:
	CMPQ CX, $32
	JLT  dotF16loop8
	VCVTPH2PS 0(R13), Y4
	VFMADD231PS 0(R12), Y4, Y0
	VCVTPH2PS 16(R13), Y5
	VFMADD231PS 32(R12), Y5, Y1
	VCVTPH2PS 32(R13), Y6
	VFMADD231PS 64(R12), Y6, Y2
	VCVTPH2PS 48(R13), Y7
	VFMADD231PS 96(R12), Y7, Y3
	ADDQ $128, R12
	ADDQ $64, R13
	SUBQ $32, CX
	JMP  dotF16loop32

dotF16loop8:
	CMPQ CX, $8
	JLT  dotF16done
	VCVTPH2PS (R13), Y4
	VFMADD231PS (R12), Y4, Y0
	ADDQ $32, R12
	ADDQ $16, R13
	SUBQ $8, CX
	JMP  dotF16loop8

dotF16done:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (SI)
	ADDQ $4, SI
	ADDQ DX, R8
	DECQ BX
	JNZ  dotF16row
	VZEROUPPER
	RET

// func axpyF32(alpha float32, x, y *float32, n int)
TEXT ·axpyF32(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX

axpyloop32:
	CMPQ CX, $32
	JLT  axpyloop8
	VMOVUPS (DI), Y1
	VMOVUPS 32(DI), Y2
	VMOVUPS 64(DI), Y3
	VMOVUPS 96(DI), Y4
	VFMADD231PS (SI), Y0, Y1
	VFMADD231PS 32(SI), Y0, Y2
	VFMADD231PS 64(SI), Y0, Y3
	VFMADD231PS 96(SI), Y0, Y4
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	VMOVUPS Y3, 64(DI)
	VMOVUPS Y4, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  axpyloop32

axpyloop8:
	CMPQ CX, $8
	JLT  axpydone
	VMOVUPS (DI), Y1
	VFMADD231PS (SI), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  axpyloop8

axpydone:
	VZEROUPPER
	RET

// func widenBF16(dst *float32, src *uint16, n int)
TEXT ·widenBF16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

widenbfloop:
	CMPQ CX, $8
	JLT  widenbfdone
	VPMOVZXWD (SI), Y0
	VPSLLD $16, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  widenbfloop

widenbfdone:
	VZEROUPPER
	RET

// func widenF16(dst *float32, src *uint16, n int)
TEXT ·widenF16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

widenhloop:
	CMPQ CX, $8
	JLT  widenhdone
	VCVTPH2PS (SI), Y0
	VMOVUPS Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  widenhloop

widenhdone:
	VZEROUPPER
	RET

// Transposes Y0..Y7 (8 rows of 8) and stores the 8 columns, 64 bytes
// apart, from off(DI): the k-th column is the k-th step of a 16-row panel.
#define TRANSPOSE8STORE(off) \
	VUNPCKLPS Y1, Y0, Y8; \
	VUNPCKHPS Y1, Y0, Y9; \
	VUNPCKLPS Y3, Y2, Y10; \
	VUNPCKHPS Y3, Y2, Y11; \
	VUNPCKLPS Y5, Y4, Y12; \
	VUNPCKHPS Y5, Y4, Y13; \
	VUNPCKLPS Y7, Y6, Y14; \
	VUNPCKHPS Y7, Y6, Y15; \
	VSHUFPS $0x44, Y10, Y8, Y0; \
	VSHUFPS $0xEE, Y10, Y8, Y1; \
	VSHUFPS $0x44, Y11, Y9, Y2; \
	VSHUFPS $0xEE, Y11, Y9, Y3; \
	VSHUFPS $0x44, Y14, Y12, Y4; \
	VSHUFPS $0xEE, Y14, Y12, Y5; \
	VSHUFPS $0x44, Y15, Y13, Y6; \
	VSHUFPS $0xEE, Y15, Y13, Y7; \
	VPERM2F128 $0x20, Y4, Y0, Y8; \
	VPERM2F128 $0x20, Y5, Y1, Y9; \
	VPERM2F128 $0x20, Y6, Y2, Y10; \
	VPERM2F128 $0x20, Y7, Y3, Y11; \
	VPERM2F128 $0x31, Y4, Y0, Y12; \
	VPERM2F128 $0x31, Y5, Y1, Y13; \
	VPERM2F128 $0x31, Y6, Y2, Y14; \
	VPERM2F128 $0x31, Y7, Y3, Y15; \
	VMOVUPS Y8, (off)(DI); \
	VMOVUPS Y9, (off+64)(DI); \
	VMOVUPS Y10, (off+128)(DI); \
	VMOVUPS Y11, (off+192)(DI); \
	VMOVUPS Y12, (off+256)(DI); \
	VMOVUPS Y13, (off+320)(DI); \
	VMOVUPS Y14, (off+384)(DI); \
	VMOVUPS Y15, (off+448)(DI)

// func packT16F32(dst *float32, src *float32, ld, kc int)
TEXT ·packT16F32(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R9
	MOVQ kc+24(FP), CX
	SHLQ $2, R9
	LEAQ (R9)(R9*2), R10

packF32loop:
	MOVQ SI, R8
	LEAQ (R8)(R9*4), R11
	VMOVUPS (R8), Y0
	VMOVUPS (R8)(R9*1), Y1
	VMOVUPS (R8)(R9*2), Y2
	VMOVUPS (R8)(R10*1), Y3
	VMOVUPS (R11), Y4
	VMOVUPS (R11)(R9*1), Y5
	VMOVUPS (R11)(R9*2), Y6
	VMOVUPS (R11)(R10*1), Y7
	TRANSPOSE8STORE(0)
	LEAQ (R11)(R9*4), R8
	LEAQ (R8)(R9*4), R11
	VMOVUPS (R8), Y0
	VMOVUPS (R8)(R9*1), Y1
	VMOVUPS (R8)(R9*2), Y2
	VMOVUPS (R8)(R10*1), Y3
	VMOVUPS (R11), Y4
	VMOVUPS (R11)(R9*1), Y5
	VMOVUPS (R11)(R9*2), Y6
	VMOVUPS (R11)(R10*1), Y7
	TRANSPOSE8STORE(32)
	ADDQ $32, SI
	ADDQ $512, DI
	SUBQ $8, CX
	JGT  packF32loop
	VZEROUPPER
	RET

// func packT16BF16(dst *float32, src *uint16, ld, kc int)
TEXT ·packT16BF16(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R9
	MOVQ kc+24(FP), CX
	SHLQ $1, R9
	LEAQ (R9)(R9*2), R10

packBF16loop:
	MOVQ SI, R8
	LEAQ (R8)(R9*4), R11
	VPMOVZXWD (R8), Y0
	VPSLLD $16, Y0, Y0
	VPMOVZXWD (R8)(R9*1), Y1
	VPSLLD $16, Y1, Y1
	VPMOVZXWD (R8)(R9*2), Y2
	VPSLLD $16, Y2, Y2
	VPMOVZXWD (R8)(R10*1), Y3
	VPSLLD $16, Y3, Y3
	VPMOVZXWD (R11), Y4
	VPSLLD $16, Y4, Y4
	VPMOVZXWD (R11)(R9*1), Y5
	VPSLLD $16, Y5, Y5
	VPMOVZXWD (R11)(R9*2), Y6
	VPSLLD $16, Y6, Y6
	VPMOVZXWD (R11)(R10*1), Y7
	VPSLLD $16, Y7, Y7
	TRANSPOSE8STORE(0)
	LEAQ (R11)(R9*4), R8
	LEAQ (R8)(R9*4), R11
	VPMOVZXWD (R8), Y0
	VPSLLD $16, Y0, Y0
	VPMOVZXWD (R8)(R9*1), Y1
	VPSLLD $16, Y1, Y1
	VPMOVZXWD (R8)(R9*2), Y2
	VPSLLD $16, Y2, Y2
	VPMOVZXWD (R8)(R10*1), Y3
	VPSLLD $16, Y3, Y3
	VPMOVZXWD (R11), Y4
	VPSLLD $16, Y4, Y4
	VPMOVZXWD (R11)(R9*1), Y5
	VPSLLD $16, Y5, Y5
	VPMOVZXWD (R11)(R9*2), Y6
	VPSLLD $16, Y6, Y6
	VPMOVZXWD (R11)(R10*1), Y7
	VPSLLD $16, Y7, Y7
	TRANSPOSE8STORE(32)
	ADDQ $16, SI
	ADDQ $512, DI
	SUBQ $8, CX
	JGT  packBF16loop
	VZEROUPPER
	RET

// func packT16F16(dst *float32, src *uint16, ld, kc int)
TEXT ·packT16F16(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R9
	MOVQ kc+24(FP), CX
	SHLQ $1, R9
	LEAQ (R9)(R9*2), R10

packF16loop:
	MOVQ SI, R8
	LEAQ (R8)(R9*4), R11
	VCVTPH2PS (R8), Y0
	VCVTPH2PS (R8)(R9*1), Y1
	VCVTPH2PS (R8)(R9*2), Y2
	VCVTPH2PS (R8)(R10*1), Y3
	VCVTPH2PS (R11), Y4
	VCVTPH2PS (R11)(R9*1), Y5
	VCVTPH2PS (R11)(R9*2), Y6
	VCVTPH2PS (R11)(R10*1), Y7
	TRANSPOSE8STORE(0)
	LEAQ (R11)(R9*4), R8
	LEAQ (R8)(R9*4), R11
	VCVTPH2PS (R8), Y0
	VCVTPH2PS (R8)(R9*1), Y1
	VCVTPH2PS (R8)(R9*2), Y2
	VCVTPH2PS (R8)(R10*1), Y3
	VCVTPH2PS (R11), Y4
	VCVTPH2PS (R11)(R9*1), Y5
	VCVTPH2PS (R11)(R9*2), Y6
	VCVTPH2PS (R11)(R10*1), Y7
	TRANSPOSE8STORE(32)
	ADDQ $16, SI
	ADDQ $512, DI
	SUBQ $8, CX
	JGT  packF16loop
	VZEROUPPER
	RET

// Constants of the exp kernels (float32 bit patterns unless marked). The
// polynomial is the degree-6 minimax fit of e^r on [-ln2/2, ln2/2] from
// Cephes' expf; ln 2 is split in two (Cody and Waite) so that n·ln2 is
// subtracted without losing the low bits of r.
DATA expc<>+0(SB)/4, $0x3f800000  // 1
DATA expc<>+4(SB)/4, $0x3fb8aa3b  // log2(e)
DATA expc<>+8(SB)/4, $0x3f318000  // ln 2, high part: 0.693359375
DATA expc<>+12(SB)/4, $0xb95e8083 // ln 2, low part: -2.12194440e-4
DATA expc<>+16(SB)/4, $0x39506967 // 1.9875691500e-4
DATA expc<>+20(SB)/4, $0x3ab743ce // 1.3981999507e-3
DATA expc<>+24(SB)/4, $0x3c088908 // 8.3334519073e-3
DATA expc<>+28(SB)/4, $0x3d2aa9c1 // 4.1665795894e-2
DATA expc<>+32(SB)/4, $0x3e2aaaaa // 1.6666665459e-1
DATA expc<>+36(SB)/4, $0x3f000000 // 5.0000001201e-1
DATA expc<>+40(SB)/4, $0x42b17217 // 88.7228317: above it e^x overflows
DATA expc<>+44(SB)/4, $0xc2aeac50 // -87.3365479 = ln(smallest normal): below it, 0
DATA expc<>+48(SB)/4, $0x0000007f // 127, the exponent bias (an integer)
DATA expc<>+52(SB)/4, $0x7f800000 // +Inf
DATA expc<>+56(SB)/4, $0x80000000 // the sign bit
GLOBL expc<>(SB), RODATA|NOPTR, $60

// EXP8 sets Y0 to e^x for the 8 lanes of Y1, clobbering Y2–Y7.
//
// e^x = 2^n · e^r with n = round(x·log2 e) and |r| <= ln2/2; e^r comes
// from the polynomial and 2^n is built in the exponent bits, in two halves
// (2^h · 2^(n-h)) so that n = 128 and n = -126 still make normal numbers.
// Lanes below ln(smallest normal) give 0, lanes above ln(largest float)
// give +Inf, and NaN lanes give NaN.
#define EXP8 \
	VBROADCASTSS expc<>+40(SB), Y2; \
	VMINPS Y2, Y1, Y3; \
	VBROADCASTSS expc<>+44(SB), Y2; \
	VMAXPS Y2, Y3, Y3; \
	VBROADCASTSS expc<>+4(SB), Y2; \
	VMULPS Y2, Y3, Y4; \
	VROUNDPS $0, Y4, Y4; \
	VBROADCASTSS expc<>+8(SB), Y2; \
	VFNMADD231PS Y2, Y4, Y3; \
	VBROADCASTSS expc<>+12(SB), Y2; \
	VFNMADD231PS Y2, Y4, Y3; \
	VBROADCASTSS expc<>+16(SB), Y0; \
	VBROADCASTSS expc<>+20(SB), Y2; \
	VFMADD213PS Y2, Y3, Y0; \
	VBROADCASTSS expc<>+24(SB), Y2; \
	VFMADD213PS Y2, Y3, Y0; \
	VBROADCASTSS expc<>+28(SB), Y2; \
	VFMADD213PS Y2, Y3, Y0; \
	VBROADCASTSS expc<>+32(SB), Y2; \
	VFMADD213PS Y2, Y3, Y0; \
	VBROADCASTSS expc<>+36(SB), Y2; \
	VFMADD213PS Y2, Y3, Y0; \
	VMULPS Y3, Y3, Y5; \
	VFMADD213PS Y3, Y5, Y0; \
	VBROADCASTSS expc<>+0(SB), Y2; \
	VADDPS Y2, Y0, Y0; \
	VCVTPS2DQ Y4, Y4; \
	VPSRAD $1, Y4, Y5; \
	VPSUBD Y5, Y4, Y4; \
	VPBROADCASTD expc<>+48(SB), Y2; \
	VPADDD Y2, Y5, Y5; \
	VPADDD Y2, Y4, Y4; \
	VPSLLD $23, Y5, Y5; \
	VPSLLD $23, Y4, Y4; \
	VMULPS Y5, Y0, Y0; \
	VMULPS Y4, Y0, Y0; \
	VBROADCASTSS expc<>+44(SB), Y2; \
	VCMPPS $1, Y2, Y1, Y6; \
	VANDNPS Y0, Y6, Y0; \
	VBROADCASTSS expc<>+40(SB), Y2; \
	VCMPPS $1, Y1, Y2, Y6; \
	VBROADCASTSS expc<>+52(SB), Y7; \
	VBLENDVPS Y6, Y7, Y0, Y0; \
	VCMPPS $3, Y1, Y1, Y6; \
	VBLENDVPS Y6, Y1, Y0, Y0

// SIGMOID8 sets Y0 to 1 / (1 + e^-x) for the 8 floats x of src (a
// register other than Y0-Y7, or memory): e^-x overflowing to +Inf gives 0,
// as it should. It uses Y0-Y7.
#define SIGMOID8(src) \
	VBROADCASTSS expc<>+56(SB), Y2; \
	VXORPS src, Y2, Y1; \
	EXP8; \
	VBROADCASTSS expc<>+0(SB), Y2; \
	VADDPS Y2, Y0, Y0; \
	VDIVPS Y0, Y2, Y0

// func expF32(dst, src *float32, n int)
TEXT ·expF32(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

exploop:
	VMOVUPS (SI), Y1
	EXP8
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JGT  exploop
	VZEROUPPER
	RET

// func sigmoidF32(dst, src *float32, n int)
TEXT ·sigmoidF32(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

sigmoidloop:
	SIGMOID8((SI))
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JGT  sigmoidloop
	VZEROUPPER
	RET

// func swigluF32(gate, up *float32, n int)
//
// gate[i] = gate[i]·σ(gate[i])·up[i] for i < n, n a positive multiple of 8: the
// sigmoid of sigmoidF32, then the two products rounded in the order
// SwiGLUInPlace's loop rounds them.
TEXT ·swigluF32(SB), NOSPLIT, $0-24
	MOVQ gate+0(FP), DI
	MOVQ up+8(FP), SI
	MOVQ n+16(FP), CX

swigluloop:
	VMOVUPS (DI), Y8
	SIGMOID8(Y8)
	VMULPS Y0, Y8, Y0
	VMULPS (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JGT  swigluloop
	VZEROUPPER
	RET

// func packN16F32(dst, src *float32, ld, kc int)
TEXT ·packN16F32(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	MOVQ kc+24(FP), CX
	SHLQ $2, DX

packN16loop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ DX, SI
	ADDQ $64, DI
	DECQ CX
	JGT  packN16loop
	VZEROUPPER
	RET

// func packM6F32(dst, src *float32, ld, kc int)
//
// Four k steps at a time: a 4×4 transpose of rows 0–3 (unpack and move
// halves), and rows 4–5 interleaved in pairs.
TEXT ·packM6F32(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	MOVQ kc+24(FP), CX
	SHLQ $2, DX
	LEAQ (SI)(DX*1), R8
	LEAQ (SI)(DX*2), R9
	LEAQ (R8)(DX*2), R10
	LEAQ (SI)(DX*4), R11
	LEAQ (R8)(DX*4), R12
	XORQ AX, AX

packM6loop:
	VMOVUPS (SI)(AX*1), X0        // a0 a1 a2 a3 (row 0)
	VMOVUPS (R8)(AX*1), X1        // b (row 1)
	VMOVUPS (R9)(AX*1), X2        // c
	VMOVUPS (R10)(AX*1), X3       // d
	VMOVUPS (R11)(AX*1), X4       // e
	VMOVUPS (R12)(AX*1), X5       // f (row 5)
	VUNPCKLPS X1, X0, X6          // a0 b0 a1 b1
	VUNPCKHPS X1, X0, X7          // a2 b2 a3 b3
	VUNPCKLPS X3, X2, X8          // c0 d0 c1 d1
	VUNPCKHPS X3, X2, X9          // c2 d2 c3 d3
	VMOVLHPS X8, X6, X10          // a0 b0 c0 d0
	VMOVHLPS X6, X8, X11          // a1 b1 c1 d1
	VMOVLHPS X9, X7, X12          // a2 b2 c2 d2
	VMOVHLPS X7, X9, X13          // a3 b3 c3 d3
	VUNPCKLPS X5, X4, X14         // e0 f0 e1 f1
	VUNPCKHPS X5, X4, X15         // e2 f2 e3 f3
	VMOVUPS X10, (DI)
	VMOVLPS X14, 16(DI)
	VMOVUPS X11, 24(DI)
	VMOVHPS X14, 40(DI)
	VMOVUPS X12, 48(DI)
	VMOVLPS X15, 64(DI)
	VMOVUPS X13, 72(DI)
	VMOVHPS X15, 88(DI)
	ADDQ $16, AX
	ADDQ $96, DI
	SUBQ $4, CX
	JGT  packM6loop
	VZEROUPPER
	RET

// func sumRows64(x *float32, b *float32, ld, k int, y *float32)
//
// y[j] += Σ_{r<k} x[r]·b[r*ld+j] for j < 64: 64 columns of a row-major
// float32 matrix summed with the weights x, the accumulators in eight
// registers for all k rows; k > 0.
TEXT ·sumRows64(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ b+8(FP), BX
	MOVQ ld+16(FP), DX
	MOVQ k+24(FP), CX
	MOVQ y+32(FP), DI
	SHLQ $2, DX
	VMOVUPS 0(DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VMOVUPS 128(DI), Y4
	VMOVUPS 160(DI), Y5
	VMOVUPS 192(DI), Y6
	VMOVUPS 224(DI), Y7

sumrowsloop:
	VBROADCASTSS (SI), Y8
	VFMADD231PS 0(BX), Y8, Y0
	VFMADD231PS 32(BX), Y8, Y1
	VFMADD231PS 64(BX), Y8, Y2
	VFMADD231PS 96(BX), Y8, Y3
	VFMADD231PS 128(BX), Y8, Y4
	VFMADD231PS 160(BX), Y8, Y5
	VFMADD231PS 192(BX), Y8, Y6
	VFMADD231PS 224(BX), Y8, Y7
	ADDQ $4, SI
	ADDQ DX, BX
	DECQ CX
	JNZ  sumrowsloop

	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	VZEROUPPER
	RET

// func prefetchL2(p unsafe.Pointer, n int)
//
// Asks for the bytes [p, p+n) to be brought into the L2 cache, one
// 64-byte line at a time, and returns without waiting; n > 0. A prefetch
// never faults, so p need not point at anything in particular.
TEXT ·prefetchL2(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ n+8(FP), CX

prefetchloop:
	PREFETCHT1 (AX)
	ADDQ $64, AX
	SUBQ $64, CX
	JGT  prefetchloop
	RET

// func gemm4x16(kc int, a, b, c *float32, ldc, rows int)
//
// The first rows (3 or 4) of the 6×16 block of gemm6x16, for the last
// panel of A when M leaves 3 or 4 rows over: 8 accumulators instead of 12,
// two thirds of the work, and only the rows that exist are added into C.
TEXT ·gemm4x16(SB), NOSPLIT, $0-48
	EDGEPROLOGUE

gemm4loop:
	STEP4(0, 0)
	STEP4(24, 64)
	STEP4(48, 128)
	STEP4(72, 192)
	ADDQ $96, AX
	ADDQ $256, BX
	SUBQ $4, CX
	JGT  gemm4loop

	STOREROW(Y0, Y1)
	STOREROW(Y2, Y3)
	STOREROW(Y4, Y5)
	CMPQ SI, $4
	JLT  gemm4done
	STOREROW(Y6, Y7)

gemm4done:
	VZEROUPPER
	RET

// func gemm2x16(kc int, a, b, c *float32, ldc, rows int)
//
// The first rows (1 or 2) of the 6×16 block. Two rows give only four
// accumulators, too few to cover the latency of the FMA units, so even and
// odd k steps accumulate apart (eight chains) and are summed at the end.
TEXT ·gemm2x16(SB), NOSPLIT, $0-48
	EDGEPROLOGUE

gemm2loop:
	VMOVUPS 0(BX), Y12
	VMOVUPS 32(BX), Y13
	VBROADCASTSS 0(AX), Y14
	VFMADD231PS Y12, Y14, Y0
	VFMADD231PS Y13, Y14, Y1
	VBROADCASTSS 4(AX), Y15
	VFMADD231PS Y12, Y15, Y2
	VFMADD231PS Y13, Y15, Y3
	VMOVUPS 64(BX), Y12
	VMOVUPS 96(BX), Y13
	VBROADCASTSS 24(AX), Y14
	VFMADD231PS Y12, Y14, Y4
	VFMADD231PS Y13, Y14, Y5
	VBROADCASTSS 28(AX), Y15
	VFMADD231PS Y12, Y15, Y6
	VFMADD231PS Y13, Y15, Y7
	ADDQ $48, AX
	ADDQ $128, BX
	SUBQ $2, CX
	JGT  gemm2loop

	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	STOREROW(Y0, Y1)
	CMPQ SI, $2
	JLT  gemm2done
	STOREROW(Y2, Y3)

gemm2done:
	VZEROUPPER
	RET
