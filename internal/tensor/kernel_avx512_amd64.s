// Code in this file is the AVX-512 part of the amd64 fast path (see
// kernel_avx512_amd64.go). It needs AVX-512F.

#include "textflag.h"

// One k step of the 16×16 kernel: one vector of the B panel (16 columns)
// times each of the 16 A values of the step, broadcast from memory by the
// FMA itself, into that row's accumulator. ao and bo are byte offsets of
// the step in the A and B panels; bv is the register that takes B.
#define STEP16(ao, bo, bv) \
	VMOVUPS bo(BX), bv; \
	VFMADD231PS.BCST (ao+0)(AX), bv, Z0; \
	VFMADD231PS.BCST (ao+4)(AX), bv, Z1; \
	VFMADD231PS.BCST (ao+8)(AX), bv, Z2; \
	VFMADD231PS.BCST (ao+12)(AX), bv, Z3; \
	VFMADD231PS.BCST (ao+16)(AX), bv, Z4; \
	VFMADD231PS.BCST (ao+20)(AX), bv, Z5; \
	VFMADD231PS.BCST (ao+24)(AX), bv, Z6; \
	VFMADD231PS.BCST (ao+28)(AX), bv, Z7; \
	VFMADD231PS.BCST (ao+32)(AX), bv, Z8; \
	VFMADD231PS.BCST (ao+36)(AX), bv, Z9; \
	VFMADD231PS.BCST (ao+40)(AX), bv, Z10; \
	VFMADD231PS.BCST (ao+44)(AX), bv, Z11; \
	VFMADD231PS.BCST (ao+48)(AX), bv, Z12; \
	VFMADD231PS.BCST (ao+52)(AX), bv, Z13; \
	VFMADD231PS.BCST (ao+56)(AX), bv, Z14; \
	VFMADD231PS.BCST (ao+60)(AX), bv, Z15

// func gemm16x16(kc int, a, b, c *float32, ldc int)
TEXT ·gemm16x16(SB), NOSPLIT, $0-40
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ b+16(FP), BX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), DX
	SHLQ $2, DX
	// Ask for the 16 rows of C now: they are added to at the end, and in
	// a large product they come from L3 or memory, a row every ldc floats.
	MOVQ DI, R8
	LEAQ (DX)(DX*2), R9
	PREFETCHT0 (R8)
	PREFETCHT0 (R8)(DX*1)
	PREFETCHT0 (R8)(DX*2)
	PREFETCHT0 (R8)(R9*1)
	LEAQ (R8)(DX*4), R8
	PREFETCHT0 (R8)
	PREFETCHT0 (R8)(DX*1)
	PREFETCHT0 (R8)(DX*2)
	PREFETCHT0 (R8)(R9*1)
	LEAQ (R8)(DX*4), R8
	PREFETCHT0 (R8)
	PREFETCHT0 (R8)(DX*1)
	PREFETCHT0 (R8)(DX*2)
	PREFETCHT0 (R8)(R9*1)
	LEAQ (R8)(DX*4), R8
	PREFETCHT0 (R8)
	PREFETCHT0 (R8)(DX*1)
	PREFETCHT0 (R8)(DX*2)
	PREFETCHT0 (R8)(R9*1)
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

gemm16loop:
	STEP16(0, 0, Z16)
	STEP16(64, 64, Z17)
	STEP16(128, 128, Z18)
	STEP16(192, 192, Z19)
	ADDQ $256, AX
	ADDQ $256, BX
	SUBQ $4, CX
	JGT  gemm16loop

	VADDPS (DI), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z1, Z1
	VMOVUPS Z1, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z2, Z2
	VMOVUPS Z2, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z3, Z3
	VMOVUPS Z3, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z4, Z4
	VMOVUPS Z4, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z5, Z5
	VMOVUPS Z5, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z6, Z6
	VMOVUPS Z6, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z7, Z7
	VMOVUPS Z7, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z8, Z8
	VMOVUPS Z8, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z9, Z9
	VMOVUPS Z9, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z10, Z10
	VMOVUPS Z10, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z11, Z11
	VMOVUPS Z11, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z12, Z12
	VMOVUPS Z12, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z13, Z13
	VMOVUPS Z13, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z14, Z14
	VMOVUPS Z14, (DI)
	ADDQ DX, DI
	VADDPS (DI), Z15, Z15
	VMOVUPS Z15, (DI)
	VZEROUPPER
	RET

// The end of a group in the AVX-512 dot kernels: Z0 + Z1 (Σ q·x of the
// group) times the group's scale, broadcast by the multiply-add, into Z8;
// the bias times the group's sum of x into X9. CX counts groups.
#define ENDGROUPZ \
	VADDPS Z1, Z0, Z0; \
	VFMADD231PS.BCST (R9)(CX*4), Z0, Z8; \
	VMOVSS (R10)(CX*4), X5; \
	VFMADD231SS (R14)(CX*4), X5, X9; \
	INCQ CX

// Horizontal sum of Z8 plus the scalar X9, stored at (DX), DX advanced.
#define STOREDOTZ \
	VEXTRACTF64X4 $1, Z8, Y4; \
	VADDPS Y4, Y8, Y8; \
	VEXTRACTF128 $1, Y8, X4; \
	VADDPS X4, X8, X8; \
	VHADDPS X8, X8, X8; \
	VHADDPS X8, X8, X8; \
	VADDSS X9, X8, X8; \
	VMOVSS X8, (DX); \
	ADDQ $4, DX

// The floats 0, 1, … 15: the values a 4-bit code stands for before its
// group's scale and bias.
DATA iota16<>+0(SB)/4, $0x000000
DATA iota16<>+4(SB)/4, $0x3f800000
DATA iota16<>+8(SB)/4, $0x40000000
DATA iota16<>+12(SB)/4, $0x40400000
DATA iota16<>+16(SB)/4, $0x40800000
DATA iota16<>+20(SB)/4, $0x40a00000
DATA iota16<>+24(SB)/4, $0x40c00000
DATA iota16<>+28(SB)/4, $0x40e00000
DATA iota16<>+32(SB)/4, $0x41000000
DATA iota16<>+36(SB)/4, $0x41100000
DATA iota16<>+40(SB)/4, $0x41200000
DATA iota16<>+44(SB)/4, $0x41300000
DATA iota16<>+48(SB)/4, $0x41400000
DATA iota16<>+52(SB)/4, $0x41500000
DATA iota16<>+56(SB)/4, $0x41600000
DATA iota16<>+60(SB)/4, $0x41700000
GLOBL iota16<>(SB), RODATA|NOPTR, $64

// One block of 32 codes (16 bytes) against 32 values of xp, through the
// group's table Z13: the low nibbles pick their weights with VPERMPS
// (which reads only the low four bits of each index), the high ones after
// a shift; the weights multiply xp into the accumulators lo and hi.
#define Q4TBLOCK(off, xoff, lo, hi) \
	VPMOVZXBD off(R8), Z4; \
	VPSRLD $4, Z4, Z6; \
	VPERMPS Z13, Z4, Z4; \
	VPERMPS Z13, Z6, Z6; \
	VFMADD231PS xoff(R13), Z4, lo; \
	VFMADD231PS (xoff+64)(R13), Z6, hi

// func dotRowsQ4Z(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)
//
// A block is 32 codes, 16 bytes. Byte t holds codes 2t (low nibble) and
// 2t+1 (high nibble); xp holds x in the matching order, for every 32 codes
// the 16 even ones and then the 16 odd ones. A 4-bit code has only 16
// values, so for each group the kernel computes the 16 weights they stand
// for, q·scale + bias, in one register (one multiply-add), and then looks
// every code's weight up with a permute: no conversion, no per-group sums,
// and the bias needs no sum of x (xsum is not read).
TEXT ·dotRowsQ4Z(SB), NOSPLIT, $0-72
	MOVQ xp+0(FP), DI
	MOVQ w+16(FP), R8
	MOVQ scales+24(FP), R9
	MOVQ biases+32(FP), R10
	MOVQ groups+40(FP), R11
	MOVQ blocks+48(FP), R12
	MOVQ rows+56(FP), BX
	MOVQ y+64(FP), DX
	VMOVUPS iota16<>(SB), Z14

q4zrow:
	MOVQ DI, R13
	XORQ CX, CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3

q4zgroup:
	VBROADCASTSS (R9)(CX*4), Z15
	VMOVAPS Z14, Z13
	VFMADD213PS.BCST (R10)(CX*4), Z15, Z13
	MOVQ R12, AX
	PREFETCHT0 1024(R8)

q4zpair:
	// Two blocks at a time into separate accumulators, so that no
	// accumulator waits for its previous multiply-add.
	CMPQ AX, $2
	JLT  q4zsingle
	Q4TBLOCK(0, 0, Z0, Z1)
	Q4TBLOCK(16, 128, Z2, Z3)
	ADDQ $32, R8
	ADDQ $256, R13
	SUBQ $2, AX
	JMP  q4zpair

q4zsingle:
	TESTQ AX, AX
	JZ   q4zgroupdone
	Q4TBLOCK(0, 0, Z0, Z1)
	ADDQ $16, R8
	ADDQ $128, R13

q4zgroupdone:
	INCQ CX
	CMPQ CX, R11
	JLT  q4zgroup

	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z8
	VXORPS X9, X9, X9
	STOREDOTZ
	LEAQ (R9)(R11*4), R9
	LEAQ (R10)(R11*4), R10
	DECQ BX
	JNZ  q4zrow
	VZEROUPPER
	RET

// func dotRowsQ8Z(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)
//
// A block is 32 codes, 32 bytes, in the order of x.
TEXT ·dotRowsQ8Z(SB), NOSPLIT, $0-72
	MOVQ xp+0(FP), DI
	MOVQ xsum+8(FP), R14
	MOVQ w+16(FP), R8
	MOVQ scales+24(FP), R9
	MOVQ biases+32(FP), R10
	MOVQ groups+40(FP), R11
	MOVQ blocks+48(FP), R12
	MOVQ rows+56(FP), BX
	MOVQ y+64(FP), DX

q8zrow:
	MOVQ DI, R13
	XORQ CX, CX
	VPXORD Z8, Z8, Z8
	VXORPS X9, X9, X9

q8zgroup:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	MOVQ R12, AX

q8zblock:
	PREFETCHT0 1024(R8)
	VPMOVZXBD 0(R8), Z4
	VPMOVZXBD 16(R8), Z5
	VCVTDQ2PS Z4, Z4
	VCVTDQ2PS Z5, Z5
	VFMADD231PS 0(R13), Z4, Z0
	VFMADD231PS 64(R13), Z5, Z1
	ADDQ $32, R8
	ADDQ $128, R13
	DECQ AX
	JNZ  q8zblock

	ENDGROUPZ
	CMPQ CX, R11
	JLT  q8zgroup

	STOREDOTZ
	LEAQ (R9)(R11*4), R9
	LEAQ (R10)(R11*4), R10
	DECQ BX
	JNZ  q8zrow
	VZEROUPPER
	RET
