// Package day4 is Week 3 Day 4 of the course: paged attention. Attention
// reads each sequence's keys and values straight out of the pages of Day 3's
// page pool through its block table, never gathering them into a dense copy:
// on the CPU (this file), and on the GPU (paged.cu, paged.metal, gpu.go).
// The model runner (runner.go) joins the Week 3 parts: Day 1's batched
// model, with its attention reading the pages, under Day 2's engine and
// Day 3's block manager. The guide's chapter "Week 3 Day 4" explains the
// tasks; grade your work with `make check-w3d4`.
package day4

import (
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
	// Your code here (W3D4).
	panic("TODO(W3D4): implement CheckPaged")
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
	// Your code here (W3D4).
	panic("TODO(W3D4): implement PagedAttention")
}
