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
