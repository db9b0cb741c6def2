// The amd64 (AVX2) kernels of the quantized products: see
// kernel_packed_amd64.go for what each computes.

#include "textflag.h"

// Loads 0x0000000f into every 32-bit lane of Y15, the mask of a 4-bit code.
#define NIBBLEMASK \
	MOVL $15, AX; \
	VMOVD AX, X15; \
	VPBROADCASTD X15, Y15

// Horizontal sum of Y8 plus the scalar X9, stored at (DX), DX advanced.
#define STOREDOT \
	VEXTRACTF128 $1, Y8, X4; \
	VADDPS X4, X8, X8; \
	VHADDPS X8, X8, X8; \
	VHADDPS X8, X8, X8; \
	VADDSS X9, X8, X8; \
	VMOVSS X8, (DX); \
	ADDQ $4, DX

// The end of a group in the dot kernels: Y0..Y3 (Σ q·x of the group) times
// the group's scale into Y8, the bias times the group's sum of x into X9.
#define ENDGROUP \
	VADDPS Y1, Y0, Y0; \
	VADDPS Y3, Y2, Y2; \
	VADDPS Y2, Y0, Y0; \
	VBROADCASTSS (R9), Y4; \
	VFMADD231PS Y4, Y0, Y8; \
	VMOVSS (R10), X5; \
	VFMADD231SS (R14), X5, X9; \
	ADDQ $4, R9; \
	ADDQ $4, R10; \
	ADDQ $4, R14

// func dotRowsQ4(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)
//
// A block is 32 codes, 16 bytes. Byte t of a block holds codes 2t (low
// nibble) and 2t+1 (high nibble); xp holds x in the matching order, for
// each 16 codes the 8 even ones and then the 8 odd ones, so the low and
// high nibbles of 8 bytes multiply 8 contiguous floats each.
TEXT ·dotRowsQ4(SB), NOSPLIT, $0-72
	MOVQ xp+0(FP), DI
	MOVQ xsum+8(FP), SI
	MOVQ w+16(FP), R8
	MOVQ scales+24(FP), R9
	MOVQ biases+32(FP), R10
	MOVQ groups+40(FP), R11
	MOVQ blocks+48(FP), R12
	MOVQ rows+56(FP), BX
	MOVQ y+64(FP), DX
	NIBBLEMASK

q4row:
	MOVQ DI, R13
	MOVQ SI, R14
	MOVQ R11, CX
	VXORPS Y8, Y8, Y8
	VXORPS X9, X9, X9

q4group:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ R12, AX

q4block:
	// The codes stream from memory; ask for them 1 KiB ahead.
	PREFETCHT0 1024(R8)
	VPMOVZXBD 0(R8), Y4
	VPMOVZXBD 8(R8), Y5
	VPSRLD $4, Y4, Y6
	VPSRLD $4, Y5, Y7
	VPAND Y15, Y4, Y4
	VPAND Y15, Y5, Y5
	VCVTDQ2PS Y4, Y4
	VCVTDQ2PS Y6, Y6
	VCVTDQ2PS Y5, Y5
	VCVTDQ2PS Y7, Y7
	VFMADD231PS 0(R13), Y4, Y0
	VFMADD231PS 32(R13), Y6, Y1
	VFMADD231PS 64(R13), Y5, Y2
	VFMADD231PS 96(R13), Y7, Y3
	ADDQ $16, R8
	ADDQ $128, R13
	DECQ AX
	JNZ  q4block

	ENDGROUP
	DECQ CX
	JNZ  q4group

	STOREDOT
	DECQ BX
	JNZ  q4row
	VZEROUPPER
	RET

// func dotRowsQ8(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)
//
// A block is 32 codes, 32 bytes, one byte each, in the order of x.
TEXT ·dotRowsQ8(SB), NOSPLIT, $0-72
	MOVQ xp+0(FP), DI
	MOVQ xsum+8(FP), SI
	MOVQ w+16(FP), R8
	MOVQ scales+24(FP), R9
	MOVQ biases+32(FP), R10
	MOVQ groups+40(FP), R11
	MOVQ blocks+48(FP), R12
	MOVQ rows+56(FP), BX
	MOVQ y+64(FP), DX

q8row:
	MOVQ DI, R13
	MOVQ SI, R14
	MOVQ R11, CX
	VXORPS Y8, Y8, Y8
	VXORPS X9, X9, X9

q8group:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ R12, AX

q8block:
	PREFETCHT0 1024(R8)
	VPMOVZXBD 0(R8), Y4
	VPMOVZXBD 8(R8), Y5
	VPMOVZXBD 16(R8), Y6
	VPMOVZXBD 24(R8), Y7
	VCVTDQ2PS Y4, Y4
	VCVTDQ2PS Y5, Y5
	VCVTDQ2PS Y6, Y6
	VCVTDQ2PS Y7, Y7
	VFMADD231PS 0(R13), Y4, Y0
	VFMADD231PS 32(R13), Y5, Y1
	VFMADD231PS 64(R13), Y6, Y2
	VFMADD231PS 96(R13), Y7, Y3
	ADDQ $32, R8
	ADDQ $128, R13
	DECQ AX
	JNZ  q8block

	ENDGROUP
	DECQ CX
	JNZ  q8group

	STOREDOT
	DECQ BX
	JNZ  q8row
	VZEROUPPER
	RET

// Widens 16 codes of 4 bits (8 bytes at off(R8)) to q·Y13 + Y14 and
// stores them in order at doff(DI): the even codes (low nibbles) and the
// odd ones (high nibbles) are computed apart and interleaved again.
#define DEQ16(off, doff) \
	VPMOVZXBD off(R8), Y4; \
	VPSRLD $4, Y4, Y6; \
	VPAND Y15, Y4, Y4; \
	VCVTDQ2PS Y4, Y4; \
	VCVTDQ2PS Y6, Y6; \
	VFMADD213PS Y14, Y13, Y4; \
	VFMADD213PS Y14, Y13, Y6; \
	VUNPCKLPS Y6, Y4, Y8; \
	VUNPCKHPS Y6, Y4, Y9; \
	VPERM2F128 $0x20, Y9, Y8, Y10; \
	VPERM2F128 $0x31, Y9, Y8, Y11; \
	VMOVUPS Y10, doff(DI); \
	VMOVUPS Y11, (doff+32)(DI)

// func dequantQ4(dst *float32, w *uint32, scales, biases *float32, groups, blocks int)
TEXT ·dequantQ4(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ w+8(FP), R8
	MOVQ scales+16(FP), R9
	MOVQ biases+24(FP), R10
	MOVQ groups+32(FP), CX
	MOVQ blocks+40(FP), R12
	NIBBLEMASK

dq4group:
	VBROADCASTSS (R9), Y13
	VBROADCASTSS (R10), Y14
	MOVQ R12, AX

dq4block:
	DEQ16(0, 0)
	DEQ16(8, 64)
	ADDQ $16, R8
	ADDQ $128, DI
	DECQ AX
	JNZ  dq4block

	ADDQ $4, R9
	ADDQ $4, R10
	DECQ CX
	JNZ  dq4group
	VZEROUPPER
	RET

// func dequantQ8(dst *float32, w *uint32, scales, biases *float32, groups, blocks int)
TEXT ·dequantQ8(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ w+8(FP), R8
	MOVQ scales+16(FP), R9
	MOVQ biases+24(FP), R10
	MOVQ groups+32(FP), CX
	MOVQ blocks+40(FP), R12

dq8group:
	VBROADCASTSS (R9), Y13
	VBROADCASTSS (R10), Y14
	MOVQ R12, AX

dq8block:
	VPMOVZXBD 0(R8), Y4
	VPMOVZXBD 8(R8), Y5
	VPMOVZXBD 16(R8), Y6
	VPMOVZXBD 24(R8), Y7
	VCVTDQ2PS Y4, Y4
	VCVTDQ2PS Y5, Y5
	VCVTDQ2PS Y6, Y6
	VCVTDQ2PS Y7, Y7
	VFMADD213PS Y14, Y13, Y4
	VFMADD213PS Y14, Y13, Y5
	VFMADD213PS Y14, Y13, Y6
	VFMADD213PS Y14, Y13, Y7
	VMOVUPS Y4, 0(DI)
	VMOVUPS Y5, 32(DI)
	VMOVUPS Y6, 64(DI)
	VMOVUPS Y7, 96(DI)
	ADDQ $32, R8
	ADDQ $128, DI
	DECQ AX
	JNZ  dq8block

	ADDQ $4, R9
	ADDQ $4, R10
	DECQ CX
	JNZ  dq8group
	VZEROUPPER
	RET
