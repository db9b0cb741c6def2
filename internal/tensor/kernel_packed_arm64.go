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

// prepPackedNEON orders x as dotRowsQ4N reads it: within every 32 inputs,
// the 16 even ones, then the 16 odd ones (the order of the AVX-512
// kernel). 8-bit codes read x as it is.
func prepPackedNEON(xp, xsum, x []float32, w *PackedMatrix) {
	groupSums(xsum, x, w.GroupSize)
	if w.Bits != 4 {
		copy(xp, x)
		return
	}
	evenOdd32(xp, x)
}

func dotRowsPackedNEON(xp, xsum []float32, w *PackedMatrix, r0 int, y []float32) {
	rows := len(y)
	if rows == 0 {
		return
	}
	groups := w.In / w.GroupSize
	wordsPerRow := w.In * w.Bits / 32
	_ = xp[w.In-1]
	_ = xsum[groups-1]
	_ = w.Words[(r0+rows)*wordsPerRow-1]
	_ = w.Scales[(r0+rows)*groups-1]
	_ = w.Biases[(r0+rows)*groups-1]
	kernel, perBlock := dotRowsQ8N, 16
	if w.Bits == 4 {
		kernel, perBlock = dotRowsQ4N, 32
	}
	kernel(&xp[0], &xsum[0], &w.Words[r0*wordsPerRow], &w.Scales[r0*groups], &w.Biases[r0*groups],
		groups, w.GroupSize/perBlock, rows, &y[0])
}
