package tensor

import "fmt"

// PackedMatrix is an Out×In weight matrix in MLX's affine-quantized form:
// each row's inputs are split into groups of GroupSize, each input is a
// Bits-bit code q (4 or 8), 32/Bits of them to a uint32 word, low bits
// first, and the weight it stands for is
//
//	w[r][j] = q[r][j]·Scales[r·G + j/GroupSize] + Biases[r·G + j/GroupSize]
//
// with G = In/GroupSize groups to a row. Scales and Biases are float32 here
// (a checkpoint stores them as bf16 or f16; widening them once costs a few
// percent of the packed size). A PackedMatrix only points at its slices.
type PackedMatrix struct {
	Out, In         int
	Bits, GroupSize int
	Words           []uint32
	Scales, Biases  []float32
}

// check panics unless the matrix is consistent; the kernels trust it.
func (w *PackedMatrix) check(op string) {
	if w.Bits != 4 && w.Bits != 8 {
		panic(fmt.Sprintf("tensor.%s: %d-bit codes: only 4 and 8 are supported", op, w.Bits))
	}
	if (w.GroupSize != 32 && w.GroupSize != 64 && w.GroupSize != 128) || w.In <= 0 || w.In%w.GroupSize != 0 || w.Out <= 0 {
		panic(fmt.Sprintf("tensor.%s: a %dx%d matrix in groups of %d: the group size must be 32, 64 or 128 and divide In",
			op, w.Out, w.In, w.GroupSize))
	}
	groups := w.Out * (w.In / w.GroupSize)
	if len(w.Words) != w.Out*w.In*w.Bits/32 || len(w.Scales) != groups || len(w.Biases) != groups {
		panic(fmt.Sprintf("tensor.%s: a %dx%d %d-bit matrix in groups of %d needs %d words and %d scales and biases; got %d, %d and %d",
			op, w.Out, w.In, w.Bits, w.GroupSize, w.Out*w.In*w.Bits/32, groups, len(w.Words), len(w.Scales), len(w.Biases)))
	}
}

// packedTiledRows is the number of rows of x from which MatmulPacked
// widens the weights into panels for the tiled product (prefill) instead of
// running one matrix-vector product per row (decode). Below it, reading the
// packed weights once per row costs less than widening them.
const packedTiledRows = 8

// MatmulPacked returns x·Wᵀ for x of shape [..., In]: [..., Out], Float32.
// It never builds W in float32. For a few rows of x it decodes a group of
// codes at a time in registers against x (the matrix-vector product of a
// decode step, limited by how fast the packed bytes stream in); for more,
// it widens a 16-row block of W at a time into the panels of the tiled
// product that Matmul uses (prefill, limited by arithmetic).
func MatmulPacked(x *Tensor, w *PackedMatrix) *Tensor {
	w.check("MatmulPacked")
	if x.NDim() == 0 || x.shape[x.NDim()-1] != w.In {
		panic(fmt.Sprintf("tensor.MatmulPacked: x %v times a %dx%d weight: x's last dimension must be %d", x.shape, w.Out, w.In, w.In))
	}
	if m := x.Size() / w.In; m >= packedTiledRows {
		xs := x.Data()
		if x.dtype != Float32 {
			xs = AsType(x, Float32).Data()
		}
		y := make([]float32, m*w.Out)
		p := &product{m: m, k: w.In, n: w.Out, transposed: true, aOff: []int{0}, bOff: []int{0},
			a: xs, b: operand{packed: w}, c: y}
		p.tiled()
		shape := append(append([]int(nil), x.shape[:x.NDim()-1]...), w.Out)
		return &Tensor{dtype: Float32, shape: shape, f32: y}
	}
	// A few rows: the matrix-vector path, shared with MatmulPackedEach.
	return MatmulPackedEach(x, w)[0]
}

// MatmulPackedEach returns x·Wᵀ for each W of ws, as MatmulPacked would
// one at a time. In a decode step (few rows of x) the matrices that read
// the same input — q, k and v; gate and up — then share one preparation of
// x and one pass over the cores: fewer hand-offs, and the small k and v
// projections (128 rows for Qwen2-0.5B) ride along with q instead of
// being split across the cores on their own. The matrices must share In,
// and for the shared pass Bits and GroupSize; otherwise, and for many rows
// of x, each is multiplied on its own.
func MatmulPackedEach(x *Tensor, ws ...*PackedMatrix) []*Tensor {
	out := make([]*Tensor, len(ws))
	for _, w := range ws {
		w.check("MatmulPackedEach")
		if x.NDim() == 0 || x.shape[x.NDim()-1] != w.In {
			panic(fmt.Sprintf("tensor.MatmulPackedEach: x %v times a %dx%d weight: x's last dimension must be %d", x.shape, w.Out, w.In, w.In))
		}
	}
	m := x.Size() / max(1, x.shape[x.NDim()-1])
	shared := m < packedTiledRows && len(ws) > 0
	for _, w := range ws {
		shared = shared && w.Bits == ws[0].Bits && w.GroupSize == ws[0].GroupSize
	}
	if !shared {
		for i, w := range ws {
			out[i] = MatmulPacked(x, w)
		}
		return out
	}
	xs := x.Data()
	if x.dtype != Float32 {
		xs = AsType(x, Float32).Data()
	}
	in, first := ws[0].In, ws[0]
	starts := make([]int, len(ws)+1) // matrix i owns the combined rows [starts[i], starts[i+1])
	ys := make([][]float32, len(ws))
	for i, w := range ws {
		starts[i+1] = starts[i] + w.Out
		ys[i] = make([]float32, m*w.Out)
	}
	ks := active
	groups := in / first.GroupSize
	prep := getBuf(in + groups)
	defer putBuf(prep)
	xp, xsum := (*prep)[:in], (*prep)[in:in+groups]
	grain := roundUp(max(1, smallMatmul*8/(in*first.Bits)), 4)
	for r := range m {
		ks.prepPacked(xp, xsum, xs[r*in:(r+1)*in], first)
		parallelFor(starts[len(ws)], grain, func(lo, hi int) {
			for i, w := range ws {
				a, b := max(lo, starts[i]), min(hi, starts[i+1])
				if a < b {
					ks.dotRowsPacked(xp, xsum, w, a-starts[i], ys[i][r*w.Out+a-starts[i]:r*w.Out+b-starts[i]])
				}
			}
		})
	}
	for i, w := range ws {
		shape := append(append([]int(nil), x.shape[:x.NDim()-1]...), w.Out)
		out[i] = &Tensor{dtype: Float32, shape: shape, f32: ys[i]}
	}
	return out
}

// prepPackedPortable readies x for dotRowsPackedPortable: xp is x itself
// and xsum[g] the sum of group g of x, so that a group of a row costs
//
//	Σ_j x[j]·(q[j]·s + b) = s·Σ_j q[j]·x[j] + b·xsum[g]
//
// one multiply-add per code and two per group.
func prepPackedPortable(xp, xsum, x []float32, w *PackedMatrix) {
	copy(xp, x)
	groupSums(xsum, x, w.GroupSize)
}

func groupSums(xsum, x []float32, groupSize int) {
	for g := range xsum {
		var s float32
		for _, v := range x[g*groupSize : (g+1)*groupSize] {
			s += v
		}
		xsum[g] = s
	}
}

// prepPackedEvenOdd32 readies x for the 4-bit kernels that widen 16 bytes
// (32 codes) at a time (AVX-512, NEON): x in evenOdd32's order, and the
// group sums. 8-bit codes read x as it is.
func prepPackedEvenOdd32(xp, xsum, x []float32, w *PackedMatrix) {
	groupSums(xsum, x, w.GroupSize)
	if w.Bits != 4 {
		copy(xp, x)
		return
	}
	evenOdd32(xp, x)
}

// evenOdd32 copies x into xp reordered for 4-bit kernels that widen 16
// bytes (32 codes) at a time: within every 32 inputs, the 16 even ones and
// then the 16 odd ones, the codes of the low and the high nibbles.
func evenOdd32(xp, x []float32) {
	xp = xp[:len(x)]
	for b := 0; b+32 <= len(x); b += 32 {
		src, dst := x[b:b+32:b+32], xp[b:b+32:b+32]
		for t := range 16 {
			dst[t], dst[16+t] = src[2*t], src[2*t+1]
		}
	}
}

// dotRowsPackedPortable sets y[i] = Σ_j x[j]·w[r0+i][j] from the xp and
// xsum of prepPackedPortable.
func dotRowsPackedPortable(xp, xsum []float32, w *PackedMatrix, r0 int, y []float32) {
	groups := w.In / w.GroupSize
	per := 32 / w.Bits
	wordsPerRow, wordsPerGroup := w.In/per, w.GroupSize/per
	for i := range y {
		r := r0 + i
		row := w.Words[r*wordsPerRow : (r+1)*wordsPerRow]
		sc, bi := w.Scales[r*groups:(r+1)*groups], w.Biases[r*groups:(r+1)*groups]
		var acc float32
		for g := range groups {
			gw := row[g*wordsPerGroup : (g+1)*wordsPerGroup]
			gx := xp[g*w.GroupSize : (g+1)*w.GroupSize]
			var dot float32
			if w.Bits == 4 {
				for k, wd := range gw {
					xx := gx[k*8 : k*8+8 : k*8+8]
					dot += float32(wd&15)*xx[0] + float32(wd>>4&15)*xx[1] + float32(wd>>8&15)*xx[2] + float32(wd>>12&15)*xx[3] +
						float32(wd>>16&15)*xx[4] + float32(wd>>20&15)*xx[5] + float32(wd>>24&15)*xx[6] + float32(wd>>28)*xx[7]
				}
			} else {
				for k, wd := range gw {
					xx := gx[k*4 : k*4+4 : k*4+4]
					dot += float32(wd&255)*xx[0] + float32(wd>>8&255)*xx[1] + float32(wd>>16&255)*xx[2] + float32(wd>>24)*xx[3]
				}
			}
			acc += sc[g]*dot + bi[g]*xsum[g]
		}
		y[i] = acc
	}
}

// packedKernel is the signature of the assembly matrix-vector kernels of
// the quantized product: rows rows of codes from w, groups groups a row of
// blocks blocks each, against xp (x in the kernel's order) and xsum.
type packedKernel func(xp, xsum *float32, w *uint32, scales, biases *float32, groups, blocks, rows int, y *float32)

// runPacked checks that rows r0 .. r0+len(y)-1 of w, x and its group sums
// are all there, so that the assembly can trust its arguments, and runs
// kernel over those rows; perBlock is how many codes it takes per block.
func runPacked(kernel packedKernel, perBlock int, xp, xsum []float32, w *PackedMatrix, r0 int, y []float32) {
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
	kernel(&xp[0], &xsum[0], &w.Words[r0*wordsPerRow], &w.Scales[r0*groups], &w.Biases[r0*groups],
		groups, w.GroupSize/perBlock, rows, &y[0])
}

// dequantRowPortable sets dst[k] = w[r][k0+k] for k < len(dst); k0 and
// len(dst) are multiples of the group size.
func dequantRowPortable(dst []float32, w *PackedMatrix, r, k0 int) {
	per := 32 / w.Bits
	mask := uint32(1)<<w.Bits - 1
	words := w.Words[(r*w.In+k0)/per:]
	groups := w.In / w.GroupSize
	for k := range dst {
		g := r*groups + (k0+k)/w.GroupSize
		q := float32(words[k/per] >> (w.Bits * (k % per)) & mask)
		dst[k] = q*w.Scales[g] + w.Biases[g]
	}
}

// packRowsPacked is packRows for a PackedMatrix: rows [r0, r1) × inputs
// [k0, k0+kc) into panels of `rows` rows. Whole blocks of 16 rows (the B
// panels of the assembly sets) are widened row by row into a 16×kc buffer
// and transposed into the panel by the set's packT; other rows go one
// element at a time. k0 is a multiple of kcBlock and so of any group size,
// and kc a multiple of the group size unless it reaches the end of a row.
func packRowsPacked(dst []float32, w *PackedMatrix, r0, r1, k0, kc, kcp, rows int) {
	panels := ceilDiv(r1-r0, rows)
	dst = dst[:panels*rows*kcp]
	if (r1-r0)%rows != 0 || kc != kcp {
		clear(dst)
	}
	buf := getBuf(rows * kc)
	defer putBuf(buf)
	tmp := (*buf)[:rows*kc]
	ks := active
	r := r0
	if pt := ks.packT; pt != nil && rows == ks.nr {
		for ; r+rows <= r1; r += rows {
			for i := range rows {
				ks.dequantRow(tmp[i*kc:(i+1)*kc], w, r+i, k0)
			}
			pt(dst[(r-r0)*kcp:], operand{dtype: Float32, f32: tmp}, 0, kc, kc)
		}
	}
	row := tmp[:kc]
	for ; r < r1; r++ {
		p, within := (r-r0)/rows, (r-r0)%rows
		panel := dst[p*rows*kcp+within : (p+1)*rows*kcp]
		ks.dequantRow(row, w, r, k0)
		for k, v := range row {
			panel[k*rows] = v
		}
	}
}
