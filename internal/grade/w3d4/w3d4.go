// Package w3d4 holds the checks of Week 3 Day 4 (paged attention and the
// model runner), shared by week3/day4 and solutions/week3/day4: paged
// attention on the CPU against dense grouped attention over the same keys
// gathered by the check, with every page and slot the call must not read
// poisoned with NaN; a rejection matrix of bad metadata; the GPU kernels
// against the same reference (by name "not run" without a GPU); and the
// whole engine with the paged runner against the Week 2 model run on each
// request alone.
package w3d4

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/suspect"
	"github.com/tinyllm-go/tinyllm/internal/grade/w2d6"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// PageShape is the layout of one layer of a page pool, as the day's
// PageShape holds it.
type PageShape struct {
	NumPages, PageSize, KVHeads, HeadDim int
}

func (s PageShape) floats() int { return s.NumPages * s.PageSize * s.KVHeads * s.HeadDim }

// Seq is one sequence's metadata, as the day's PagedSeq holds it.
type Seq struct {
	Context, Len int
	BlockTable   []int
}

// RefCounter is the pool's reference count of a page.
type RefCounter = func(page int) (int, error)

// PagedFunc is the day's PagedAttention with the check's types.
type PagedFunc func(q *tensor.Tensor, k, v []float32, shape PageShape, seqs []Seq, scale float32, refs RefCounter) (*tensor.Tensor, error)

// CheckFunc is the day's CheckPaged with the check's types.
type CheckFunc func(shape PageShape, seqs []Seq, refs RefCounter) error

// Pad is the padding sentinel the day declares (PadPage); the checks build
// their tables with it.
const Pad = -1

// Problem is a paged attention call with its pool: the pages of one layer
// and the reference counts of the pool.
type Problem struct {
	Name   string
	Shape  PageShape
	Hq     int
	Seqs   []Seq
	Q      *tensor.Tensor // T x Hq x D
	K, V   []float32
	Refs   []int
	Scale  float32
	poison int // slots poisoned with NaN
}

// RefCount is the problem pool's RefCounter.
func (p *Problem) RefCount(page int) (int, error) {
	if page < 0 || page >= len(p.Refs) {
		return 0, fmt.Errorf("page %d out of range [0, %d)", page, len(p.Refs))
	}
	return p.Refs[page], nil
}

// Rows is T, the number of query rows.
func (p *Problem) Rows() int {
	n := 0
	for _, s := range p.Seqs {
		n += s.Len
	}
	return n
}

// spec describes a problem: the sequences' (context, rows) and which pages
// the first sequences share (whole pages of their common prefix).
type spec struct {
	name                   string
	hq, h, d, pageSize     int
	seqs                   [][2]int // context, rows
	sharedPrefix           int      // pages that seqs[0] and seqs[1] share, read-only
	spareEntries, numPages int      // reserved entries past the need; pool size (0: exactly enough + 7)
}

var specs = []spec{
	{name: "decode, one sequence, context 37, pages of 16", hq: 8, h: 2, d: 32, pageSize: 16, seqs: [][2]int{{37, 1}}},
	{name: "prefill from 0, 45 rows, pages of 16", hq: 8, h: 2, d: 32, pageSize: 16, seqs: [][2]int{{0, 45}}},
	{name: "chunk of 20 after 29 cached, pages of 8", hq: 8, h: 2, d: 32, pageSize: 8, seqs: [][2]int{{29, 20}}},
	{name: "mixed batch: decodes, a chunk, a prefill (Qwen2-0.5B heads)", hq: 14, h: 2, d: 64, pageSize: 16,
		seqs: [][2]int{{100, 1}, {15, 1}, {33, 31}, {0, 17}, {64, 1}}, spareEntries: 2},
	{name: "multi-head (H = Hq), pages of 1, odd head dimension", hq: 3, h: 3, d: 5, pageSize: 1, seqs: [][2]int{{6, 1}, {0, 4}, {2, 3}}},
	{name: "two decodes sharing a 2-page prefix through the pool", hq: 4, h: 1, d: 16, pageSize: 4,
		seqs: [][2]int{{11, 1}, {9, 1}, {3, 2}}, sharedPrefix: 2},
	{name: "context ends on a page boundary, chunk fills the next page exactly", hq: 8, h: 4, d: 8, pageSize: 8, seqs: [][2]int{{16, 8}, {7, 1}}},
}

// build makes a problem: pages handed out in a scrambled order, every page
// and slot the sequences do not cover filled with NaN (so a read out of
// bounds poisons the output), reserved entries past the need naming
// poisoned pages.
func build(sp spec, seed uint64) *Problem {
	rng := rand.New(rand.NewPCG(seed, 0x3d4))
	ps := sp.pageSize
	need := 0
	for i, s := range sp.seqs {
		need += (s[0]+s[1]+ps-1)/ps + sp.spareEntries
		if i == 1 {
			need -= sp.sharedPrefix
		}
	}
	numPages := sp.numPages
	if numPages == 0 {
		numPages = need + 7
	}
	shape := PageShape{NumPages: numPages, PageSize: ps, KVHeads: sp.h, HeadDim: sp.d}
	p := &Problem{Name: sp.name, Shape: shape, Hq: sp.hq, Refs: make([]int, numPages)}
	nan := float32(math.NaN())
	p.K, p.V = make([]float32, shape.floats()), make([]float32, shape.floats())
	for i := range p.K {
		p.K[i], p.V[i] = nan, nan
	}
	order := rng.Perm(numPages)
	take := func() int {
		page := order[0]
		order = order[1:]
		p.Refs[page] = 1
		return page
	}
	w := sp.h * sp.d
	for i, s := range sp.seqs {
		total := s[0] + s[1]
		n := (total + ps - 1) / ps
		var table []int
		for j := range n {
			if i == 1 && j < sp.sharedPrefix {
				page := p.Seqs[0].BlockTable[j]
				p.Refs[page]++
				table = append(table, page)
				continue
			}
			table = append(table, take())
		}
		for range sp.spareEntries {
			table = append(table, take()) // reserved, still NaN: never read
		}
		// Write the visible positions (a shared page was written by its
		// first holder with the same prefix positions).
		for pos := range total {
			page, slot := table[pos/ps], pos%ps
			if i == 1 && pos/ps < sp.sharedPrefix {
				continue
			}
			at := (page*ps + slot) * w
			for e := range w {
				p.K[at+e] = float32(rng.NormFloat64())
				p.V[at+e] = float32(rng.NormFloat64())
			}
		}
		p.Seqs = append(p.Seqs, Seq{Context: s[0], Len: s[1], BlockTable: table})
	}
	for _, x := range p.K {
		if x != x {
			p.poison++
		}
	}
	p.poison /= w
	p.Q = tensor.RandN(rng, p.Rows(), sp.hq, sp.d)
	if seed%2 == 1 {
		p.Scale = 0.3
	}
	return p
}

// gather copies sequence i's first n positions out of the pages, H x n x D:
// the dense keys and values the reference attends to (the check gathers;
// the day's code must not).
func (p *Problem) gather(i, n int) (k, v *tensor.Tensor) {
	s, sh := p.Seqs[i], p.Shape
	kd, vd := make([]float32, sh.KVHeads*n*sh.HeadDim), make([]float32, sh.KVHeads*n*sh.HeadDim)
	for pos := range n {
		page, slot := s.BlockTable[pos/sh.PageSize], pos%sh.PageSize
		for h := range sh.KVHeads {
			src := ((page*sh.PageSize+slot)*sh.KVHeads + h) * sh.HeadDim
			dst := (h*n + pos) * sh.HeadDim
			copy(kd[dst:dst+sh.HeadDim], p.K[src:src+sh.HeadDim])
			copy(vd[dst:dst+sh.HeadDim], p.V[src:src+sh.HeadDim])
		}
	}
	return tensor.New(kd, sh.KVHeads, n, sh.HeadDim), tensor.New(vd, sh.KVHeads, n, sh.HeadDim)
}

// Want is the dense reference, T x Hq x D: for each sequence, its query rows
// against its gathered keys under the bottom-right causal mask, by the
// plain grouped attention of the checks (head j reads key/value head
// j / (Hq/H)).
func (p *Problem) Want() *tensor.Tensor { return p.want(suspect.Grouped, bottomRight) }

// The masks want knows: the right one, and two mistakes.
const (
	bottomRight = iota
	topLeft     // row i sees positions 0 … i
	ownOnly     // row i sees positions Context … Context+i
)

// want is the reference with query heads mapped by kvHead and the mask of
// kind mask.
func (p *Problem) want(kvHead suspect.KVHead, mask int) *tensor.Tensor {
	var outs []*tensor.Tensor
	row, d := 0, p.Shape.HeadDim
	scale := p.Scale
	if scale == 0 {
		scale = suspect.DefaultScale(d)
	}
	for i, s := range p.Seqs {
		n := s.Context + s.Len
		k, v := p.gather(i, n)
		q := tensor.Transpose(tensor.Slice(p.Q, 0, row, row+s.Len), 1, 0, 2) // Hq x L x D
		bias := w2d6.CausalBias(s.Len, n)
		switch mask {
		case topLeft:
			bias = w2d6.CausalBias(s.Len, s.Len)
			if n > s.Len {
				bias = tensor.Concat(1, bias, tensor.Full(float32(math.Inf(-1)), s.Len, n-s.Len))
			}
		case ownOnly:
			if s.Context > 0 {
				bias = tensor.Concat(1, tensor.Full(float32(math.Inf(-1)), s.Len, s.Context), w2d6.CausalBias(s.Len, s.Len))
			}
		}
		o := suspect.GroupedAttention(tensor.ExpandDims(q, 0), tensor.ExpandDims(k, 0), tensor.ExpandDims(v, 0), scale, bias, kvHead)
		outs = append(outs, tensor.Transpose(tensor.Squeeze(o, 0), 1, 0, 2))
		row += s.Len
	}
	return tensor.Concat(0, outs...)
}

// Problems are the checks' paged attention calls, seeded by seed.
func Problems(seed uint64) []*Problem {
	var ps []*Problem
	for i, sp := range specs {
		ps = append(ps, build(sp, seed+uint64(i)))
	}
	return ps
}

// suspects are the usual mistakes, each computed as a diagnosis only.
func suspects(p *Problem) grade.Option {
	return grade.Suspects(
		grade.Suspect{Cause: "query head j reads key/value head j mod H instead of j / (Hq/H)", Output: func() *tensor.Tensor { return p.want(suspect.Interleaved, bottomRight) }},
		grade.Suspect{Cause: "the causal mask is aligned top-left: row i sees positions 0 … i instead of 0 … Context+i", Output: func() *tensor.Tensor { return p.want(suspect.Grouped, topLeft) }},
		grade.Suspect{Cause: "the queries see only the positions of this call, not the cached context", Output: func() *tensor.Tensor { return p.want(suspect.Grouped, ownOnly) }},
	)
}

// Attention checks Task 1, PagedAttention, against dense grouped attention
// on every problem.
func Attention(t *testing.T, paged PagedFunc) {
	const task = "W3D4 Task 1 PagedAttention"
	grade.PointToChapter(t, task)
	for _, p := range Problems(40) {
		t.Run(p.Name, func(t *testing.T) {
			what := fmt.Sprintf("%s, %s (%d pages of %d, Hq %d, H %d, D %d)", task, p.Name, p.Shape.NumPages, p.Shape.PageSize, p.Hq, p.Shape.KVHeads, p.Shape.HeadDim)
			var got *tensor.Tensor
			var err error
			if grade.Run(t, what, func() { got, err = paged(p.Q, p.K, p.V, p.Shape, p.Seqs, p.Scale, p.RefCount) }) {
				return
			}
			if err != nil {
				t.Fatalf("%s: refused a valid call: %v", what, err)
			}
			if got == nil {
				t.Fatalf("%s: returned no tensor and no error", what)
			}
			if n := countNaN(got); n > 0 {
				t.Fatalf("%s: %d outputs are NaN: the %d slots outside the sequences' visible positions are NaN here, so something read a page past the block table's need, a slot past the context, or a page of another sequence",
					what, n, p.poison)
			}
			grade.AllClose(t, what, got, p.Want(), grade.Products, grade.ByHead(1), suspects(p))
		})
	}
}

func countNaN(t *tensor.Tensor) int {
	n := 0
	for _, x := range t.Data() {
		if x != x {
			n++
		}
	}
	return n
}

// Bad is one case of the rejection matrix: a change to a valid problem and
// the words its error must contain (any one of them).
type Bad struct {
	Name  string
	Words []string
	Break func(p *Problem)
}

// BadMetadata is the rejection matrix, applied to the mixed-batch problem
// (five sequences, two reserved entries each) or to the shared-prefix one.
var BadMetadata = []Bad{
	{"negative context length", []string{"negative"}, func(p *Problem) { p.Seqs[1].Context = -1 }},
	{"zero query rows", []string{"row"}, func(p *Problem) { p.Seqs[2].Len = 0 }},
	{"page id past the pool", []string{"range"}, func(p *Problem) { p.Seqs[0].BlockTable[2] = p.Shape.NumPages }},
	{"page id far past the pool", []string{"range"}, func(p *Problem) { p.Seqs[3].BlockTable[0] = 1 << 30 }},
	{"block table too short for the context", []string{"cover", "short"}, func(p *Problem) {
		s := &p.Seqs[0]
		s.BlockTable = s.BlockTable[:(s.Context+s.Len+p.Shape.PageSize-1)/p.Shape.PageSize-1]
	}},
	{"padding inside the needed entries", []string{"padding"}, func(p *Problem) { p.Seqs[2].BlockTable[1] = Pad }},
	{"padding that is not the sentinel (-2)", []string{"sentinel"}, func(p *Problem) {
		s := &p.Seqs[3]
		s.BlockTable[len(s.BlockTable)-1] = -2
	}},
	{"a negative page id among the needed entries", []string{"sentinel", "range", "negative"}, func(p *Problem) { p.Seqs[4].BlockTable[0] = -7 }},
	{"two live requests share a page held once", []string{"share", "reference count"}, func(p *Problem) {
		p.Seqs[3].BlockTable[0] = p.Seqs[0].BlockTable[0] // seqs[3] writes into it too
	}},
	{"two requests read a page held once (neither writes it)", []string{"share", "reference count"}, func(p *Problem) {
		p.Seqs[2].BlockTable[0] = p.Seqs[0].BlockTable[0]
	}},
	{"one table names a page twice", []string{"twice"}, func(p *Problem) { p.Seqs[0].BlockTable[1] = p.Seqs[0].BlockTable[0] }},
	{"a table reads a free page", []string{"free"}, func(p *Problem) {
		for page, n := range p.Refs {
			if n == 0 {
				p.Seqs[0].BlockTable[0] = page
				return
			}
		}
	}},
	{"no sequences", []string{"no sequence"}, func(p *Problem) { p.Seqs = nil }},
}

// BadShared is the rejection case of a shared page written to: the
// shared-prefix problem with a sequence whose new position lands in the
// shared page.
var BadShared = Bad{"a new position written into a page shared through the pool", []string{"shared"}, func(p *Problem) {
	// seqs[1] shares seqs[0]'s first two pages (8 positions); make it a
	// chunk that starts inside them.
	p.Seqs[1].Context, p.Seqs[1].Len = 6, 4
	p.Q = tensor.RandN(rand.New(rand.NewPCG(1, 2)), p.Rows(), p.Hq, p.Shape.HeadDim)
}}

// clone copies a problem's metadata so a case can change it.
func clone(p *Problem) *Problem {
	c := *p
	c.Seqs = make([]Seq, len(p.Seqs))
	for i, s := range p.Seqs {
		c.Seqs[i] = Seq{Context: s.Context, Len: s.Len, BlockTable: append([]int(nil), s.BlockTable...)}
	}
	c.Refs = append([]int(nil), p.Refs...)
	return &c
}

// Cases returns the rejection matrix's problems, each a broken copy of a
// valid one, and the valid ones.
func Cases() (valid []*Problem, bad []*Problem, cases []Bad) {
	ps := Problems(7)
	mixed, shared := ps[3], ps[5]
	for _, b := range BadMetadata {
		c := clone(mixed)
		b.Break(c)
		bad, cases = append(bad, c), append(cases, b)
	}
	c := clone(shared)
	BadShared.Break(c)
	bad, cases = append(bad, c), append(cases, BadShared)
	return []*Problem{mixed, shared}, bad, cases
}

// errorNames checks that err is an error containing one of words.
func errorNames(err error, words []string) string {
	if err == nil {
		return "no error"
	}
	msg := strings.ToLower(err.Error())
	for _, w := range words {
		if strings.Contains(msg, strings.ToLower(w)) {
			return ""
		}
	}
	return fmt.Sprintf("the error %q names none of %q: say what is wrong", err, words)
}

// Rejects checks Task 2: CheckPaged and PagedAttention refuse every case of
// the rejection matrix with an error that names the problem (and never
// panic), and accept the valid problems they were made from.
func Rejects(t *testing.T, check CheckFunc, paged PagedFunc) {
	const task = "W3D4 Task 2 CheckPaged"
	grade.PointToChapter(t, task)
	valid, bad, cases := Cases()
	for _, p := range valid {
		var err error
		if grade.Run(t, task, func() { err = check(p.Shape, p.Seqs, p.RefCount) }) {
			return
		}
		if err != nil {
			t.Fatalf("%s: refused the valid call %q: %v", task, p.Name, err)
		}
	}
	for i, p := range bad {
		c := cases[i]
		t.Run(c.Name, func(t *testing.T) {
			var err error
			if grade.Run(t, task+", "+c.Name, func() { err = check(p.Shape, p.Seqs, p.RefCount) }) {
				return
			}
			if msg := errorNames(err, c.Words); msg != "" {
				t.Errorf("%s, %s: %s", task, c.Name, msg)
			}
			var out *tensor.Tensor
			if grade.Run(t, "W3D4 Task 1 PagedAttention, "+c.Name, func() { out, err = paged(p.Q, p.K, p.V, p.Shape, p.Seqs, p.Scale, p.RefCount) }) {
				return
			}
			if err == nil || out != nil {
				t.Errorf("W3D4 Task 1 PagedAttention, %s: returned (%v, %v), want no output and an error (validate with CheckPaged before reading a page)", c.Name, shapeOf(out), err)
			}
		})
	}
	// Shapes that do not fit, on a valid metadata.
	p := valid[0]
	for _, x := range []struct {
		name string
		q    *tensor.Tensor
		k    []float32
	}{
		{"q with one row too many", tensor.Zeros(p.Rows()+1, p.Hq, p.Shape.HeadDim), p.K},
		{"q heads not a multiple of the kv heads", tensor.Zeros(p.Rows(), p.Shape.KVHeads+1, p.Shape.HeadDim), p.K},
		{"q of another head dimension", tensor.Zeros(p.Rows(), p.Hq, p.Shape.HeadDim+1), p.K},
		{"keys shorter than the pool", p.Q, p.K[:len(p.K)-1]},
	} {
		var err error
		var out *tensor.Tensor
		if grade.Run(t, "W3D4 Task 1 PagedAttention, "+x.name, func() { out, err = paged(x.q, x.k, p.V, p.Shape, p.Seqs, 0, p.RefCount) }) {
			return
		}
		if err == nil || out != nil {
			t.Errorf("W3D4 Task 1 PagedAttention, %s: no error", x.name)
		}
	}
}

func shapeOf(t *tensor.Tensor) any {
	if t == nil {
		return "nil"
	}
	return t.Shape()
}

// DenseFunc is Week 1 Day 3's ScaledDotProductAttentionGrouped: q
// N x Hq x L x D, k and v N x H x S x D, an additive L x S mask.
type DenseFunc func(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor) *tensor.Tensor

// MatchesDense checks Task 1 against the tree's own Week 1 Day 3 grouped
// attention, run by the check on keys and values it gathers out of the
// pages into dense tensors: the two ways of computing the same attention
// must agree.
func MatchesDense(t *testing.T, paged PagedFunc, dense DenseFunc) {
	const task = "W3D4 Task 1 PagedAttention against W1D3's grouped attention"
	grade.PointToChapter(t, task)
	for _, p := range Problems(70) {
		t.Run(p.Name, func(t *testing.T) {
			var got *tensor.Tensor
			var err error
			if grade.Run(t, task, func() { got, err = paged(p.Q, p.K, p.V, p.Shape, p.Seqs, p.Scale, p.RefCount) }) {
				return
			}
			if err != nil {
				t.Fatalf("%s, %s: %v", task, p.Name, err)
			}
			var outs []*tensor.Tensor
			row := 0
			for i, s := range p.Seqs {
				n := s.Context + s.Len
				k, v := p.gather(i, n)
				q := tensor.Transpose(tensor.Slice(p.Q, 0, row, row+s.Len), 1, 0, 2)
				var o *tensor.Tensor
				if grade.Run(t, task+" (W1D3)", func() {
					o = dense(tensor.ExpandDims(q, 0), tensor.ExpandDims(k, 0), tensor.ExpandDims(v, 0), p.Scale, w2d6.CausalBias(s.Len, n))
				}) {
					return
				}
				outs = append(outs, tensor.Transpose(tensor.Squeeze(o, 0), 1, 0, 2))
				row += s.Len
			}
			grade.AllClose(t, task+", "+p.Name, got, tensor.Concat(0, outs...), grade.Products, grade.ByHead(1))
		})
	}
}

// RandomMetadata checks Task 2 from the other side: on 300 calls with
// random metadata (valid calls, some changed at random: a context or a row
// count off by a few, a table entry that is padding, another negative value
// or past the pool, a table cut short, a page shared with another sequence
// with or without the reference count for it, a page freed), whatever
// CheckPaged accepts, PagedAttention must compute without a panic and match
// the dense reference, and whatever CheckPaged refuses, PagedAttention must
// refuse too.
func RandomMetadata(t *testing.T, check CheckFunc, paged PagedFunc) {
	const task = "W3D4 Task 2 CheckPaged"
	grade.PointToChapter(t, task)
	rng := rand.New(rand.NewPCG(24, 7))
	accepted := 0
	for trial := range 300 {
		p := randomProblem(rng, trial)
		what := fmt.Sprintf("%s, %s: %v with reference counts %v, %+v", task, p.Name, p.Seqs, p.Refs, p.Shape)
		var cerr, perr error
		var got *tensor.Tensor
		if grade.Run(t, what+" (CheckPaged)", func() { cerr = check(p.Shape, p.Seqs, p.RefCount) }) {
			return
		}
		if grade.Run(t, what+" (PagedAttention)", func() { got, perr = paged(p.Q, p.K, p.V, p.Shape, p.Seqs, 0, p.RefCount) }) {
			return
		}
		switch {
		case cerr != nil && perr == nil:
			t.Fatalf("%s: CheckPaged refuses (%v) but PagedAttention computes", what, cerr)
		case cerr == nil && perr != nil:
			t.Fatalf("%s: CheckPaged accepts but PagedAttention refuses: %v", what, perr)
		case cerr == nil:
			accepted++
			grade.AllClose(t, what, got, p.Want(), grade.Products, grade.ByHead(1))
		}
	}
	if accepted < 30 || accepted > 270 {
		t.Fatalf("%s: %d of 300 random calls were accepted; the check wants a mix of good and bad metadata", task, accepted)
	}
	t.Logf("%s: %d of 300 random calls accepted and computed, the rest refused", task, accepted)
}

// randomProblem is a valid call, changed at random half of the time.
func randomProblem(rng *rand.Rand, trial int) *Problem {
	shape := PageShape{NumPages: 8 + rng.IntN(12), PageSize: 1 + rng.IntN(5), KVHeads: 1 + rng.IntN(2), HeadDim: 1 + rng.IntN(8)}
	hq := shape.KVHeads * (1 + rng.IntN(3))
	p := &Problem{Name: fmt.Sprintf("random metadata %d", trial), Shape: shape, Hq: hq, Refs: make([]int, shape.NumPages)}
	p.K = tensor.RandN(rng, shape.floats()).Data()
	p.V = tensor.RandN(rng, shape.floats()).Data()
	free := rng.Perm(shape.NumPages)
	for range 1 + rng.IntN(3) {
		s := Seq{Context: rng.IntN(8), Len: 1 + rng.IntN(4)}
		need := (s.Context + s.Len + shape.PageSize - 1) / shape.PageSize
		for range min(need, len(free)) {
			s.BlockTable = append(s.BlockTable, free[0])
			p.Refs[free[0]] = 1
			free = free[1:]
		}
		for range rng.IntN(2) {
			s.BlockTable = append(s.BlockTable, Pad) // padding past the need
		}
		p.Seqs = append(p.Seqs, s)
	}
	if rng.IntN(2) == 0 {
		s := &p.Seqs[rng.IntN(len(p.Seqs))]
		switch rng.IntN(8) {
		case 0:
			s.Context -= 1 + rng.IntN(3)
		case 1:
			s.Len -= rng.IntN(2) + 1
		case 2, 3:
			if len(s.BlockTable) > 0 {
				j := rng.IntN(len(s.BlockTable))
				s.BlockTable[j] = []int{Pad, -2 - rng.IntN(4), shape.NumPages + rng.IntN(3), rng.IntN(shape.NumPages)}[rng.IntN(4)]
			}
		case 4:
			if len(s.BlockTable) > 0 {
				s.BlockTable = s.BlockTable[:len(s.BlockTable)-1]
			}
		case 5, 6:
			// Share another sequence's first page, counted by the pool
			// or not.
			o := p.Seqs[rng.IntN(len(p.Seqs))]
			if len(o.BlockTable) > 0 && len(s.BlockTable) > 0 && o.BlockTable[0] >= 0 {
				s.BlockTable[0] = o.BlockTable[0]
				if rng.IntN(2) == 0 {
					p.Refs[o.BlockTable[0]]++
				}
			}
		case 7:
			if len(s.BlockTable) > 0 && s.BlockTable[0] >= 0 {
				p.Refs[s.BlockTable[0]] = 0
			}
		}
	}
	// Free pages hold NaN: a call that reads one shows it in its output.
	w := shape.PageSize * shape.KVHeads * shape.HeadDim
	for page, n := range p.Refs {
		if n == 0 {
			for i := page * w; i < (page+1)*w; i++ {
				p.K[i], p.V[i] = float32(math.NaN()), float32(math.NaN())
			}
		}
	}
	rows := 0
	for _, s := range p.Seqs {
		rows += max(s.Len, 0)
	}
	p.Q = tensor.RandN(rng, rows, hq, shape.HeadDim)
	return p
}
