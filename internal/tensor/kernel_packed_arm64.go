package tensor

// The NEON kernels of the quantized matrix-vector product
// (kernel_packed_arm64.s): 16 bytes of codes at a time, the two nibbles of
// a byte split with a mask and a shift, widened to 32-bit lanes and
// converted to float in registers, then multiplied into x; the scale is
// applied once per group and the bias through the group's sum of x. The
// prefill path widens weight rows with the portable dequantRow.

//go:noescape
func dotRowsQ4N(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)

//go:noescape
func dotRowsQ8N(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)

func dotRowsPackedNEON(xp, xsum []float32, w *PackedMatrix, r0 int, y []float32) {
	if w.Bits == 4 {
		runPacked(dotRowsQ4N, 32, xp, xsum, w, r0, y)
	} else {
		runPacked(dotRowsQ8N, 16, xp, xsum, w, r0, y)
	}
}
