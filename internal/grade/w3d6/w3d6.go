// Package w3d6 holds the checks of Week 3 Day 6 (prefix caching: chained
// page hashes, a block manager that shares cached pages and evicts them LRU),
// shared by week3/day6 and solutions/week3/day6.
package w3d6

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/w3d3"
	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// Manager is the day's PrefixBlockManager as the checks use it.
type Manager interface {
	llm.PrefixCache
	Write(seq *llm.Sequence, layer, pos int, k, v []float32) error
	Read(seq *llm.Sequence, layer, pos int) (k, v []float32, err error)
	Rewind(seq *llm.Sequence, n int) error
	Holders(page int) (int, error)
	PageHashOf(page int) (uint64, bool)
	NumCachedPages() int
	NumEvictable() int
	Stats() llm.PrefixStats
}

// Pool is the part of Day 3's page pool the checks read: a layer's keys and
// values, to see that a cached page is never written.
type Pool interface {
	Layer(layer int) (k, v []float32, err error)
}

// NewManagerFunc returns a prefix-caching block manager over a new pool of
// shape s, and the pool.
type NewManagerFunc func(s w3d3.Shape) (Manager, Pool, error)

// PageHashFunc is the day's PageHash.
type PageHashFunc func(prev uint64, tokens []int) uint64

// fnvHash is the hash the chapter specifies, computed here from hash/fnv
// directly: FNV-1a 64 of prev and then every token, each as 8 little-endian
// bytes.
func fnvHash(prev uint64, tokens []int) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], prev)
	h.Write(b[:])
	for _, t := range tokens {
		binary.LittleEndian.PutUint64(b[:], uint64(int64(t)))
		h.Write(b[:])
	}
	return h.Sum64()
}

// PageHash checks Task 1: the day's PageHash is FNV-1a over prev and the
// tokens as the chapter specifies, and a chain of hashes tells prefixes
// apart that end in the same page.
func PageHash(t *testing.T, pageHash PageHashFunc) {
	const task = "W3D6 Task 1 page hash"
	grade.PointToChapter(t, task)
	grade.Run(t, task, func() {
		rng := rand.New(rand.NewPCG(6, 1))
		for _, n := range []int{1, 4, 16} {
			toks := make([]int, n)
			for i := range toks {
				toks[i] = rng.IntN(152000)
			}
			for _, prev := range []uint64{0, 1, rng.Uint64()} {
				if got, want := pageHash(prev, toks), fnvHash(prev, toks); got != want {
					t.Errorf("%s: PageHash(%#x, %v) = %#x, want %#x (FNV-1a 64 of prev then each token, 8 little-endian bytes each)", task, prev, toks, got, want)
				}
			}
		}
		// The same page after two different first pages: a chain tells
		// them apart, a hash of the page alone would not.
		a, b, page := []int{1, 2, 3, 4}, []int{1, 2, 3, 5}, []int{9, 9, 9, 9}
		ha, hb := pageHash(pageHash(0, a), page), pageHash(pageHash(0, b), page)
		if ha == hb {
			t.Errorf("%s: page %v after %v and after %v hash alike (%#x): the hash must chain over the previous page's", task, page, a, b, ha)
		}
		if pageHash(0, []int{1, 2}) == pageHash(0, []int{2, 1}) {
			t.Errorf("%s: pages [1 2] and [2 1] hash alike: the order of tokens must count", task)
		}
	})
}

// shape is the pool of the block-level checks: 8 pages of 4 positions.
var shape = w3d3.Shape{NumPages: 8, PageSize: 4, Layers: 2, KVHeads: 1, HeadDim: 2}

// blockEnv runs block-level scenarios against one manager.
type blockEnv struct {
	t    *testing.T
	task string
	m    Manager
	pool Pool
	next int
	// cached is how many positions each sequence started with in cached
	// pages, by ID.
	cached map[int]int
}

func (e *blockEnv) must(what string, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %s: %v", e.task, what, err)
	}
}

// start allocates a new sequence of tokens the way the scheduler does
// (CachedPrefix, then Allocate of the whole sequence), checks that Allocate
// agreed with CachedPrefix, and marks its positions computed.
func (e *blockEnv) start(tokens []int) *llm.Sequence {
	e.t.Helper()
	seq := llm.NewSequence(e.next, tokens, 8)
	e.next++
	cached := e.m.CachedPrefix(tokens)
	e.must(fmt.Sprintf("Allocate(sequence %d, %d positions)", seq.ID, len(tokens)), e.m.Allocate(seq, len(tokens)))
	e.cached[seq.ID] = cached
	if seq.NumCached != cached {
		e.t.Fatalf("%s: sequence %d: CachedPrefix said %d positions are cached, Allocate set NumCached to %d", e.task, seq.ID, cached, seq.NumCached)
	}
	if want := llm.PagesFor(len(tokens), shape.PageSize); len(seq.BlockTable) != want {
		e.t.Fatalf("%s: sequence %d of %d tokens has %d pages, want %d", e.task, seq.ID, len(tokens), len(seq.BlockTable), want)
	}
	e.compute(seq, len(tokens))
	return seq
}

// compute writes keys and values for seq's positions NumCached … n-1, as
// the model would, values that name the sequence, layer and position, and
// marks them computed.
func (e *blockEnv) compute(seq *llm.Sequence, n int) {
	e.t.Helper()
	w := shape.KVHeads * shape.HeadDim
	for pos := seq.NumCached; pos < n; pos++ {
		for l := range shape.Layers {
			k, v := make([]float32, w), make([]float32, w)
			for i := range w {
				k[i] = float32(seq.ID*10000 + pos*10 + l)
				v[i] = -k[i]
			}
			e.must(fmt.Sprintf("Write(sequence %d, layer %d, position %d)", seq.ID, l, pos), e.m.Write(seq, l, pos, k, v))
		}
	}
	seq.NumCached = n
}

// grow appends tokens to a running sequence, computed, as decode steps do.
func (e *blockEnv) grow(seq *llm.Sequence, tokens ...int) {
	e.t.Helper()
	seq.Tokens = append(seq.Tokens, tokens...)
	e.must("Allocate", e.m.Allocate(seq, seq.Len()))
	e.compute(seq, seq.Len())
}

func (e *blockEnv) free(seqs ...*llm.Sequence) {
	e.t.Helper()
	for _, s := range seqs {
		e.must(fmt.Sprintf("Free(sequence %d)", s.ID), e.m.Free(s))
	}
}

// allFree checks that no sequence holds a page: every page free or cached.
func (e *blockEnv) allFree() {
	e.t.Helper()
	if free := e.m.NumFreePages(); free != shape.NumPages {
		e.t.Errorf("%s: %d of %d pages free after every sequence was freed (cached pages count as free)", e.task, free, shape.NumPages)
	}
	for p := range shape.NumPages {
		if n, err := e.m.Holders(p); err != nil || n != 0 {
			e.t.Errorf("%s: page %d has %d holders (%v) after every sequence was freed, want 0", e.task, p, n, err)
		}
	}
}

func toks(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

func cat(parts ...[]int) []int { return slices.Concat(parts...) }

// Blocks checks Task 2, the prefix-caching block manager, scenario by
// scenario on a pool of 8 pages of 4 positions.
func Blocks(t *testing.T, newManager NewManagerFunc) {
	const task = "W3D6 Task 2 prefix cache"
	grade.PointToChapter(t, task)
	ps := shape.PageSize
	scenario := func(name string, run func(e *blockEnv)) bool {
		stub := false
		t.Run(name, func(t *testing.T) {
			what := task + ", " + name
			stub = grade.Run(t, what, func() {
				m, pool, err := newManager(shape)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				run(&blockEnv{t: t, task: what, m: m, pool: pool, cached: map[int]int{}})
			})
		})
		return stub
	}
	if scenario("hit on a shared prefix, miss after it diverges", func(e *blockEnv) {
		sys := toks(100, 2*ps) // two full pages
		a := e.start(cat(sys, toks(200, 3)))
		e.free(a)
		if got := e.m.NumCachedPages(); got != 2 {
			e.t.Errorf("%s: %d pages cached after a sequence of 2 full pages and a partial one finished, want 2 (only full pages)", e.task, got)
		}
		b := e.start(cat(sys, toks(300, ps+2)))
		if e.cached[b.ID] != 2*ps {
			e.t.Errorf("%s: a sequence sharing the first %d tokens started with %d cached positions, want %d", e.task, 2*ps, e.cached[b.ID], 2*ps)
		}
		// c shares the first page only: the second page differs in its
		// last token, and so does every page after it.
		c := e.start(cat(sys[:2*ps-1], toks(400, ps+1)))
		if e.cached[c.ID] != ps {
			e.t.Errorf("%s: a sequence whose second page differs in one token started with %d cached positions, want %d", e.task, e.cached[c.ID], ps)
		}
		if c.BlockTable[0] != b.BlockTable[0] {
			e.t.Errorf("%s: two sequences with the same first page hold pages %d and %d, want one shared page", e.task, b.BlockTable[0], c.BlockTable[0])
		}
		if n, _ := e.m.Holders(b.BlockTable[0]); n != 2 {
			e.t.Errorf("%s: the first page, held by two sequences, has %d holders", e.task, n)
		}
		e.free(c)
		// The same tokens after a different first page are not the same
		// prefix: a chain hash must miss.
		d := e.start(cat(toks(500, ps), sys[ps:], toks(600, 1)))
		if e.cached[d.ID] != 0 {
			e.t.Errorf("%s: a sequence whose first page differs started with %d cached positions, want 0", e.task, e.cached[d.ID])
		}
		st := e.m.Stats()
		if st.Lookups != a.Len()+b.Len()+c.Len()+d.Len() || st.Hits != 3*ps {
			e.t.Errorf("%s: Stats = %+v, want %d lookups (the tokens of the 4 sequences) and %d hits", e.task, st, a.Len()+b.Len()+c.Len()+d.Len(), 3*ps)
		}
		e.free(b, d)
		e.allFree()
	}) {
		return
	}
	scenario("a running sequence's full pages are shared; the last token is always computed", func(e *blockEnv) {
		sys := toks(100, 2*ps)
		a := e.start(cat(sys, toks(200, 1)))
		e.grow(a, 7, 8, 9) // its third page fills with generated tokens
		e.grow(a)          // the next step's Allocate registers it
		// b asks for exactly a's tokens, three full pages: two may come
		// from the cache, the third must be computed for its logits.
		b := e.start(slices.Clone(a.Tokens))
		if e.cached[b.ID] != 2*ps {
			e.t.Errorf("%s: a sequence of %d tokens, all in cached pages, started with %d cached positions, want %d (its last token is computed, and its page with it)",
				e.task, b.Len(), e.cached[b.ID], 2*ps)
		}
		// c extends a: a's third page, full of generated tokens, is shared.
		c := e.start(cat(a.Tokens, toks(700, 1)))
		if e.cached[c.ID] != 3*ps || !slices.Equal(c.BlockTable[:3], a.BlockTable) {
			e.t.Errorf("%s: a sequence extending a running one by a token started with %d cached positions on pages %v, want %d on %v",
				e.task, e.cached[c.ID], c.BlockTable, 3*ps, a.BlockTable)
		}
		e.free(a, b, c)
		e.allFree()
	})
	scenario("LRU eviction, oldest first, only when the free list is empty", func(e *blockEnv) {
		// Three sequences of two full pages each and one token: 9 pages
		// would not fit, so they run one after another.
		x := e.start(cat(toks(100, 2*ps), toks(900, 1)))
		e.free(x)
		y := e.start(cat(toks(200, 2*ps), toks(900, 1)))
		e.free(y)
		if got := e.m.NumEvictable(); got != 4 {
			e.t.Fatalf("%s: %d cached pages no sequence holds, want 4 (two full pages of each finished sequence)", e.task, got)
		}
		if e.m.Stats().Evictions != 0 {
			e.t.Errorf("%s: a cached page was evicted while the free list had pages", e.task)
		}
		// 5 pages: the 4 free ones, then the oldest cached page: x's last
		// page (Free releases a table last page first, so that a prefix's
		// tail is evicted before its head).
		xs, ys := cat(toks(100, 2*ps), toks(900, 1)), cat(toks(200, 2*ps), toks(900, 1))
		z := e.start(toks(300, 5*ps))
		if got := e.m.Stats().Evictions; got != 1 {
			e.t.Errorf("%s: %d evictions to allocate 5 pages with 4 on the free list, want 1", e.task, got)
		}
		if got := e.m.CachedPrefix(xs); got != ps {
			e.t.Errorf("%s: after one eviction the oldest cached prefix has %d positions cached, want %d: evict the oldest page first, and a prefix's last page before its first", e.task, got, ps)
		}
		if got := e.m.CachedPrefix(ys); got != 2*ps {
			e.t.Errorf("%s: the newer cached prefix has %d positions cached, want %d: evict the oldest first", e.task, got, 2*ps)
		}
		e.grow(z, toks(400, ps)...) // one more page: x's first page goes
		if got := e.m.CachedPrefix(xs); got != 0 || e.m.Stats().Evictions != 2 {
			e.t.Errorf("%s: after a second eviction the oldest prefix has %d positions cached (want 0), %d evictions (want 2)", e.task, got, e.m.Stats().Evictions)
		}
		if got := e.m.CachedPrefix(ys); got != 2*ps {
			e.t.Errorf("%s: the newer cached prefix has %d positions cached after two evictions, want %d", e.task, got, 2*ps)
		}
		e.free(z)
		e.allFree()
		// Out of pages: an allocation that does not fit changes nothing.
		big := llm.NewSequence(99, toks(1000, 9*ps), 1)
		before := e.m.NumFreePages()
		if err := e.m.Allocate(big, big.Len()); !errors.Is(err, llm.ErrOutOfPages) {
			e.t.Errorf("%s: allocating 9 pages of 8 returned %v, want an error wrapping ErrOutOfPages", e.task, err)
		}
		if len(big.BlockTable) != 0 || e.m.NumFreePages() != before {
			e.t.Errorf("%s: a refused Allocate left %d pages in the table and %d free (before: %d)", e.task, len(big.BlockTable), e.m.NumFreePages(), before)
		}
	})
	scenario("shared and cached pages are never written", func(e *blockEnv) {
		sys := toks(100, 2*ps)
		a := e.start(cat(sys, toks(200, 1)))
		e.grow(a) // registers a's full pages
		b := e.start(cat(sys, toks(300, 2)))
		kv := make([]float32, shape.KVHeads*shape.HeadDim)
		for _, s := range []*llm.Sequence{a, b} {
			for _, pos := range []int{0, ps, 2*ps - 1} {
				if err := e.m.Write(s, 0, pos, kv, kv); err == nil {
					e.t.Errorf("%s: Write to position %d of sequence %d (page %d, shared or cached) was accepted; shared pages are immutable", e.task, pos, s.ID, s.BlockTable[pos/ps])
				}
			}
		}
		if err := e.m.Write(b, 0, 2*ps, kv, kv); err != nil {
			e.t.Errorf("%s: Write to b's own partial page refused: %v", e.task, err)
		}
		e.free(a)
		if err := e.m.Write(b, 1, ps, kv, kv); err == nil {
			e.t.Errorf("%s: Write to a cached page held by one sequence was accepted; a registered page is immutable", e.task)
		}
		e.free(b)
		e.allFree()
	})
	scenario("Rewind takes a page out of the cache before it is written again", func(e *blockEnv) {
		a := e.start(toks(100, 2*ps+1))
		e.grow(a) // pages 0 and 1 registered
		h, ok := e.m.PageHashOf(a.BlockTable[1])
		if !ok {
			e.t.Fatalf("%s: a's second full page is not registered after its table grew", e.task)
		}
		e.must("Rewind(a, 3)", e.m.Rewind(a, 3)) // keeps ps+2 positions: page 1 half kept
		if got, ok2 := e.m.PageHashOf(a.BlockTable[1]); ok2 && got == h {
			e.t.Errorf("%s: after Rewind into page %d it is still registered under the hash of the tokens it will no longer hold", e.task, a.BlockTable[1])
		}
		if got := e.m.CachedPrefix(toks(100, 2*ps+1)); got != ps {
			e.t.Errorf("%s: after the rewind, the cache finds %d positions of a's old tokens, want %d (the first page only)", e.task, got, ps)
		}
		e.free(a)
		// A shared page rewound into: the rewinding sequence gets a
		// copy, the other keeps the registered page, unchanged.
		b := e.start(toks(100, 2*ps+1))
		e.grow(b)
		c := e.start(cat(toks(100, 2*ps), toks(800, 1)))
		if e.cached[c.ID] != 2*ps {
			e.t.Fatalf("%s: c starts with %d cached positions, want %d", e.task, e.cached[c.ID], 2*ps)
		}
		shared := c.BlockTable[1]
		k0, _, err := e.m.Read(c, 0, ps)
		e.must("Read", err)
		before := slices.Clone(k0)
		e.must("Rewind(b, 3)", e.m.Rewind(b, 3))
		if b.BlockTable[1] == shared {
			e.t.Errorf("%s: after rewinding into page %d, which c shares, b still holds it: b would overwrite c's keys", e.task, shared)
		}
		if _, ok := e.m.PageHashOf(shared); !ok {
			e.t.Errorf("%s: the shared page %d lost its registration when b rewound away from it", e.task, shared)
		}
		kb, _, err := e.m.Read(b, 0, ps)
		e.must("Read", err)
		if !slices.Equal(kb, before) {
			e.t.Errorf("%s: b's copy of the page holds keys %v at position %d, the page held %v", e.task, kb, ps, before)
		}
		if kc, _, err := e.m.Read(c, 0, ps); err != nil || !slices.Equal(kc, before) {
			e.t.Errorf("%s: c's keys at position %d changed from %v to %v (%v) when b rewound", e.task, ps, before, kc, err)
		}
		if n, _ := e.m.Holders(shared); n != 1 {
			e.t.Errorf("%s: page %d has %d holders after b rewound away from it, want 1 (c)", e.task, shared, n)
		}
		e.free(b, c)
		e.allFree()
	})
}
