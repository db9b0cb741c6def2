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
//  3. Otherwise A and B are packed into small contiguous buffers
//     ("panels", see packRows) that stay in the CPU caches, C is cut into
//     work items shared out to the worker pool, and the register-blocked
//     micro-kernel of the active kernel set (kernel2x4 in Go, or an
//     assembly one: see fastpath.go) computes every mr×nr block of them.
//
// Packing is what lets one kernel serve both layouts of B: MatmulT's
// weights [N, K] and Matmul's [K, N] are packed into the same panel format.
// It is also where bfloat16 and float16 weights are widened, one small
// block at a time, so a huge weight matrix is never copied to float32.
const (
	kcBlock = 256 // K-slice per packing step: a 6×16 kernel's B panel is 16 KiB
	// kcWide is the longest K slice of float and 16-bit B: K is cut into
	// slices of about equal length up to kcWide (Qwen2-0.5B's 896 into
	// 304, 304 and 288 instead of 256, 256, 256 and 128), so that C is
	// read and written fewer times and no slice is a short one, whose
	// kernel calls cost as much overhead for half the work. A 304-step B
	// panel (19 KiB) and A panel (7 KiB) still fit the 32 KiB L1 cache.
	// Quantized B keeps kcBlock: its slices must start on a group
	// boundary.
	kcWide = 320
	// mcBlock is the most rows of C per work item. Each item packs (and
	// widens) its own B panels, so every row block beyond the first packs
	// all of B again; tall items avoid that. Their A panels (1 MiB per K
	// slice at 1024 rows) outgrow L2 and stream from L3, which the 6×16
	// kernel can afford: it reads 24 bytes of A per 12 FMAs. Measured on
	// a 1024³ product (Zen 3, 2 cores, interleaved runs): 117 GFLOP/s
	// with one block of 1024 rows against 108 with five of 210.
	mcBlock = 1024

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
	// packed, when set, is the whole operand: a quantized weight of
	// MatmulPacked, read only by packRows.
	packed *PackedMatrix
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

// at returns element i as float32.
func (o operand) at(i int) float32 {
	switch o.dtype {
	case Float32:
		return o.f32[i]
	case BFloat16:
		return bf16(o.u16[i])
	default:
		return F16ToFloat32(o.u16[i])
	}
}

// product describes a (batched) matrix product C = A·B or A·Bᵀ after
// shape checking.
type product struct {
	m, k, n    int
	kc         int   // the K slice of the tiled path, set by tiled
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
	return matmul("Matmul", a, b, false, nil)
}

// MatmulT returns a times the transpose of b: a is [..., M, K], b is
// [..., N, K] and the result [..., M, N], with batch dimensions broadcast
// as in Matmul. This is the form of a Linear layer (x·Wᵀ with W stored
// [out, in]) and of attention scores (Q·Kᵀ). b may be BFloat16 or Float16;
// its rows are widened a small block at a time, never all at once.
func MatmulT(a, b *Tensor) *Tensor {
	return matmul("MatmulT", a, b, true, nil)
}

// MatmulInto is Matmul written into dst, a Float32 tensor of the result's
// shape (or of as many elements) whose contents are overwritten, and
// returns dst.
func MatmulInto(dst, a, b *Tensor) *Tensor {
	return matmul("MatmulInto", a, b, false, dst)
}

// MatmulTInto is MatmulT written into dst, a Float32 tensor of the
// result's shape (or of as many elements) whose contents are overwritten,
// and returns dst. An engine that keeps its activation buffers from one
// forward pass to the next (internal/scratch) multiplies into them instead
// of into memory the allocator has to find, and often fault in, again.
func MatmulTInto(dst, a, b *Tensor) *Tensor {
	return matmul("MatmulTInto", a, b, true, dst)
}

// matmul computes the product into out, or into a new tensor when out is
// nil, and returns it.
func matmul(op string, a, b *Tensor, transposed bool, out *Tensor) *Tensor {
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
	if out == nil {
		out = newTensor(Float32, append(batch, m, n))
	} else {
		if out.dtype != Float32 || out.Size() != numel(op, batch)*m*n {
			panic(fmt.Sprintf("tensor.%s: the product of %v and %v does not fit a destination of shape %v (%s)", op, a.shape, b.shape, out.shape, out.dtype))
		}
		// The tiled path adds each K slice into C.
		clear(out.f32)
	}
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
	case transposed && m <= fewRows:
		p.fewRows()
	default:
		p.tiled()
	}
	return out
}

// fewRows is the most rows of A that fewRows handles; taller products go
// to the tiled path, whose packing then pays for itself.
const fewRows = 8

// fewRows computes C = A·Bᵀ for a handful of rows of A (2 … fewRows) as
// that many matrix-vector products sharing each chunk of B: a chunk comes
// from memory once and from the cache for the other rows. The tiled path
// would first widen and pack all of B, which at these sizes costs more than
// the products themselves: speculative decoding's verification pass (a few
// tokens of one sequence) and decode steps of a few sequences land here.
// Every row comes out bit for bit as matVec gives it alone (the same
// kernel over the same K), so a verification pass scores a token exactly
// as a decode step would.
func (p *product) fewRows() {
	ks := active
	batches := len(p.aOff)
	grain := roundUp(max(1, smallMatmul/(p.k*p.m)), 4)
	parallelFor(batches*p.n, grain, func(lo, hi int) {
		for lo < hi {
			bi, j := lo/p.n, lo%p.n
			end := min(hi, (bi+1)*p.n)
			for i := range p.m {
				x := p.a[p.aOff[bi]+i*p.k : p.aOff[bi]+(i+1)*p.k]
				row := (bi*p.m + i) * p.n
				ks.dotRows(x, p.b, p.bOff[bi]+j*p.k, p.k, p.c[row+j:row+j+end-lo])
			}
			lo = end
		}
	})
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
	ks := active
	batches := len(p.aOff)
	// Enough columns per chunk to be worth a goroutine hand-off; whole
	// groups of four, the rows the assembly kernels take at once.
	grain := roundUp(max(1, smallMatmul/p.k), 4)
	if p.transposed {
		parallelFor(batches*p.n, grain, func(lo, hi int) {
			for lo < hi {
				bi, j := lo/p.n, lo%p.n
				end := min(hi, (bi+1)*p.n)
				x := p.a[p.aOff[bi] : p.aOff[bi]+p.k]
				ks.dotRows(x, p.b, p.bOff[bi]+j*p.k, p.k, p.c[lo:end])
				lo = end
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
		buf := getBuf(cols)
		defer putBuf(buf)
		scratch := *buf
		for idx := lo; idx < hi; idx++ {
			bi := idx / perBatch
			j0 := (idx % perBatch) * cols
			j1 := min(j0+cols, p.n)
			y := p.c[bi*p.n+j0 : bi*p.n+j1]
			x := p.a[p.aOff[bi] : p.aOff[bi]+p.k]
			if ks.sumRows != nil && p.b.dtype == Float32 {
				ks.sumRows(x, p.b.f32, p.bOff[bi]+j0, p.n, y)
				continue
			}
			for kk, alpha := range x {
				ks.axpy(alpha, p.b.load(p.bOff[bi]+kk*p.n+j0, j1-j0, scratch), y)
			}
		}
	})
}

// tiled computes C = A·B for M > 1 in the cache-blocked way of BLIS and
// GotoBLAS, with the mr×nr micro-kernel of the active kernel set:
//
//  1. K is cut into equal slices of at most kcWide (kcBlock for quantized
//     B). For every slice, A is packed once, up front, into panels of mr
//     rows (packRows), shared by all workers. A holds activations, so
//     this is a small, short-lived buffer.
//  2. C is cut into items of up to mcBlock rows × a few column panels
//     (itemPanels, fewer for long K), which the workers claim one at a
//     time: the last item of a product is short, so neither core waits
//     long for the other.
//  3. Within an item, for each K slice and each panel of nr columns, the
//     B panel (nr×kc, 19 KiB for the 6×16 kernel) is packed — widening
//     16-bit weights on the way — and then multiplied against every A
//     panel of the item's rows. The B panel stays in the L1 cache for all
//     of them; the A panels stream from L2 or L3, and the item's block of
//     C (32 KiB for a 128-token prompt) stays in L2 from one K slice to
//     the next. While a panel is multiplied, the weights of the next one
//     are prefetched, so that packing does not wait for memory. Each
//     weight is widened once per item row block, never stored whole as
//     float32.
func (p *product) tiled() {
	ks := active
	mr, nr := ks.mr, ks.nr
	batches := len(p.aOff)
	p.kc = kcBlock
	if p.b.packed == nil {
		p.kc = roundUp(ceilDiv(p.k, ceilDiv(p.k, kcWide)), 8) // whole 8-wide steps of packT
	}
	slices := ceilDiv(p.k, p.kc)
	kcMax := min(p.kc, roundUp(p.k, kStep))
	panelsM := ceilDiv(p.m, mr)
	aStride := panelsM * mr * kcMax // one packed K slice of one batch element
	apBuf := getBuf(batches * slices * aStride)
	defer putBuf(apBuf)
	ap := *apBuf
	a := operand{dtype: Float32, f32: p.a}
	parallelFor(batches*slices, max(1, smallMatmul/(panelsM*mr*kcMax)), func(lo, hi int) {
		for it := lo; it < hi; it++ {
			bi, s := it/slices, it%slices
			k0 := s * p.kc
			kc := min(p.kc, p.k-k0)
			packRows(ap[it*aStride:], a, p.aOff[bi], p.k, 0, p.m, k0, kc, roundUp(kc, kStep), mr, nil)
		}
	})

	// Items: row blocks of balanced size, each cut into blocks of a few
	// column panels.
	mc := roundUp(ceilDiv(p.m, ceilDiv(p.m, mcBlock)), mr)
	itemsM := ceilDiv(p.m, mc)
	nc := max(1, min(itemPanels, itemDepth/p.k)) * nr
	itemsN := ceilDiv(p.n, nc)
	items := batches * itemsM * itemsN
	grain := 1
	if p.m*p.n*p.k*batches < smallMatmul {
		grain = items
	}
	parallelEach(items, grain, func(lo, hi int) {
		buf := getBuf(nr*kcMax + mr*nr + max(kcMax, nr))
		defer putBuf(buf)
		for it := lo; it < hi; it++ {
			bi := it / (itemsM * itemsN)
			ti := it % (itemsM * itemsN) / itemsN
			tj := it % itemsN
			i0, j0 := ti*mc, tj*nc
			p.item(ks, bi, i0, min(i0+mc, p.m), j0, min(j0+nc, p.n), ap[bi*slices*aStride:], aStride, *buf)
		}
	})
}

// itemPanels is the widest work item in column panels of the kernel: 64
// columns for the 6×16 kernel. Narrow items keep the cores evenly loaded
// (the last item of a product is short) and the item's block of C small
// enough to stay in L2 from one K slice to the next. Items get narrower
// as K grows, down to one panel, so that their work stays about the same:
// itemDepth/K panels (four for Qwen2-0.5B's K of 896, two for its 4864).
const (
	itemPanels = 4
	itemDepth  = 12288
)

// item computes rows [i0, i1) × columns [j0, j1) of batch element bi. ap
// holds that element's packed A, one K slice every aStride elements; buf
// is scratch space for one B panel, an edge block and widening.
func (p *product) item(ks *kernelSet, bi, i0, i1, j0, j1 int, ap []float32, aStride int, buf []float32) {
	mr, nr := ks.mr, ks.nr
	kcMax := min(p.kc, roundUp(p.k, kStep))
	bp := buf[:nr*kcMax]
	block := buf[nr*kcMax : nr*kcMax+mr*nr]
	scratch := buf[nr*kcMax+mr*nr:]
	cBase := bi * p.m * p.n
	panels := ceilDiv(i1-i0, mr)
	prefetch := ks.prefetch != nil && p.transposed && p.b.packed == nil
	for s, k0 := 0, 0; k0 < p.k; s, k0 = s+1, k0+p.kc {
		kc := min(p.kc, p.k-k0)
		kcp := roundUp(kc, kStep) // panels are zero-padded to whole kernel steps
		aSlice := ap[s*aStride:]
		for j := j0; j < j1; j += nr {
			je := min(j+nr, j1)
			jn := je - j
			if p.transposed {
				packRows(bp, p.b, p.bOff[bi], p.k, j, je, k0, kc, kcp, nr, scratch)
			} else {
				packCols(bp, p.b, p.bOff[bi], p.n, j, je, k0, kc, kcp, nr, scratch)
			}
			// The weights packed next (the next panel, or the first of
			// the next K slice) are requested a few rows before each A
			// panel, so that the requests overlap the arithmetic instead
			// of stalling the packing that follows.
			pfRow, pfK, pfRows, pfPer := 0, 0, 0, 0
			if prefetch {
				switch {
				case je < j1:
					pfRow, pfK, pfRows = je, k0, min(nr, j1-je)
				case k0+p.kc < p.k:
					pfRow, pfK, pfRows = j0, k0+p.kc, min(nr, j1-j0)
				}
				pfPer = ceilDiv(pfRows, panels)
			}
			pfLen := min(p.kc, p.k-pfK)
			for i := i0; i < i1; i += mr {
				if pfRows > 0 {
					n := min(pfPer, pfRows)
					for r := range n {
						ks.prefetch(p.b, p.bOff[bi]+(pfRow+r)*p.k+pfK, pfLen)
					}
					pfRow, pfRows = pfRow+n, pfRows-n
				}
				aPanel := aSlice[i*kcp : (i+mr)*kcp]
				if i+mr <= i1 && jn == nr {
					ks.gemm(kcp, aPanel, bp, p.c[cBase+i*p.n+j:], p.n)
					continue
				}
				if jn == nr && ks.gemmRows != nil && ks.gemmRows(i1-i, kcp, aPanel, bp, p.c[cBase+i*p.n+j:], p.n) {
					continue
				}
				// A block at the edge of C: compute it whole (the panels'
				// zero padding makes the extra entries zero) and add only
				// the part that exists.
				clear(block)
				ks.gemm(kcp, aPanel, bp, block, nr)
				for r := 0; r < mr && i+r < i1; r++ {
					row := p.c[cBase+(i+r)*p.n+j : cBase+(i+r)*p.n+je]
					for q := range row {
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
// padding adds nothing to the results. It packs A, and B for MatmulT;
// scratch (kc elements) is for widening float16, and may be nil otherwise.
func packRows(dst []float32, src operand, off, ld, r0, r1, k0, kc, kcp, rows int, scratch []float32) {
	if src.packed != nil {
		packRowsPacked(dst, src.packed, r0, r1, k0, kc, kcp, rows)
		return
	}
	panels := ceilDiv(r1-r0, rows)
	dst = dst[:panels*rows*kcp]
	// Zero only the padding: the steps past kc of every panel, which every
	// result sums over, and the whole of a last panel that has rows missing.
	// Those rows' results are never stored, but leftovers from the pooled
	// buffer (NaN, denormals) would still go through the kernel.
	if kc != kcp {
		for p := range panels {
			clear(dst[p*rows*kcp+kc*rows : (p+1)*rows*kcp])
		}
	}
	if (r1-r0)%rows != 0 {
		clear(dst[(panels-1)*rows*kcp:])
	}
	r := r0
	if pt := active.packT; pt != nil && rows == active.nr {
		for ; r+rows <= r1; r += rows {
			pt(dst[(r-r0)*kcp:], src, off+r*ld+k0, ld, kc)
		}
	} else if pa := active.packA; pa != nil && rows == active.mr && src.dtype == Float32 {
		for ; r+rows <= r1; r += rows {
			pa(dst[(r-r0)*kcp:], src.f32, off+r*ld+k0, ld, kc)
		}
	}
	for ; r < r1; r++ {
		p, within := (r-r0)/rows, (r-r0)%rows
		panel := dst[p*rows*kcp+within : (p+1)*rows*kcp]
		start := off + r*ld + k0
		switch src.dtype {
		case Float32:
			for k, v := range src.f32[start : start+kc] {
				panel[k*rows] = v
			}
		case BFloat16:
			for k, b := range src.u16[start : start+kc] {
				panel[k*rows] = bf16(b)
			}
		default:
			for k, v := range src.load(start, kc, scratch) {
				panel[k*rows] = v
			}
		}
	}
}

// packCols produces the same panels as packRows with rows = nr, but from
// a matrix stored [K, N], taking columns [c0, c1) as the panel rows. This
// transposition during packing is what lets Matmul reuse the MatmulT
// kernel: dst[p*nr*kcp + k*nr + j] = M[k0 + k][c0 + p*nr + j]. scratch
// (nr elements) is for widening 16-bit data.
func packCols(dst []float32, src operand, off, ld, c0, c1, k0, kc, kcp, nr int, scratch []float32) {
	panels := ceilDiv(c1-c0, nr)
	dst = dst[:panels*nr*kcp]
	if (c1-c0)%nr != 0 || kc != kcp {
		clear(dst)
	}
	if pn := active.packN; pn != nil && nr == active.nr && src.dtype == Float32 {
		// Whole panels in assembly, one panel at a time: 64-byte rows
		// copied with vector moves, about twice as fast as the loop below.
		for ; c0+nr <= c1; c0 += nr {
			pn(dst, src, off+k0*ld+c0, ld, kc)
			dst = dst[nr*kcp:]
		}
	}
	for k := 0; k < kc && c0 < c1; k++ {
		// One row of the block, read front to back (reading a panel at a
		// time instead would jump a whole row of B for every k). Its
		// consecutive groups of nr columns are the k-th steps of
		// consecutive panels.
		seg := src.load(off+(k0+k)*ld+c0, c1-c0, scratch)
		d := k * nr
		for len(seg) > 0 {
			n := copy(dst[d:d+min(nr, len(seg))], seg)
			seg = seg[n:]
			d += nr * kcp
		}
	}
}

// MatmulTEach returns x·Wᵀ for each W of ws (2-D, [N_i, K], any dtype),
// for x of shape [..., K]: [..., N_i] each, the same values as MatmulT of
// x's rows with each W. For a single row of x (a decode step) the
// matrices that read the same input — q, k and v; gate and up — share one
// pass over the cores: one hand-off instead of one per matrix, and small
// matrices (k and v, 128 rows for Qwen2-0.5B) ride along with a large one
// instead of being split across the cores on their own. For more rows
// each is multiplied on its own.
func MatmulTEach(x *Tensor, ws ...*Tensor) []*Tensor {
	return MatmulTEachInto(nil, x, ws...)
}

// MatmulTEachInto is MatmulTEach written into dst: dst[i] is a Float32
// tensor of x's leading shape and N_i columns (or as many elements), whose
// contents are overwritten. It returns dst. A nil dst gets new tensors.
func MatmulTEachInto(dst []*Tensor, x *Tensor, ws ...*Tensor) []*Tensor {
	if x.NDim() == 0 {
		panic("tensor.MatmulTEach: x is a scalar; it needs a last dimension to multiply")
	}
	k := x.shape[x.NDim()-1]
	for _, w := range ws {
		if w.NDim() != 2 || w.shape[1] != k {
			panic(fmt.Sprintf("tensor.MatmulTEach: x %v times a weight of shape %v: the weight must be 2-D with %d columns", x.shape, w.shape, k))
		}
	}
	out := dst
	if out == nil {
		out = make([]*Tensor, len(ws))
	} else if len(out) != len(ws) {
		panic(fmt.Sprintf("tensor.MatmulTEachInto: %d destinations for %d weights", len(out), len(ws)))
	}
	lead := x.shape[:x.NDim()-1]
	shapeOf := func(w *Tensor) []int { return append(append([]int(nil), lead...), w.shape[0]) }
	if x.Size() != k || k == 0 {
		rows := Reshape(x, -1, k)
		for i, w := range ws {
			if dst == nil {
				out[i] = Reshape(MatmulT(rows, w), shapeOf(w)...)
			} else {
				MatmulTInto(out[i], rows, w)
			}
		}
		return out
	}
	xs := x.Data()
	starts := make([]int, len(ws)+1) // matrix i owns the combined rows [starts[i], starts[i+1])
	for i, w := range ws {
		starts[i+1] = starts[i] + w.shape[0]
		switch {
		case dst == nil:
			out[i] = newTensor(Float32, shapeOf(w))
		case out[i].dtype != Float32 || out[i].Size() != w.shape[0]:
			panic(fmt.Sprintf("tensor.MatmulTEachInto: x %v times a weight of shape %v does not fit a destination of shape %v (%s)", x.shape, w.shape, out[i].shape, out[i].dtype))
		}
	}
	ks := active
	parallelFor(starts[len(ws)], roundUp(max(1, smallMatmul/k), 4), func(lo, hi int) {
		for i, w := range ws {
			a, b := max(lo, starts[i]), min(hi, starts[i+1])
			if a < b {
				ks.dotRows(xs, operandOf(w), (a-starts[i])*k, k, out[i].f32[a-starts[i]:b-starts[i]])
			}
		}
	})
	return out
}
