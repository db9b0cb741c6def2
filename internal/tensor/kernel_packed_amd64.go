package tensor

// The AVX2 kernels of the quantized products (kernel_packed_amd64.s). A
// block of 32 codes is zero-extended from bytes to 32-bit lanes
// (VPMOVZXBD), a 4-bit code split from its neighbour by a shift and a mask,
// converted to float and multiplied into x; the scale is applied once per
// group and the bias through the group's sum of x, so a code costs about
// one instruction and the float weights never exist outside registers.

//go:noescape
func dotRowsQ4(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)

//go:noescape
func dotRowsQ8(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)

//go:noescape
func dequantQ4(dst *float32, w *uint32, scales, biases *float32, groups, blocks int)

//go:noescape
func dequantQ8(dst *float32, w *uint32, scales, biases *float32, groups, blocks int)

// prepPackedAVX2 orders x for dotRowsQ4: within every 16 inputs, the 8
// even ones, then the 8 odd ones (the low and the high nibbles of 8
// bytes). 8-bit codes read x as it is.
func prepPackedAVX2(xp, xsum, x []float32, w *PackedMatrix) {
	groupSums(xsum, x, w.GroupSize)
	if w.Bits != 4 {
		copy(xp, x)
		return
	}
	xp = xp[:len(x)]
	for b := 0; b+16 <= len(x); b += 16 {
		src, dst := x[b:b+16:b+16], xp[b:b+16:b+16]
		for t := range 8 {
			dst[t], dst[8+t] = src[2*t], src[2*t+1]
		}
	}
}

// dotRowsPackedAVX2 runs the assembly over rows r0 .. r0+len(y)-1.
func dotRowsPackedAVX2(xp, xsum []float32, w *PackedMatrix, r0 int, y []float32) {
	if w.Bits == 4 {
		runPacked(dotRowsQ4, 32, xp, xsum, w, r0, y)
	} else {
		runPacked(dotRowsQ8, 32, xp, xsum, w, r0, y)
	}
}

// dequantRowAVX2 widens len(dst) inputs of row r from k0 in assembly.
func dequantRowAVX2(dst []float32, w *PackedMatrix, r, k0 int) {
	n := len(dst)
	if n == 0 {
		return
	}
	if n%w.GroupSize != 0 || k0%w.GroupSize != 0 {
		dequantRowPortable(dst, w, r, k0) // not whole groups: never from MatmulPacked
		return
	}
	g0 := (r*w.In + k0) / w.GroupSize
	groups := n / w.GroupSize
	w0 := (r*w.In + k0) * w.Bits / 32
	_ = w.Words[w0+n*w.Bits/32-1]
	_ = w.Scales[g0+groups-1]
	_ = w.Biases[g0+groups-1]
	kernel := dequantQ8
	if w.Bits == 4 {
		kernel = dequantQ4
	}
	kernel(&dst[0], &w.Words[w0], &w.Scales[g0], &w.Biases[g0], groups, w.GroupSize/32)
}
