#include "textflag.h"

// func sumRows32(x *float32, b *float32, ld, k int, y *float32)
//
// sumRows64 for 32 columns: y[j] += Σ_{r<k} x[r]·b[r*ld+j] for j < 32,
// the accumulators in four registers for all k rows; k > 0. One head's
// values in a page of a paged KV cache (head dimension 32, 96 or 128 past
// its 64-column blocks) are such a block.
TEXT ·sumRows32(SB), NOSPLIT, $0-40
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

sumrows32loop:
	VBROADCASTSS (SI), Y8
	VFMADD231PS 0(BX), Y8, Y0
	VFMADD231PS 32(BX), Y8, Y1
	VFMADD231PS 64(BX), Y8, Y2
	VFMADD231PS 96(BX), Y8, Y3
	ADDQ $4, SI
	ADDQ DX, BX
	DECQ CX
	JNZ  sumrows32loop

	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VZEROUPPER
	RET

// One 8-value piece of x (register xv, byte offset off in the rows) times
// four rows (R13, then DX, 2·DX and R10 = 3·DX bytes on) into their
// accumulators a0–a3.
#define DOT4(off, xv, a0, a1, a2, a3) \
	VFMADD231PS off(R13), xv, a0; \
	VFMADD231PS off(R13)(DX*1), xv, a1; \
	VFMADD231PS off(R13)(DX*2), xv, a2; \
	VFMADD231PS off(R13)(R10*1), xv, a3

// func dotRows4F32(x *float32, w *float32, ld, n, rows int, y *float32)
//
// dotRowsF32 for short rows, four at a time: y[r] = Σ_{k<n} x[k]·w[r*ld+k]
// for r < rows, n a positive multiple of 32, rows a positive multiple of
// 4. Each 64 values of x (32 for the last ones when n is an odd multiple
// of 32) stay in Y8–Y15 while four rows are multiplied by them, two
// accumulators a row (Y0/Y1 for row 0, Y2/Y3, Y4/Y5, Y6/Y7: eight chains
// of FMAs in flight), and the four rows' sums are reduced together and
// stored with one write, where dotRowsF32 reloads x for every row and
// reduces each row on its own (for a row of 64, a third of its
// instructions). A decode step's attention scores (one query against a
// head's cached keys, 32 to 128 floats a row) are such rows.
TEXT ·dotRows4F32(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), DI
	MOVQ w+8(FP), R8
	MOVQ ld+16(FP), DX
	MOVQ n+24(FP), R9
	MOVQ rows+32(FP), BX
	MOVQ y+40(FP), SI
	SHLQ $2, DX
	LEAQ (DX)(DX*2), R10

dot4row:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ DI, R12
	MOVQ R8, R13
	MOVQ R9, CX

dot4chunk:
	CMPQ CX, $64
	JLT  dot4tail
	VMOVUPS 0(R12), Y8
	VMOVUPS 32(R12), Y9
	VMOVUPS 64(R12), Y10
	VMOVUPS 96(R12), Y11
	VMOVUPS 128(R12), Y12
	VMOVUPS 160(R12), Y13
	VMOVUPS 192(R12), Y14
	VMOVUPS 224(R12), Y15
	DOT4(0, Y8, Y0, Y2, Y4, Y6)
	DOT4(32, Y9, Y1, Y3, Y5, Y7)
	DOT4(64, Y10, Y0, Y2, Y4, Y6)
	DOT4(96, Y11, Y1, Y3, Y5, Y7)
	DOT4(128, Y12, Y0, Y2, Y4, Y6)
	DOT4(160, Y13, Y1, Y3, Y5, Y7)
	DOT4(192, Y14, Y0, Y2, Y4, Y6)
	DOT4(224, Y15, Y1, Y3, Y5, Y7)
	ADDQ $256, R12
	ADDQ $256, R13
	SUBQ $64, CX
	JMP  dot4chunk

dot4tail:
	CMPQ CX, $32
	JLT  dot4reduce
	VMOVUPS 0(R12), Y8
	VMOVUPS 32(R12), Y9
	VMOVUPS 64(R12), Y10
	VMOVUPS 96(R12), Y11
	DOT4(0, Y8, Y0, Y2, Y4, Y6)
	DOT4(32, Y9, Y1, Y3, Y5, Y7)
	DOT4(64, Y10, Y0, Y2, Y4, Y6)
	DOT4(96, Y11, Y1, Y3, Y5, Y7)

dot4reduce:
	// pairwise sums, then the four rows' horizontal sums side by side in X0
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y5, Y4, Y4
	VADDPS Y7, Y6, Y6
	VHADDPS Y2, Y0, Y0
	VHADDPS Y6, Y4, Y4
	VHADDPS Y4, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVUPS X0, (SI)
	ADDQ $16, SI
	LEAQ (R8)(DX*4), R8
	SUBQ $4, BX
	JNZ  dot4row
	VZEROUPPER
	RET
