package tensor

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// Q4Matrix is an Out×In matrix of 4-bit codes in groups of 64 inputs,
// with its scales and biases kept as bfloat16, the way an MLX checkpoint
// of a bf16 model stores them: the weight of row r, input j is
//
//	w[r][j] = q[r][j]·Scales[r·G + j/64] + Biases[r·G + j/64],  G = In/64,
//
// codes eight to a uint32 word, low bits first, as in PackedMatrix. It
// points at the checkpoint's bytes: nothing is copied or widened, so a
// product reads 36 bytes per 64 weights (32 of codes, 4 of scale and bias)
// instead of the 40 of a PackedMatrix with float32 scales.
//
// MatmulQ4Each multiplies it with 8-bit activations (see there). That is
// the engine's fast path for decode and prefill; MatmulPacked stays the
// float-exact product.
type Q4Matrix struct {
	Out, In        int
	Words          []uint32
	Scales, Biases []uint16 // bfloat16 bits, Out × In/64
}

// q4Group is the group size of a Q4Matrix, and the block of inputs that
// share one activation scale.
const q4Group = 64

func (w *Q4Matrix) check(op string) {
	if w.In <= 0 || w.Out <= 0 || w.In%q4Group != 0 {
		panic(fmt.Sprintf("tensor.%s: a %dx%d 4-bit matrix: In must be a positive multiple of %d", op, w.Out, w.In, q4Group))
	}
	groups := w.Out * w.In / q4Group
	if len(w.Words) != w.Out*w.In/8 || len(w.Scales) != groups || len(w.Biases) != groups {
		panic(fmt.Sprintf("tensor.%s: a %dx%d 4-bit matrix in groups of %d needs %d words and %d scales and biases; got %d, %d and %d",
			op, w.Out, w.In, q4Group, w.Out*w.In/8, groups, len(w.Words), len(w.Scales), len(w.Biases)))
	}
}

// HasInt8Kernels reports whether the kernels in use multiply 4-bit weights
// with 8-bit activations in vector integer instructions (amd64 with
// AVX2). Elsewhere MatmulQ4Each still works, in plain Go, but the float
// kernels of MatmulPacked are faster, so a model should use those.
func HasInt8Kernels() bool { return active.dotRowsQ4I8 != nil }

var int8Allowed atomic.Bool

// AllowInt8Activations chooses whether models built from now on may run
// their 4-bit products with 8-bit activations (MatmulQ4Each). It is off
// unless a program turns it on: the days' checks compare the models with
// their references to 1e-3, closer than 8-bit activations come (see the
// W2D3 chapter), while the tinyllm command's engine turns it on for speed.
func AllowInt8Activations(on bool) { int8Allowed.Store(on) }

// Int8Activations reports whether 4-bit products should use 8-bit
// activations: allowed (AllowInt8Activations) and fast on this machine
// (HasInt8Kernels).
func Int8Activations() bool { return int8Allowed.Load() && HasInt8Kernels() }

// q8Row is one row of activations readied for the 8-bit kernels. For each
// block c of 64 inputs, x[j] ≈ dx[c]·x8[j], with dx[c] = max|x| / 127 over
// the block and x8 rounded to the nearest integer (ties to even); x8 holds
// a block's 32 even inputs and then its 32 odd ones, the order in which the
// kernels split a byte of codes into its low and high nibbles. xsum[c] is
// the float sum of the block, for the biases.
type q8Row struct {
	x8       []int8
	dx, xsum []float32
}

// q8Quad is four rows of activations readied for the kernels that
// multiply a weight row with four rows of x at once (a prefill): for each
// block c, the four rows' 64 bytes one after the other (x8[c*256+r*64:]),
// then dxs[c*8+r] = dx and dxs[c*8+4+r] = xsum of row r.
type q8Quad struct {
	x8  []int8
	dxs []float32
}

// q8Buffers is what MatmulQ4Each readies x into: its rows in quads, and
// the rows left over (m mod 4) one by one.
type q8Buffers struct {
	quads []q8Quad
	rows  []q8Row
}

var q8Pool sync.Pool

// getQ8 returns buffers for m rows of n inputs: m/4 quads when quads is
// set, and single rows for the rest.
func getQ8(m, n int, quads bool) *q8Buffers {
	b, _ := q8Pool.Get().(*q8Buffers)
	if b == nil {
		b = new(q8Buffers)
	}
	groups := n / q4Group
	nq := 0
	if quads {
		nq = m / 4
	}
	b.quads = b.quads[:min(nq, len(b.quads))]
	for i := range nq {
		if i == len(b.quads) {
			b.quads = append(b.quads, q8Quad{})
		}
		q := &b.quads[i]
		if cap(q.x8) < 4*n {
			q.x8, q.dxs = make([]int8, 4*n), make([]float32, 8*groups)
		}
		q.x8, q.dxs = q.x8[:4*n], q.dxs[:8*groups]
	}
	nr := m - 4*nq
	b.rows = b.rows[:min(nr, len(b.rows))]
	for i := range nr {
		if i == len(b.rows) {
			b.rows = append(b.rows, q8Row{})
		}
		r := &b.rows[i]
		if cap(r.x8) < n {
			r.x8, r.dx, r.xsum = make([]int8, n), make([]float32, groups), make([]float32, groups)
		}
		r.x8, r.dx, r.xsum = r.x8[:n], r.dx[:groups], r.xsum[:groups]
	}
	return b
}

// q8Floor is what a block's largest |x| is raised to, if below, before
// 127 is divided by it: a block of zeros then rounds to zeros without a
// special case (127/q8Floor is finite), and a block this small is zero
// for any purpose.
const q8Floor = 0x1p-100

// quantizeQ8Portable rounds x (len(x) a multiple of 64) to 8 bits, block
// by block: block c's 64 bytes go to x8[c*x8Stride:], its dx and sum to
// dx[c*dStride] and xsum[c*dStride].
func quantizeQ8Portable(x []float32, x8 []int8, x8Stride int, dx, xsum []float32, dStride int) {
	for c := range len(x) / q4Group {
		src := x[c*q4Group : (c+1)*q4Group : (c+1)*q4Group]
		dst := x8[c*x8Stride : c*x8Stride+q4Group : c*x8Stride+q4Group]
		var amax, sum float32
		for _, v := range src {
			sum += v
			amax = max(amax, v, -v)
		}
		inv := 127 / max(amax, q8Floor)
		for t := range 32 {
			dst[t] = roundI8(src[2*t] * inv)
			dst[32+t] = roundI8(src[2*t+1] * inv)
		}
		dx[c*dStride], xsum[c*dStride] = amax/127, sum
	}
}

// roundI8 rounds v (|v| <= 127) to the nearest integer, ties to even, as
// the vector conversion does.
func roundI8(v float32) int8 { return int8(math.RoundToEven(float64(v))) }

// quantizeQ8 is the kernel set's quantizeQ8, or the portable one.
func quantizeQ8(x []float32, x8 []int8, x8Stride int, dx, xsum []float32, dStride int) {
	if k := active.quantizeQ8; k != nil {
		k(x, x8, x8Stride, dx, xsum, dStride)
		return
	}
	quantizeQ8Portable(x, x8, x8Stride, dx, xsum, dStride)
}

// quantizeRow readies one row of x.
func (r q8Row) quantize(x []float32) { quantizeQ8(x, r.x8, q4Group, r.dx, r.xsum, 1) }

// quantize readies rows i of x (i < 4) into the quad.
func (q q8Quad) quantize(i int, x []float32) {
	quantizeQ8(x, q.x8[i*q4Group:], 4*q4Group, q.dxs[i:], q.dxs[4+i:], 8)
}

// row returns row i of the quad as a q8Row (a copy in the single-row
// layout), for the portable loop.
func (q q8Quad) row(i, n int) q8Row {
	groups := n / q4Group
	r := q8Row{x8: make([]int8, n), dx: make([]float32, groups), xsum: make([]float32, groups)}
	for c := range groups {
		copy(r.x8[c*q4Group:(c+1)*q4Group], q.x8[c*4*q4Group+i*q4Group:])
		r.dx[c], r.xsum[c] = q.dxs[c*8+i], q.dxs[c*8+4+i]
	}
	return r
}

// dotRowsQ4I8Portable sets y[i] = Σ_j x[j]·w[r0+i][j], x readied in r:
//
//	Σ_c (s_c·dx_c)·Σ_{j in c} q_j·x8_j + Σ_c b_c·xsum_c
//
// the inner sums in exact integers, one float multiply-add per block for
// the scale and one for the bias. The assembly computes the same terms.
func dotRowsQ4I8Portable(r q8Row, w *Q4Matrix, r0 int, y []float32) {
	groups := w.In / q4Group
	for i := range y {
		row := r0 + i
		words := w.Words[row*w.In/8 : (row+1)*w.In/8]
		sc, bi := w.Scales[row*groups:(row+1)*groups], w.Biases[row*groups:(row+1)*groups]
		var acc, bacc float32
		for c := range groups {
			gw := words[c*8 : (c+1)*8 : (c+1)*8]
			x8 := r.x8[c*q4Group : (c+1)*q4Group : (c+1)*q4Group]
			var isum int32
			for k, wd := range gw {
				// Word k holds codes 8k … 8k+7; code 2t sits in the low
				// nibble of byte t, which pairs with x8[t], and code 2t+1
				// in its high nibble, which pairs with x8[32+t].
				for b := range 4 {
					t := 4*k + b
					byt := wd >> (8 * b)
					isum += int32(byt&15)*int32(x8[t]) + int32(byt>>4&15)*int32(x8[32+t])
				}
			}
			acc += BF16ToFloat32(sc[c]) * r.dx[c] * float32(isum)
			bacc += BF16ToFloat32(bi[c]) * r.xsum[c]
		}
		y[i] = acc + bacc
	}
}

// dotRowsQ4I8 runs the kernel set's 8-bit product, or the portable one.
func dotRowsQ4I8(r q8Row, w *Q4Matrix, r0 int, y []float32) {
	if k := active.dotRowsQ4I8; k != nil {
		k(r, w, r0, y)
		return
	}
	dotRowsQ4I8Portable(r, w, r0, y)
}

// dotRowsQ4I8x4 sets y[r*ldy+i] = Σ_j x_r[j]·w[r0+i][j] for the four rows
// x_r of quad and i < n, through the kernel set's four-row kernel or the
// portable loop.
func dotRowsQ4I8x4(quad q8Quad, w *Q4Matrix, r0, n int, y []float32, ldy int) {
	if k := active.dotRowsQ4I8x4; k != nil {
		k(quad, w, r0, n, y, ldy)
		return
	}
	for r := range 4 {
		dotRowsQ4I8Portable(quad.row(r, w.In), w, r0, y[r*ldy:r*ldy+n])
	}
}

// MatmulQ4Each returns x·Wᵀ for each W of ws, for x of shape [..., In]:
// [..., Out] each, Float32, with x quantized to 8 bits.
//
// Each row of x is first rounded to 8-bit integers with one float scale
// per block of 64 inputs (the weights' groups): x[j] ≈ dx·x8[j]. A group
// of a weight row then costs
//
//	Σ_j (q_j·s + b)·x_j ≈ s·dx·Σ_j q_j·x8_j + b·Σ_j x_j
//
// where Σ q_j·x8_j is a sum of products of small integers, which AVX2
// computes 32 at a time (4-bit codes times 8-bit values, into 16-bit
// sums), and Σ x_j is exact and shared by every row. The rounding of x
// is the only approximation: each x_j moves by at most dx/2, a relative
// error of up to 1/254 of the block's largest value.
//
// The matrices share In. In a decode step (few rows of x) they share one
// pass over the cores, as in MatmulPackedEach. For many rows (a prefill)
// each matrix is cut into blocks of rows that stay in the core's cache
// while every row of x goes past them.
func MatmulQ4Each(x *Tensor, ws ...*Q4Matrix) []*Tensor {
	return MatmulQ4EachInto(nil, x, ws...)
}

// MatmulQ4EachInto is MatmulQ4Each written into dst: dst[i] is a Float32
// tensor of x's leading shape and ws[i].Out columns (or as many elements),
// whose contents are overwritten. It returns dst; a nil dst gets new
// tensors.
func MatmulQ4EachInto(dst []*Tensor, x *Tensor, ws ...*Q4Matrix) []*Tensor {
	if len(ws) == 0 {
		return dst
	}
	if dst != nil && len(dst) != len(ws) {
		panic(fmt.Sprintf("tensor.MatmulQ4EachInto: %d destinations for %d weights", len(dst), len(ws)))
	}
	in := ws[0].In
	for _, w := range ws {
		w.check("MatmulQ4Each")
		if x.NDim() == 0 || x.shape[x.NDim()-1] != w.In || w.In != in {
			panic(fmt.Sprintf("tensor.MatmulQ4Each: x %v times a %dx%d weight: x's last dimension must be %d", x.shape, w.Out, w.In, w.In))
		}
	}
	xs := x.Data()
	if x.dtype != Float32 {
		xs = AsType(x, Float32).Data()
	}
	m := len(xs) / in
	starts := make([]int, len(ws)+1) // matrix i owns the combined rows [starts[i], starts[i+1])
	ys := make([][]float32, len(ws))
	for i, w := range ws {
		starts[i+1] = starts[i] + w.Out
		if dst == nil {
			ys[i] = make([]float32, m*w.Out)
			continue
		}
		if dst[i].dtype != Float32 || dst[i].Size() != m*w.Out {
			panic(fmt.Sprintf("tensor.MatmulQ4EachInto: x %v times a %dx%d weight does not fit a destination of shape %v (%s)", x.shape, w.Out, w.In, dst[i].shape, dst[i].dtype))
		}
		ys[i] = dst[i].f32 // every element is written below
	}
	// A prefill multiplies each weight row with four rows of x at once:
	// the codes are split into nibbles once for the four.
	buf := getQ8(m, in, m >= 4)
	defer q8Pool.Put(buf)
	quads, rows := buf.quads, buf.rows
	tail := 4 * len(quads) // the first row of x in rows
	parallelFor(m, max(1, elementwiseGrain/in), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			x := xs[r*in : (r+1)*in]
			if r < tail {
				quads[r/4].quantize(r%4, x)
			} else {
				rows[r-tail].quantize(x)
			}
		}
	})
	// About 32 KB of codes per block of weight rows: in a decode step,
	// enough work to be worth a hand-off; in a prefill, a block that stays
	// in the core's L1 and L2 caches while every row of x goes past it.
	block := roundUp(max(1, smallMatmul*2/in), 4)
	parallelFor(starts[len(ws)], block, func(lo, hi int) {
		for i, w := range ws {
			a, b := max(lo, starts[i]), min(hi, starts[i+1])
			step := block
			if len(quads) == 0 {
				step = max(1, b-a) // a decode step: one call for the chunk
			}
			for ; a < b; a += step {
				e := min(a+step, b)
				r0, n := a-starts[i], e-a
				for q, quad := range quads {
					dotRowsQ4I8x4(quad, w, r0, n, ys[i][4*q*w.Out+r0:], w.Out)
				}
				for r, row := range rows {
					dotRowsQ4I8(row, w, r0, ys[i][(tail+r)*w.Out+r0:(tail+r)*w.Out+r0+n])
				}
			}
		}
	})
	if dst != nil {
		return dst
	}
	out := make([]*Tensor, len(ws))
	for i, w := range ws {
		shape := append(append([]int(nil), x.shape[:x.NDim()-1]...), w.Out)
		out[i] = &Tensor{dtype: Float32, shape: shape, f32: ys[i]}
	}
	return out
}
