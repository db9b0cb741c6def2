// The AVX2 product of 4-bit weights with 8-bit activations: see
// dotQ4I8 in kernel_packed_amd64.go and MatmulQ4Each in packed_i8.go.

#include "textflag.h"

// Loads 0x0f into every byte of Y15 (the mask of a 4-bit code) and 1 into
// every 16-bit lane of Y14 (VPMADDWD's partner for summing pairs).
#define Q4I8CONSTS \
	MOVL $0x0f0f0f0f, AX; \
	VMOVD AX, X15; \
	VPBROADCASTD X15, Y15; \
	MOVL $0x00010001, AX; \
	VMOVD AX, X14; \
	VPBROADCASTD X14, Y14

// One group of 64 codes (32 bytes at off(R8)) against its 64 bytes of x8
// at xoff(R14), scaled by the float at soff(R13)(CX*4), added into acc.
// t0 and t1 are scratch.
#define GROUP(off, xoff, soff, t0, t1, acc) \
	VMOVDQU off(R8), t0; \
	VPSRLW $4, t0, t1; \
	VPAND Y15, t0, t0; \
	VPAND Y15, t1, t1; \
	VPMADDUBSW xoff(R14), t0, t0; \
	VPMADDUBSW xoff+32(R14), t1, t1; \
	VPADDW t1, t0, t0; \
	VPMADDWD Y14, t0, t0; \
	VCVTDQ2PS t0, t0; \
	VBROADCASTSS soff(R13)(CX*4), t1; \
	VFMADD231PS t1, t0, acc

// Eight zero dwords, then eight of all ones: 8 dwords loaded from
// q4tail+4·k have ones in their last k lanes.
DATA q4tail<>+0(SB)/8, $0
DATA q4tail<>+8(SB)/8, $0
DATA q4tail<>+16(SB)/8, $0
DATA q4tail<>+24(SB)/8, $0
DATA q4tail<>+32(SB)/8, $-1
DATA q4tail<>+40(SB)/8, $-1
DATA q4tail<>+48(SB)/8, $-1
DATA q4tail<>+56(SB)/8, $-1
GLOBL q4tail<>(SB), RODATA|NOPTR, $64

// The groups from CX on, as many as lanes in s and b: cs[c] = scale[c]·dx[c]
// stored, the biases widened into b. A bfloat16 widens to float32 by a
// 16-bit shift.
#define SCALES(s, b) \
	VPMOVZXWD (R9)(CX*2), s; \
	VPSLLD $16, s, s; \
	VMULPS (SI)(CX*4), s, s; \
	VMOVUPS s, (R13)(CX*4); \
	VPMOVZXWD (R10)(CX*2), b; \
	VPSLLD $16, b, b

// func dotQ4I8(x8 *int8, dx, xsum *float32, w *uint32, scales, biases *uint16, groups, rows int, y, cs *float32)
//
// Registers: DI x8, SI dx, R11 xsum, R8 codes, R9 scales, R10 biases (the
// last three move along the rows), R12 groups, BX rows left, DX y, R13 cs.
// Y15 holds 0x0f in every byte, Y14 the 16-bit ones.
TEXT ·dotQ4I8(SB), NOSPLIT, $0-80
	MOVQ x8+0(FP), DI
	MOVQ dx+8(FP), SI
	MOVQ xsum+16(FP), R11
	MOVQ w+24(FP), R8
	MOVQ scales+32(FP), R9
	MOVQ biases+40(FP), R10
	MOVQ groups+48(FP), R12
	MOVQ rows+56(FP), BX
	MOVQ y+64(FP), DX
	MOVQ cs+72(FP), R13
	Q4I8CONSTS

row:
	// cs[c] = scale[c]·dx[c]; Y10 (8 lanes) and X11 (4 lanes) gather
	// bias[c]·xsum[c].
	XORQ CX, CX
	VXORPS Y10, Y10, Y10
	VXORPS X11, X11, X11
	MOVQ R12, AX
	SUBQ $8, AX
	JL   pro4

pro8:
	SCALES(Y4, Y5)
	VFMADD231PS (R11)(CX*4), Y5, Y10
	ADDQ $8, CX
	SUBQ $8, AX
	JGE  pro8
	ADDQ $8, AX // groups left, 0 … 7
	JZ   groups

	// The last AX groups in one 8-wide step over the row's last 8
	// groups: cs is rewritten with the same values where the steps
	// overlap, and the bias lanes already counted are masked off (the
	// last AX lanes of the window at q4tail+4·AX are ones). For a row of
	// 896 inputs this replaces a 4-wide step and two scalar ones.
	MOVQ R12, CX
	SUBQ $8, CX
	SCALES(Y4, Y5)
	LEAQ q4tail<>(SB), R14
	VANDPS (R14)(AX*4), Y5, Y5
	VFMADD231PS (R11)(CX*4), Y5, Y10
	JMP  groups

pro4:
	ADDQ $8, AX // fewer than 8 groups in all: 0 … 7
	CMPQ AX, $4
	JL   pro1
	SCALES(X4, X5)
	VFMADD231PS (R11)(CX*4), X5, X11
	ADDQ $4, CX
	SUBQ $4, AX

pro1:
	TESTQ AX, AX
	JZ    groups
	MOVWLZX (R9)(CX*2), R14
	SHLL $16, R14
	VMOVD R14, X4
	VMULSS (SI)(CX*4), X4, X4
	VMOVSS X4, (R13)(CX*4)
	MOVWLZX (R10)(CX*2), R14
	SHLL $16, R14
	VMOVD R14, X5
	VFMADD231SS (R11)(CX*4), X5, X11
	INCQ CX
	DECQ AX
	JMP  pro1

groups:
	LEAQ (R9)(R12*2), R9
	LEAQ (R10)(R12*2), R10
	MOVQ DI, R14
	XORQ CX, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ R12, AX
	SUBQ $2, AX
	JL   one

pair:
	// The codes stream from memory; ask for them 1 KiB ahead.
	PREFETCHT0 1024(R8)
	GROUP(0, 0, 0, Y4, Y5, Y0)
	GROUP(32, 64, 4, Y6, Y7, Y1)
	ADDQ $64, R8
	ADDQ $128, R14
	ADDQ $2, CX
	SUBQ $2, AX
	JGE  pair

one:
	CMPQ AX, $-1
	JNE  done
	GROUP(0, 0, 0, Y4, Y5, Y0)
	ADDQ $32, R8

done:
	VADDPS Y1, Y0, Y0
	VADDPS Y10, Y0, Y0
	VEXTRACTF128 $1, Y0, X4
	VADDPS X4, X0, X0
	VADDPS X11, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (DX)
	ADDQ $4, DX
	DECQ BX
	JNZ  row
	VZEROUPPER
	RET

// One of four rows of x against a group whose low and high nibbles are in
// Y4 and Y5 and whose scale is in Y6: the row's 64 bytes at r*64(R14),
// its dx at r*4(SI); t0 and t1 are scratch.
#define ROW4(r, t0, t1, acc) \
	VPMADDUBSW (r*64)(R14), Y4, t0; \
	VPMADDUBSW (r*64+32)(R14), Y5, t1; \
	VPADDW t1, t0, t0; \
	VPMADDWD Y14, t0, t0; \
	VCVTDQ2PS t0, t0; \
	VBROADCASTSS (r*4)(SI), t1; \
	VMULPS Y6, t1, t1; \
	VFMADD231PS t1, t0, acc

// func dotQ4I8x4(x8 *int8, dxs *float32, w *uint32, scales, biases *uint16, groups, rows int, y *float32, ldy int)
//
// Registers: DI x8 (four rows, 256 bytes a group), R13 dxs (8 floats a
// group: the rows' dx, then their sums), R8 codes, R9 scales, R10 biases,
// R12 groups, BX weight rows left, DX y, AX and R11 one and three rows of
// y in bytes. Y0..Y3 gather the four rows' products, X10 their biases.
TEXT ·dotQ4I8x4(SB), NOSPLIT, $0-72
	MOVQ x8+0(FP), DI
	MOVQ dxs+8(FP), R13
	MOVQ w+16(FP), R8
	MOVQ scales+24(FP), R9
	MOVQ biases+32(FP), R10
	MOVQ groups+40(FP), R12
	MOVQ rows+48(FP), BX
	MOVQ y+56(FP), DX
	Q4I8CONSTS
	MOVQ ldy+64(FP), AX
	SHLQ $2, AX
	LEAQ (AX)(AX*2), R11

row4:
	MOVQ DI, R14
	MOVQ R13, SI
	MOVQ R12, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS X10, X10, X10

group4:
	VMOVDQU (R8), Y4
	VPSRLW $4, Y4, Y5
	VPAND Y15, Y4, Y4
	VPAND Y15, Y5, Y5
	VPBROADCASTW (R9), Y6
	VPSLLD $16, Y6, Y6
	VPBROADCASTW (R10), X7
	VPSLLD $16, X7, X7
	VFMADD231PS 16(SI), X7, X10
	ROW4(0, Y8, Y9, Y0)
	ROW4(1, Y11, Y12, Y1)
	ROW4(2, Y8, Y9, Y2)
	ROW4(3, Y11, Y12, Y3)
	ADDQ $32, R8
	ADDQ $2, R9
	ADDQ $2, R10
	ADDQ $256, R14
	ADDQ $32, SI
	DECQ CX
	JNZ  group4

	// Y0 = [a01 a23 b01 b23 | a45 a67 b45 b67], and so on: lane r of X0
	// ends as the sum of row r.
	VHADDPS Y1, Y0, Y0
	VHADDPS Y3, Y2, Y2
	VHADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VADDPS X10, X0, X0
	VMOVSS X0, (DX)
	VEXTRACTPS $1, X0, (DX)(AX*1)
	VEXTRACTPS $2, X0, (DX)(AX*2)
	VEXTRACTPS $3, X0, (DX)(R11*1)
	ADDQ $4, DX
	DECQ BX
	JNZ  row4
	VZEROUPPER
	RET

// VPERMD indices that put the dwords of two VPACKSSWB'd vectors of x back
// in order, and the VPSHUFB control that then splits each 16 bytes into
// their 8 even and 8 odd ones.
DATA q8perm<>+0(SB)/4, $0
DATA q8perm<>+4(SB)/4, $4
DATA q8perm<>+8(SB)/4, $1
DATA q8perm<>+12(SB)/4, $5
DATA q8perm<>+16(SB)/4, $2
DATA q8perm<>+20(SB)/4, $6
DATA q8perm<>+24(SB)/4, $3
DATA q8perm<>+28(SB)/4, $7
GLOBL q8perm<>(SB), RODATA|NOPTR, $32

DATA q8shuf<>+0(SB)/8, $0x0e0c0a0806040200
DATA q8shuf<>+8(SB)/8, $0x0f0d0b0907050301
DATA q8shuf<>+16(SB)/8, $0x0e0c0a0806040200
DATA q8shuf<>+24(SB)/8, $0x0f0d0b0907050301
GLOBL q8shuf<>(SB), RODATA|NOPTR, $32

// func quantQ8(x *float32, x8 *int8, x8Stride int, dx, xsum *float32, dStride, blocks int)
TEXT ·quantQ8(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ x8+8(FP), DI
	MOVQ x8Stride+16(FP), R8
	MOVQ dx+24(FP), R9
	MOVQ xsum+32(FP), R10
	MOVQ dStride+40(FP), R11
	SHLQ $2, R11
	MOVQ blocks+48(FP), CX
	MOVL $0x7fffffff, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	VMOVDQU q8perm<>(SB), Y14
	VMOVDQU q8shuf<>(SB), Y13
	MOVL $0x0d800000, AX // q8Floor, 2^-100
	VMOVD AX, X12
	MOVL $0x42fe0000, AX // 127.0
	VMOVD AX, X11

qblock:
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VMOVUPS 128(SI), Y4
	VMOVUPS 160(SI), Y5
	VMOVUPS 192(SI), Y6
	VMOVUPS 224(SI), Y7

	// The block's sum into the lanes of Y8, its largest |x| into Y9.
	VADDPS Y1, Y0, Y8
	VADDPS Y3, Y2, Y9
	VADDPS Y9, Y8, Y8
	VADDPS Y5, Y4, Y9
	VADDPS Y7, Y6, Y10
	VADDPS Y10, Y9, Y9
	VADDPS Y9, Y8, Y8
	VANDPS Y15, Y0, Y9
	VANDPS Y15, Y1, Y10
	VMAXPS Y10, Y9, Y9
	VANDPS Y15, Y2, Y10
	VMAXPS Y10, Y9, Y9
	VANDPS Y15, Y3, Y10
	VMAXPS Y10, Y9, Y9
	VANDPS Y15, Y4, Y10
	VMAXPS Y10, Y9, Y9
	VANDPS Y15, Y5, Y10
	VMAXPS Y10, Y9, Y9
	VANDPS Y15, Y6, Y10
	VMAXPS Y10, Y9, Y9
	VANDPS Y15, Y7, Y10
	VMAXPS Y10, Y9, Y9

	VEXTRACTF128 $1, Y8, X10
	VADDPS X10, X8, X8
	VHADDPS X8, X8, X8
	VHADDPS X8, X8, X8
	VMOVSS X8, (R10)
	VEXTRACTF128 $1, Y9, X10
	VMAXPS X10, X9, X9
	VPERMILPS $0x4e, X9, X10
	VMAXPS X10, X9, X9
	VPERMILPS $0xb1, X9, X10
	VMAXPS X10, X9, X9
	VDIVSS X11, X9, X10 // dx = max|x| / 127
	VMOVSS X10, (R9)
	VMAXSS X12, X9, X9
	VDIVSS X9, X11, X10 // 127 / max(max|x|, q8Floor)
	VBROADCASTSS X10, Y10

	VMULPS Y10, Y0, Y0
	VMULPS Y10, Y1, Y1
	VMULPS Y10, Y2, Y2
	VMULPS Y10, Y3, Y3
	VMULPS Y10, Y4, Y4
	VMULPS Y10, Y5, Y5
	VMULPS Y10, Y6, Y6
	VMULPS Y10, Y7, Y7
	VCVTPS2DQ Y0, Y0
	VCVTPS2DQ Y1, Y1
	VCVTPS2DQ Y2, Y2
	VCVTPS2DQ Y3, Y3
	VCVTPS2DQ Y4, Y4
	VCVTPS2DQ Y5, Y5
	VCVTPS2DQ Y6, Y6
	VCVTPS2DQ Y7, Y7
	// To bytes: the packs interleave the 128-bit lanes, VPERMD undoes it,
	// and VPSHUFB, VPERMQ and VPERM2I128 gather the even inputs into the
	// first 32 bytes and the odd ones into the next 32.
	VPACKSSDW Y1, Y0, Y0
	VPACKSSDW Y3, Y2, Y2
	VPACKSSDW Y5, Y4, Y4
	VPACKSSDW Y7, Y6, Y6
	VPACKSSWB Y2, Y0, Y0
	VPACKSSWB Y6, Y4, Y4
	VPERMD Y0, Y14, Y0
	VPERMD Y4, Y14, Y4
	VPSHUFB Y13, Y0, Y0
	VPSHUFB Y13, Y4, Y4
	VPERMQ $0xd8, Y0, Y0
	VPERMQ $0xd8, Y4, Y4
	VPERM2I128 $0x20, Y4, Y0, Y1
	VPERM2I128 $0x31, Y4, Y0, Y2
	VMOVDQU Y1, (DI)
	VMOVDQU Y2, 32(DI)

	ADDQ $256, SI
	ADDQ R8, DI
	ADDQ R11, R9
	ADDQ R11, R10
	DECQ CX
	JNZ  qblock
	VZEROUPPER
	RET
