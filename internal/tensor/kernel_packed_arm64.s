// The arm64 (NEON) kernels of the quantized matrix-vector product: see
// kernel_packed_arm64.go. Instructions the Go assembler does not know are
// written as WORD with the instruction in a comment.

#include "textflag.h"

// Widens the 16 bytes of src (codes 0..255) to 16 floats in V16..V19:
// bytes to half-words to words (UXTL, UXTL2), then UCVTF V16..V19.
#define WIDEN16(src) \
	VUXTL src.B8, V4.H8; \
	VUXTL2 src.B16, V5.H8; \
	VUXTL V4.H4, V16.S4; \
	VUXTL2 V4.H8, V17.S4; \
	VUXTL V5.H4, V18.S4; \
	VUXTL2 V5.H8, V19.S4; \
	WORD $0x6e21da10; \
	WORD $0x6e21da31; \
	WORD $0x6e21da52; \
	WORD $0x6e21da73

// V16..V19 times the 16 floats at (R13), R13 advanced, into V24..V27.
#define MUL16 \
	VLD1.P 64(R13), [V20.S4, V21.S4, V22.S4, V23.S4]; \
	VFMLA V20.S4, V16.S4, V24.S4; \
	VFMLA V21.S4, V17.S4, V25.S4; \
	VFMLA V22.S4, V18.S4, V26.S4; \
	VFMLA V23.S4, V19.S4, V27.S4

// The end of a group: V24..V27 summed (FADD V24+V25, V26+V27, V24+V26),
// times the group's scale, into V8; the bias times the group's sum of x
// into F9.
#define ENDGROUP \
	WORD $0x4e39d718; \
	WORD $0x4e3bd75a; \
	WORD $0x4e3ad718; \
	FMOVS.P 4(R9), F13; \
	VDUP V13.S[0], V12.S4; \
	VFMLA V12.S4, V24.S4, V8.S4; \
	FMOVS.P 4(R10), F14; \
	FMOVS.P 4(R14), F15; \
	FMULS F14, F15, F15; \
	FADDS F15, F9, F9

// Stores the sum of V8's lanes (FADDP V8.4S, then FADDP S8) plus F9 at
// (R5), R5 advanced.
#define STOREDOT \
	WORD $0x6e28d508; \
	WORD $0x7e30d908; \
	FADDS F9, F8, F8; \
	FMOVS.P F8, 4(R5)

#define ZEROACC \
	VEOR V24.B16, V24.B16, V24.B16; \
	VEOR V25.B16, V25.B16, V25.B16; \
	VEOR V26.B16, V26.B16, V26.B16; \
	VEOR V27.B16, V27.B16, V27.B16

// func dotRowsQ4N(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)
//
// A block is 32 codes, 16 bytes: the low nibbles are codes 0, 2, … 30 and
// the high ones 1, 3, … 31; xp holds, for every 32 inputs, the 16 even
// ones and then the 16 odd ones.
TEXT ·dotRowsQ4N(SB), NOSPLIT, $0-72
	MOVD xp+0(FP), R0
	MOVD xsum+8(FP), R1
	MOVD w+16(FP), R8
	MOVD scales+24(FP), R9
	MOVD biases+32(FP), R10
	MOVD groups+40(FP), R11
	MOVD blocks+48(FP), R12
	MOVD rows+56(FP), R4
	MOVD y+64(FP), R5
	MOVD $15, R2
	VDUP R2, V31.B16

q4nrow:
	MOVD R0, R13
	MOVD R1, R14
	MOVD R11, R6
	VEOR V8.B16, V8.B16, V8.B16
	FMOVS ZR, F9

q4ngroup:
	ZEROACC
	MOVD R12, R7

q4nblock:
	VLD1.P 16(R8), [V1.B16]
	VAND V31.B16, V1.B16, V2.B16
	VUSHR $4, V1.B16, V3.B16
	WIDEN16(V2)
	MUL16
	WIDEN16(V3)
	MUL16
	SUBS $1, R7
	BNE  q4nblock

	ENDGROUP
	SUBS $1, R6
	BNE  q4ngroup

	STOREDOT
	SUBS $1, R4
	BNE  q4nrow
	RET

// func dotRowsQ8N(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)
//
// A block is 16 codes, 16 bytes, in the order of x.
TEXT ·dotRowsQ8N(SB), NOSPLIT, $0-72
	MOVD xp+0(FP), R0
	MOVD xsum+8(FP), R1
	MOVD w+16(FP), R8
	MOVD scales+24(FP), R9
	MOVD biases+32(FP), R10
	MOVD groups+40(FP), R11
	MOVD blocks+48(FP), R12
	MOVD rows+56(FP), R4
	MOVD y+64(FP), R5
	MOVD $15, R2
	VDUP R2, V31.B16

q8nrow:
	MOVD R0, R13
	MOVD R1, R14
	MOVD R11, R6
	VEOR V8.B16, V8.B16, V8.B16
	FMOVS ZR, F9

q8ngroup:
	ZEROACC
	MOVD R12, R7

q8nblock:
	VLD1.P 16(R8), [V1.B16]
	WIDEN16(V1)
	MUL16
	SUBS $1, R7
	BNE  q8nblock

	ENDGROUP
	SUBS $1, R6
	BNE  q8ngroup

	STOREDOT
	SUBS $1, R4
	BNE  q8nrow
	RET
