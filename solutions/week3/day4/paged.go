// Package day4 is the reference solution of Week 3 Day 4: paged attention.
// Attention reads each sequence's keys and values straight out of the pages
// of Day 3's page pool through its block table, never gathering them into a
// dense copy: on the CPU (this file), and on the GPU (paged.cu, paged.metal,
// gpu.go). The model runner (runner.go) joins the Week 3 parts: Day 1's
// batched model, with its attention reading the pages, under Day 2's engine
// and Day 3's block manager. Graded by `make check-w3d4`.
package day4

import (
	"fmt"
	"math"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// PadPage is the entry of a block table that names no page: the padding of
// a table wider than its sequence needs (the GPU reads every sequence's
// table from one padded matrix). Any other negative entry is an error.
// (Provided.)
const PadPage = -1

// PageShape is the layout of one layer of a page pool: keys and values are
// each NumPages x PageSize x KVHeads x HeadDim float32, so position p of a
// sequence, key/value head h, starts at ((page·PageSize + p%PageSize)·KVHeads
// + h)·HeadDim with page = BlockTable[p/PageSize]. (Provided.)
type PageShape struct {
	NumPages, PageSize, KVHeads, HeadDim int
}

// LayerFloats is the length of one layer's keys (or values).
func (s PageShape) LayerFloats() int { return s.NumPages * s.PageSize * s.KVHeads * s.HeadDim }

// PagedSeq is one sequence's share of a paged attention call. Its Len query
// rows are the positions Context … Context+Len-1, whose keys and values are
// in its pages already (the caller writes them before attention), and row i
// sees positions 0 … Context+i: the bottom-right causal mask. A decode step
// is Len 1; a prefill chunk after a cached prefix has Context > 0.
type PagedSeq struct {
	Context    int   // positions cached before this call's queries
	Len        int   // query rows, at least 1
	BlockTable []int // page of positions p·PageSize … (p+1)·PageSize-1 at entry p
}

// RefCounter returns the page pool's reference count of a page: the number
// of sequences that hold it (Day 3's PagePool.RefCount).
type RefCounter func(page int) (int, error)

// CheckPaged returns an error that says what is wrong with a paged
// attention call's metadata, or nil. It is what keeps a kernel from reading
// out of bounds or across requests, so it checks, for every sequence: the
// context is not negative and there is at least one query row; the block
// table covers Context+Len positions, with no PadPage among the entries it
// needs; every entry is a page of the pool or, past the entries it needs,
// PadPage (no other negative value); no page appears twice in one table.
// Across sequences, a page may appear in as many tables as its reference
// count says (refs; with nil refs every page has one holder), a page in use
// has a reference count above 0, and a page that receives this call's new
// positions is held by its sequence alone (a shared page is copied before it
// is written).
func CheckPaged(shape PageShape, seqs []PagedSeq, refs RefCounter) error {
	if shape.NumPages <= 0 || shape.PageSize <= 0 || shape.KVHeads <= 0 || shape.HeadDim <= 0 {
		return fmt.Errorf("paged attention: every size of the page shape must be positive, got %+v", shape)
	}
	if len(seqs) == 0 {
		return fmt.Errorf("paged attention: no sequences")
	}
	// Per page, indexed by page id (a serving step checks every page of
	// hundreds of sequences, so slices, not maps): how many sequences'
	// needed entries name it, and the last sequence (+1) and entry that did.
	uses := make([]int32, shape.NumPages)
	lastSeq := make([]int32, shape.NumPages)
	lastEntry := make([]int32, shape.NumPages)
	for i, s := range seqs {
		switch {
		case s.Context < 0:
			return fmt.Errorf("paged attention: sequence %d has a negative context length %d", i, s.Context)
		case s.Len < 1:
			return fmt.Errorf("paged attention: sequence %d has %d query rows, want at least 1", i, s.Len)
		}
		total := s.Context + s.Len
		need := (total + shape.PageSize - 1) / shape.PageSize
		if len(s.BlockTable) < need {
			return fmt.Errorf("paged attention: sequence %d: its block table of %d pages covers %d positions, but context %d + %d query rows need %d pages",
				i, len(s.BlockTable), len(s.BlockTable)*shape.PageSize, s.Context, s.Len, need)
		}
		for j, page := range s.BlockTable {
			switch {
			case page == PadPage && j < need:
				return fmt.Errorf("paged attention: sequence %d: block table entry %d is padding (%d), but the sequence's %d positions need entries 0 … %d",
					i, j, PadPage, total, need-1)
			case page == PadPage:
				continue
			case page < 0:
				return fmt.Errorf("paged attention: sequence %d: block table entry %d is %d, which is neither a page nor the padding sentinel %d",
					i, j, page, PadPage)
			case page >= shape.NumPages:
				return fmt.Errorf("paged attention: sequence %d: block table entry %d names page %d, out of range [0, %d)", i, j, page, shape.NumPages)
			}
			if j >= need {
				continue // a page reserved for later positions: never read
			}
			if lastSeq[page] == int32(i+1) {
				return fmt.Errorf("paged attention: sequence %d names page %d twice (entries %d and %d): two of its positions would share a slot", i, page, lastEntry[page], j)
			}
			lastSeq[page], lastEntry[page] = int32(i+1), int32(j)
			uses[page]++
		}
	}
	for i, s := range seqs {
		// The pages that receive this call's positions Context … Context+Len-1.
		first, last := s.Context/shape.PageSize, (s.Context+s.Len-1)/shape.PageSize
		for j := first; j <= last; j++ {
			page := s.BlockTable[j]
			n, err := refCount(refs, page)
			if err != nil {
				return fmt.Errorf("paged attention: sequence %d: %w", i, err)
			}
			if n > 1 || uses[page] > 1 {
				return fmt.Errorf("paged attention: sequence %d writes positions into page %d, which is shared (reference count %d, in the tables of sequences %v): copy a shared page before writing to it",
					i, page, n, holdersOf(shape, seqs, page))
			}
		}
	}
	for page, u := range uses {
		if u == 0 {
			continue
		}
		n, err := refCount(refs, page)
		if err != nil {
			return fmt.Errorf("paged attention: %w", err)
		}
		switch {
		case n == 0:
			return fmt.Errorf("paged attention: sequence %d reads page %d, which is free (reference count 0)", holdersOf(shape, seqs, page)[0], page)
		case int(u) > n:
			return fmt.Errorf("paged attention: page %d is in the block tables of sequences %v but has reference count %d: only pages shared through the pool (a reference per holder) may be shared",
				page, holdersOf(shape, seqs, page), n)
		}
	}
	return nil
}

// holdersOf lists the sequences whose needed block table entries name page:
// what an error message shows.
func holdersOf(shape PageShape, seqs []PagedSeq, page int) []int {
	var who []int
	for i, s := range seqs {
		need := (s.Context + s.Len + shape.PageSize - 1) / shape.PageSize
		for _, p := range s.BlockTable[:min(need, len(s.BlockTable))] {
			if p == page {
				who = append(who, i)
				break
			}
		}
	}
	return who
}

// refCount is refs(page), or 1 when refs is nil.
func refCount(refs RefCounter, page int) (int, error) {
	if refs == nil {
		return 1, nil
	}
	return refs(page)
}

// checkCall validates q, the pages and the metadata of a paged attention
// call and returns T (query rows) and Hq.
func checkCall(q *tensor.Tensor, k, v []float32, shape PageShape, seqs []PagedSeq, refs RefCounter) (t, hq int, err error) {
	if err := CheckPaged(shape, seqs, refs); err != nil {
		return 0, 0, err
	}
	rows := 0
	for _, s := range seqs {
		rows += s.Len
	}
	switch {
	case q == nil || q.NDim() != 3:
		return 0, 0, fmt.Errorf("paged attention: q must be T x Hq x D, got %v", shapeOf(q))
	case q.Dim(0) != rows:
		return 0, 0, fmt.Errorf("paged attention: q has %d rows, but the sequences bring %d query rows", q.Dim(0), rows)
	case q.Dim(2) != shape.HeadDim:
		return 0, 0, fmt.Errorf("paged attention: q's head dimension is %d, the pages' %d", q.Dim(2), shape.HeadDim)
	case q.Dim(1)%shape.KVHeads != 0:
		return 0, 0, fmt.Errorf("paged attention: %d query heads is not a multiple of %d key/value heads", q.Dim(1), shape.KVHeads)
	case len(k) != shape.LayerFloats() || len(v) != shape.LayerFloats():
		return 0, 0, fmt.Errorf("paged attention: a layer of %d pages x %d positions x %d heads x %d is %d floats, got keys %d and values %d",
			shape.NumPages, shape.PageSize, shape.KVHeads, shape.HeadDim, shape.LayerFloats(), len(k), len(v))
	}
	return rows, q.Dim(1), nil
}

func shapeOf(t *tensor.Tensor) any {
	if t == nil {
		return "nil"
	}
	return t.Shape()
}

// PagedAttention computes grouped-query attention for several sequences
// whose keys and values live in the pages of one layer. q is T x Hq x D,
// the query rows of seqs one after the other (seqs[0]'s Len rows first),
// already rotated; k and v are the layer's pages (PageShape's layout, as
// PagePool.Layer returns them), holding every position each sequence's
// queries see. Query head j reads key/value head j / (Hq/KVHeads); row i of
// a sequence sees its positions 0 … Context+i. scale 0 means 1/sqrt(D). The
// result is T x Hq x D. Metadata that CheckPaged refuses, or shapes that do
// not fit, return an error before anything is read.
//
// The work is split over (sequence, key/value head, block of query rows)
// on all cores; each walks the sequence's pages in table order, so keys
// are read where they lie.
func PagedAttention(q *tensor.Tensor, k, v []float32, shape PageShape, seqs []PagedSeq, scale float32, refs RefCounter) (*tensor.Tensor, error) {
	if _, _, err := checkCall(q, k, v, shape, seqs, refs); err != nil {
		return nil, err
	}
	return pagedAttention(q, k, v, shape, seqs, scale), nil
}

// pagedAttention is PagedAttention on a call that checkCall accepted.
func pagedAttention(q *tensor.Tensor, k, v []float32, shape PageShape, seqs []PagedSeq, scale float32) *tensor.Tensor {
	t, hq := q.Dim(0), q.Dim(1)
	d, h := shape.HeadDim, shape.KVHeads
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(d)))
	}
	g := hq / h
	qd := q.Data()
	out := make([]float32, t*hq*d)
	// A job is up to rowBlock query rows of one sequence for one key/value
	// head: the G query heads of the head read the same keys, jobs never
	// share an output, and a long prefill chunk still spreads over every
	// core instead of one job per head.
	const rowBlock = 16
	type job struct{ seq, kvh, row0, rows, first int }
	var jobs []job
	first := 0 // the sequence's first row in q
	for si, s := range seqs {
		for kvh := range h {
			for r0 := 0; r0 < s.Len; r0 += rowBlock {
				jobs = append(jobs, job{si, kvh, r0, min(rowBlock, s.Len-r0), first})
			}
		}
		first += s.Len
	}
	tensor.ParallelFor(len(jobs), 1, func(lo, hi int) {
		var scores []float32
		qs := make([]float32, d)
		for _, j := range jobs[lo:hi] {
			s := seqs[j.seq]
			if n := s.Context + s.Len; cap(scores) < n {
				scores = make([]float32, n)
			}
			for r := j.row0; r < j.row0+j.rows; r++ {
				row := j.first + r
				visible := s.Context + r + 1
				for gi := range g {
					at := (row*hq + j.kvh*g + gi) * d
					attendRow(out[at:at+d], qd[at:at+d], k, v, s.BlockTable, shape, j.kvh, visible, scale, scores[:visible], qs)
				}
			}
		}
	})
	return tensor.New(out, t, hq, d)
}

// attendRow computes one query head's output for one query row over the
// first visible positions of a sequence: scores first, page by page (one
// head's keys in a page are PageSize rows KVHeads·HeadDim apart: a strided
// matrix-vector product, tensor.DotRows), then the softmax, then the
// weighted sum of the values, page by page (tensor.SumRows: the page's
// value rows times their weights, accumulated in registers). qs
// is scratch of HeadDim floats for the scaled query.
func attendRow(out, qr, k, v []float32, table []int, shape PageShape, kvh, visible int, scale float32, scores, qs []float32) {
	ps, w, d := shape.PageSize, shape.KVHeads*shape.HeadDim, shape.HeadDim
	// Scaling the query once scales every score: D products, not S.
	for e, x := range qr {
		qs[e] = x * scale
	}
	top := float32(math.Inf(-1))
	for p := 0; p < visible; p += ps {
		off := table[p/ps]*ps*w + kvh*d
		page := scores[p:min(p+ps, visible)]
		tensor.DotRows(qs, k, off, w, page)
		for _, x := range page {
			top = max(top, x)
		}
	}
	for j := range scores {
		scores[j] -= top
	}
	tensor.ExpSlice(scores, scores)
	var sum float64 // float32 would lose digits over thousands of positions
	for _, x := range scores {
		sum += float64(x)
	}
	clear(out)
	for p := 0; p < visible; p += ps {
		off := table[p/ps]*ps*w + kvh*d
		tensor.SumRows(scores[p:min(p+ps, visible)], v, off, w, out)
	}
	inv := float32(1 / sum)
	for e := range out {
		out[e] *= inv
	}
}
