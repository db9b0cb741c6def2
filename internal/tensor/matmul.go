package tensor

import (
	"fmt"
)

// How C = A·B is computed (both Matmul and MatmulT end up here):
//
//  1. Batch dimensions are broadcast, numpy style, and each batch element
//     is an independent matrix product.
//  2. If A has a single row (M == 1, the decode step of an LLM) the product
//     is a matrix-vector product, split across the columns of C.
//  3. Otherwise C is cut into tiles of up to mcBlock×ncBlock elements and
//     the tiles (of every batch element) are shared out to the worker pool.
//     For each slice of kcBlock along K, a tile packs its part of A and B
//     into small contiguous buffers ("panels", see packRows) that stay in
//     the CPU caches, and then runs the register-blocked micro-kernel
//     (kernel2x4) over every mr×nr block of the tile.
//
// Packing is what lets one kernel serve both layouts of B: MatmulT's
// weights [N, K] and Matmul's [K, N] are packed into the same panel format.
// It is also where bfloat16 and float16 weights are widened, one small
// block at a time, so a huge weight matrix is never copied to float32.
const (
	kcBlock = 256 // K-slice per packing step: an A panel (mr×256) is 2 KiB
	mcBlock = 128 // rows of C per tile: the packed A block is 128 KiB
	ncBlock = 128 // columns of C per tile: the packed B block is 128 KiB

	// smallMatmul is the number of multiply-adds below which a product
	// runs on the calling goroutine: waking workers would cost more.
	smallMatmul = 1 << 15
)

// operand is a matrix product input of any dtype. 16-bit data is widened
// only when loaded.
type operand struct {
	dtype DType
	f32   []float32
	u16   []uint16
}

func operandOf(t *Tensor) operand {
	return operand{dtype: t.dtype, f32: t.f32, u16: t.u16}
}

// load returns the n elements starting at off as float32. For Float32 data
// it is a sub-slice, with no copying; 16-bit data is widened into scratch,
// which must hold at least n elements.
func (o operand) load(off, n int, scratch []float32) []float32 {
	if o.dtype == Float32 {
		return o.f32[off : off+n]
	}
	dst := scratch[:n]
	widen(dst, o.u16[off:off+n], o.dtype)
	return dst
}

// product describes a (batched) matrix product C = A·B or A·Bᵀ after
// shape checking.
type product struct {
	m, k, n    int
	transposed bool  // B is stored [N, K] (MatmulT) instead of [K, N]
	aOff, bOff []int // start of each batch element's matrix in a and b
	a          []float32
	b          operand
	c          []float32
}

// Matmul returns the matrix product of a [..., M, K] and b [..., K, N],
// shaped [..., M, N]. Both operands need at least two dimensions; the
// leading (batch) dimensions broadcast by numpy rules, so [2, 1, M, K]
// times [3, K, N] gives [2, 3, M, N]. Any dtype is accepted; the result is
// Float32.
func Matmul(a, b *Tensor) *Tensor {
	return matmul("Matmul", a, b, false)
}

// MatmulT returns a times the transpose of b: a is [..., M, K], b is
// [..., N, K] and the result [..., M, N], with batch dimensions broadcast
// as in Matmul. This is the form of a Linear layer (x·Wᵀ with W stored
// [out, in]) and of attention scores (Q·Kᵀ). b may be BFloat16 or Float16;
// its rows are widened a small block at a time, never all at once.
func MatmulT(a, b *Tensor) *Tensor {
	return matmul("MatmulT", a, b, true)
}

func matmul(op string, a, b *Tensor, transposed bool) *Tensor {
	if a.NDim() < 2 || b.NDim() < 2 {
		panic(fmt.Sprintf("tensor.%s: operands need at least 2 dimensions, got shapes %v and %v", op, a.shape, b.shape))
	}
	na, nb := len(a.shape), len(b.shape)
	m, k := a.shape[na-2], a.shape[na-1]
	kb, n := b.shape[nb-2], b.shape[nb-1]
	if transposed {
		n, kb = kb, n
	}
	if k != kb {
		panic(fmt.Sprintf("tensor.%s: shapes %v and %v are incompatible: inner dimensions %d and %d differ", op, a.shape, b.shape, k, kb))
	}
	batch, err := BroadcastShapes(a.shape[:na-2], b.shape[:nb-2])
	if err != nil {
		panic(fmt.Sprintf("tensor.%s: batch dimensions of shapes %v and %v do not broadcast", op, a.shape, b.shape))
	}
	out := newTensor(Float32, append(batch, m, n))
	p := &product{
		m: m, k: k, n: n,
		transposed: transposed,
		aOff:       batchOffsets(a.shape[:na-2], batch, m*k),
		bOff:       batchOffsets(b.shape[:nb-2], batch, k*n),
		a:          a.Data(), // activations: small, so widening them whole is fine
		b:          operandOf(b),
		c:          out.f32,
	}
	switch {
	case m == 0 || n == 0 || k == 0 || len(p.aOff) == 0:
		// Nothing to compute: C is empty, or all zeros when K == 0.
	case m == 1:
		p.matVec()
	default:
		p.tiled()
	}
	return out
}

// batchOffsets lists, for each element of the broadcast batch shape in
// row-major order, where the corresponding matrix starts in an operand of
// batch shape `shape` whose matrices hold `size` elements each.
func batchOffsets(shape, batch []int, size int) []int {
	total := numel("Matmul", batch)
	strides := broadcastStrides(shape, batch)
	offs := make([]int, total)
	for bi := range offs {
		off, rem := 0, bi
		for axis := len(batch) - 1; axis >= 0; axis-- {
			off += (rem % batch[axis]) * strides[axis]
			rem /= batch[axis]
		}
		offs[bi] = off * size
	}
	return offs
}

// matVec handles M == 1: every output element is an independent dot
// product (MatmulT) or column sum (Matmul), so the work is split across
// the columns of C, of every batch element at once.
func (p *product) matVec() {
	batches := len(p.aOff)
	// Enough columns per chunk to be worth a goroutine hand-off.
	grain := max(1, smallMatmul/p.k)
	if p.transposed {
		parallelFor(batches*p.n, grain, func(lo, hi int) {
			var scratch []float32 // for widening float16 rows
			if p.b.dtype == Float16 {
				scratch = make([]float32, p.k)
			}
			for idx := lo; idx < hi; idx++ {
				bi, j := idx/p.n, idx%p.n
				x := p.a[p.aOff[bi] : p.aOff[bi]+p.k]
				off := p.bOff[bi] + j*p.k
				if p.b.dtype == BFloat16 {
					p.c[idx] = dotBF16(x, p.b.u16[off:off+p.k])
				} else {
					p.c[idx] = dot(x, p.b.load(off, p.k, scratch))
				}
			}
		})
		return
	}
	// B is [K, N]: C[j] = Σ_k A[k]·B[k][j]. Walking B row by row keeps its
	// reads sequential; each chunk owns a range of columns of one batch
	// element and accumulates into that part of C.
	const cols = 256
	perBatch := ceilDiv(p.n, cols)
	parallelFor(batches*perBatch, max(1, grain/cols), func(lo, hi int) {
		var scratch []float32
		if p.b.dtype != Float32 {
			scratch = make([]float32, cols)
		}
		for idx := lo; idx < hi; idx++ {
			bi := idx / perBatch
			j0 := (idx % perBatch) * cols
			j1 := min(j0+cols, p.n)
			y := p.c[bi*p.n+j0 : bi*p.n+j1]
			x := p.a[p.aOff[bi] : p.aOff[bi]+p.k]
			for kk, alpha := range x {
				axpy(alpha, p.b.load(p.bOff[bi]+kk*p.n+j0, j1-j0, scratch), y)
			}
		}
	})
}

// tiled computes C one mc×nc tile at a time; tiles are independent, so
// they are shared out to the worker pool.
func (p *product) tiled() {
	batches := len(p.aOff)
	mc, nc := mcBlock, ncBlock
	tiles := func() int { return batches * ceilDiv(p.m, mc) * ceilDiv(p.n, nc) }
	// Small products give too few tiles to keep every worker busy;
	// smaller tiles cost some packing efficiency but beat idle cores.
	for tiles() < 2*numWorkers() && nc > 8*nr {
		nc /= 2
	}
	for tiles() < 2*numWorkers() && mc > 8*mr {
		mc /= 2
	}
	tilesM, tilesN := ceilDiv(p.m, mc), ceilDiv(p.n, nc)
	grain := 1
	if p.m*p.n*p.k*batches < smallMatmul {
		grain = tiles()
	}
	parallelFor(tiles(), grain, func(lo, hi int) {
		// Packing buffers are per chunk of tiles, reused tile to tile.
		kc := min(kcBlock, roundUp(p.k, kStep))
		ap := make([]float32, roundUp(mc, mr)*kc)
		bp := make([]float32, roundUp(nc, nr)*kc)
		scratch := make([]float32, max(kc, nc))
		for t := lo; t < hi; t++ {
			bi := t / (tilesM * tilesN)
			ti := t % (tilesM * tilesN) / tilesN
			tj := t % tilesN
			i0, j0 := ti*mc, tj*nc
			p.tile(bi, i0, min(i0+mc, p.m), j0, min(j0+nc, p.n), ap, bp, scratch)
		}
	})
}

// tile computes rows [i0, i1) × columns [j0, j1) of batch element bi.
func (p *product) tile(bi, i0, i1, j0, j1 int, ap, bp, scratch []float32) {
	a := operand{dtype: Float32, f32: p.a}
	cBase := bi * p.m * p.n
	var block [mr * nr]float32
	for k0 := 0; k0 < p.k; k0 += kcBlock {
		kc := min(kcBlock, p.k-k0)
		kcp := roundUp(kc, kStep) // panels are zero-padded to whole kernel steps
		packRows(ap, a, p.aOff[bi], p.k, i0, i1, k0, kc, kcp, mr, scratch)
		if p.transposed {
			packRows(bp, p.b, p.bOff[bi], p.k, j0, j1, k0, kc, kcp, nr, scratch)
		} else {
			packCols(bp, p.b, p.bOff[bi], p.n, j0, j1, k0, kc, kcp, scratch)
		}
		// The B panel (nr×kcp) is reused against every A panel of the
		// tile, so it stays in the L1 cache; the A block stays in L2.
		for j := j0; j < j1; j += nr {
			bPanel := bp[(j-j0)*kcp : (j-j0+nr)*kcp]
			for i := i0; i < i1; i += mr {
				kernel2x4(ap[(i-i0)*kcp:(i-i0+mr)*kcp], bPanel, &block)
				// Add the block into C, minus the zero padding that
				// fills out a partial block at the tile's edge.
				for r := 0; r < mr && i+r < i1; r++ {
					row := p.c[cBase+(i+r)*p.n+j : cBase+(i+r)*p.n+j1]
					for q := 0; q < nr && q < len(row); q++ {
						row[q] += block[r*nr+q]
					}
				}
			}
		}
	}
}

// roundUp rounds n up to a multiple of m.
func roundUp(n, m int) int {
	return ceilDiv(n, m) * m
}

// packRows packs rows [r0, r1) × columns [k0, k0+kc) of a row-major matrix
// (starting at off, ld elements per row) into panels of `rows` rows each,
// the layout the micro-kernel reads:
//
//	dst[p*rows*kcp + k*rows + r] = M[r0 + p*rows + r][k0 + k]
//
// Reading the panel front to back walks all rows of the panel in step,
// one k at a time. Rows past r1 and steps past kc are zero, so the
// padding adds nothing to the results. It packs A, and B for MatmulT.
func packRows(dst []float32, src operand, off, ld, r0, r1, k0, kc, kcp, rows int, scratch []float32) {
	panels := ceilDiv(r1-r0, rows)
	dst = dst[:panels*rows*kcp]
	clear(dst)
	for r := r0; r < r1; r++ {
		p, within := (r-r0)/rows, (r-r0)%rows
		panel := dst[p*rows*kcp : (p+1)*rows*kcp]
		for k, v := range src.load(off+r*ld+k0, kc, scratch) {
			panel[k*rows+within] = v
		}
	}
}

// packCols produces the same panels as packRows with rows = nr, but from a
// matrix stored [K, N], taking columns [c0, c1) as the panel rows. This
// transposition during packing is what lets Matmul reuse the MatmulT
// kernel: dst[p*nr*kcp + k*nr + j] = M[k0 + k][c0 + p*nr + j].
func packCols(dst []float32, src operand, off, ld, c0, c1, k0, kc, kcp int, scratch []float32) {
	panels := ceilDiv(c1-c0, nr)
	dst = dst[:panels*nr*kcp]
	clear(dst)
	for k := 0; k < kc; k++ {
		seg := src.load(off+(k0+k)*ld+c0, c1-c0, scratch)
		// Consecutive groups of nr columns are the k-th steps of
		// consecutive panels.
		d := k * nr
		for len(seg) >= nr {
			s := seg[:nr:nr]
			p := dst[d : d+nr : d+nr]
			p[0], p[1], p[2], p[3] = s[0], s[1], s[2], s[3]
			seg = seg[nr:]
			d += nr * kcp
		}
		if len(seg) > 0 {
			copy(dst[d:d+nr], seg) // a partial last panel; the rest stays zero
		}
	}
}
