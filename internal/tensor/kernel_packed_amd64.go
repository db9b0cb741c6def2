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

// dotQ4I8 is the 8-bit-activation product of a Q4Matrix
// (kernel_q4i8_amd64.s): for each row, the group scales times the blocks'
// activation scales go into cs (groups floats of scratch) and the biases
// times the blocks' sums into an accumulator; then each group of 64 codes
// is split into nibbles, multiplied with 32 signed bytes of x8 at a time
// (VPMADDUBSW, into 16-bit pair sums, which cannot overflow: 2·15·127 per
// pair, twice), summed to 32 bits (VPMADDWD with ones), converted to float
// and scaled with one multiply-add.
//
//go:noescape
func dotQ4I8(x8 *int8, dx, xsum *float32, w *uint32, scales, biases *uint16, groups, rows int, y, cs *float32)

// dotRowsQ4I8AVX2 checks that everything the assembly reads is there and
// runs it over rows r0 .. r0+len(y)-1.
func dotRowsQ4I8AVX2(r q8Row, w *Q4Matrix, r0 int, y []float32) {
	rows := len(y)
	if rows == 0 {
		return
	}
	groups := w.In / q4Group
	_ = r.x8[w.In-1]
	_ = r.dx[groups-1]
	_ = r.xsum[groups-1]
	_ = w.Words[(r0+rows)*w.In/8-1]
	_ = w.Scales[(r0+rows)*groups-1]
	_ = w.Biases[(r0+rows)*groups-1]
	var stack [256]float32
	cs := stack[:]
	if groups > len(stack) {
		cs = make([]float32, groups)
	}
	dotQ4I8(&r.x8[0], &r.dx[0], &r.xsum[0], &w.Words[r0*w.In/8], &w.Scales[r0*groups], &w.Biases[r0*groups],
		groups, rows, &y[0], &cs[0])
}

// dotQ4I8x4 is dotQ4I8 for four rows of x at once, readied as a q8Quad
// (x8 and dxs): each group's codes are split into nibbles once and
// multiplied with the four rows' bytes; y[r*ldy+i] for r < 4.
//
//go:noescape
func dotQ4I8x4(x8 *int8, dxs *float32, w *uint32, scales, biases *uint16, groups, rows int, y *float32, ldy int)

// dotRowsQ4I8x4AVX2 checks the arguments of dotQ4I8x4 and runs it over
// rows r0 .. r0+n-1.
func dotRowsQ4I8x4AVX2(q q8Quad, w *Q4Matrix, r0, n int, y []float32, ldy int) {
	if n == 0 {
		return
	}
	groups := w.In / q4Group
	_ = q.x8[4*w.In-1]
	_ = q.dxs[8*groups-1]
	_ = w.Words[(r0+n)*w.In/8-1]
	_ = w.Scales[(r0+n)*groups-1]
	_ = w.Biases[(r0+n)*groups-1]
	_ = y[3*ldy+n-1]
	dotQ4I8x4(&q.x8[0], &q.dxs[0], &w.Words[r0*w.In/8], &w.Scales[r0*groups], &w.Biases[r0*groups], groups, n, &y[0], ldy)
}

// quantQ8 rounds blocks blocks of 64 floats from x to bytes, as
// quantizeQ8Portable does: block c to x8 + c*x8Stride (bytes), its scale
// and sum to dx and xsum + c*dStride (floats).
//
//go:noescape
func quantQ8(x *float32, x8 *int8, x8Stride int, dx, xsum *float32, dStride, blocks int)

func quantizeQ8AVX2(x []float32, x8 []int8, x8Stride int, dx, xsum []float32, dStride int) {
	blocks := len(x) / q4Group
	if blocks == 0 {
		return
	}
	_ = x[blocks*q4Group-1]
	_ = x8[(blocks-1)*x8Stride+q4Group-1]
	_ = dx[(blocks-1)*dStride]
	_ = xsum[(blocks-1)*dStride]
	quantQ8(&x[0], &x8[0], x8Stride, &dx[0], &xsum[0], dStride, blocks)
}
