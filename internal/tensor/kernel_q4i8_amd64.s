// The AVX2 product of 4-bit weights with 8-bit activations: see
// dotQ4I8 in kernel_packed_amd64.go and MatmulQ4Each in packed_i8.go.

#include "textflag.h"

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
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x00010001, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14

row:
	// cs[c] = scale[c]·dx[c]; Y10 (8 lanes) and X11 (4 lanes) gather
	// bias[c]·xsum[c]. A bfloat16 widens to float32 by a 16-bit shift.
	XORQ CX, CX
	VXORPS Y10, Y10, Y10
	VXORPS X11, X11, X11
	MOVQ R12, AX
	SUBQ $8, AX
	JL   pro4

pro8:
	VPMOVZXWD (R9)(CX*2), Y4
	VPSLLD $16, Y4, Y4
	VMULPS (SI)(CX*4), Y4, Y4
	VMOVUPS Y4, (R13)(CX*4)
	VPMOVZXWD (R10)(CX*2), Y5
	VPSLLD $16, Y5, Y5
	VFMADD231PS (R11)(CX*4), Y5, Y10
	ADDQ $8, CX
	SUBQ $8, AX
	JGE  pro8

pro4:
	ADDQ $8, AX // groups left, 0 … 7
	CMPQ AX, $4
	JL   pro1
	VPMOVZXWD (R9)(CX*2), X4
	VPSLLD $16, X4, X4
	VMULPS (SI)(CX*4), X4, X4
	VMOVUPS X4, (R13)(CX*4)
	VPMOVZXWD (R10)(CX*2), X5
	VPSLLD $16, X5, X5
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
