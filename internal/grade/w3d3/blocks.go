package w3d3

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/w3d2"
	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// state is what a refused call must leave as it was.
type state struct {
	free      int
	table     []int
	numCached int
}

func snapshot(m Manager, s *llm.Sequence) state {
	return state{m.NumFreePages(), slices.Clone(s.BlockTable), s.NumCached}
}

func (a state) same(b state) bool {
	return a.free == b.free && slices.Equal(a.table, b.table) && a.numCached == b.numCached
}

// refused fails the test unless err is an error and m and s are as before.
func refused(t *testing.T, what string, m Manager, s *llm.Sequence, before state, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s was accepted; it must return an error", what)
	}
	if after := snapshot(m, s); !after.same(before) {
		t.Errorf("%s: the refused call changed things: free pages %d → %d, block table %v → %v, NumCached %d → %d",
			what, before.free, after.free, before.table, after.table, before.numCached, after.numCached)
	}
}

// BlockTables checks Task 2: Allocate, Free, Fork (shared pages and their
// reference counts) and Rewind, and that every misuse is an error that
// changes nothing.
func BlockTables(t *testing.T, newManager NewManagerFunc) {
	shape := Shape{NumPages: 8, PageSize: 4, Layers: 1, KVHeads: 1, HeadDim: 2}
	withManager(t, "W3D3 Task 2 block tables", shape, newManager, func(what string, m Manager, pool Pool) {
		if m.PageSize() != shape.PageSize || m.NumPages() != shape.NumPages || m.NumFreePages() != shape.NumPages {
			t.Fatalf("%s: a new manager has PageSize %d, NumPages %d, NumFreePages %d; want %d, %d, %d",
				what, m.PageSize(), m.NumPages(), m.NumFreePages(), shape.PageSize, shape.NumPages, shape.NumPages)
		}
		a := llm.NewSequence(1, make([]int, 10), 4)
		mustNil(t, what+": Allocate(A, 5)", m.Allocate(a, 5))
		if len(a.BlockTable) != 2 || m.NumFreePages() != 6 {
			t.Fatalf("%s: Allocate(A, 5) gave block table %v with %d pages free; want 2 pages (5 positions of 4 a page), 6 free", what, a.BlockTable, m.NumFreePages())
		}
		mustNil(t, what+": Allocate(A, 3)", m.Allocate(a, 3))
		if len(a.BlockTable) != 2 {
			t.Errorf("%s: Allocate(A, 3) of a table that covers 8 positions changed it to %v; it must leave it", what, a.BlockTable)
		}
		mustNil(t, what+": Allocate(A, 10)", m.Allocate(a, 10))
		if len(a.BlockTable) != 3 || m.NumFreePages() != 5 {
			t.Errorf("%s: Allocate(A, 10) gave %v with %d free; want 3 pages, 5 free", what, a.BlockTable, m.NumFreePages())
		}
		b := llm.NewSequence(2, make([]int, 30), 4)
		before := snapshot(m, b)
		err := m.Allocate(b, 30) // 8 pages; 5 free
		refused(t, what+": Allocate(B, 30) with 5 of 8 pages free", m, b, before, err)
		if err != nil && !errors.Is(err, llm.ErrOutOfPages) {
			t.Errorf("%s: Allocate beyond the free pages returned %q, which does not wrap llm.ErrOutOfPages", what, err)
		}
		refused(t, what+": Allocate(B, -1)", m, b, before, m.Allocate(b, -1))

		// Fork: B shares A's first 8 positions (2 pages).
		a.NumCached = 10
		mustNil(t, what+": Fork(B, A, 8)", m.Fork(b, a, 8))
		if !slices.Equal(b.BlockTable, a.BlockTable[:2]) || b.NumCached != 8 {
			t.Errorf("%s: after Fork(B, A, 8) B has block table %v and NumCached %d; want A's first two pages %v and 8", what, b.BlockTable, b.NumCached, a.BlockTable[:2])
		}
		for _, page := range a.BlockTable[:2] {
			if rc, _ := pool.RefCount(page); rc != 2 {
				t.Errorf("%s: after Fork(B, A, 8) shared page %d has RefCount %d, want 2", what, page, rc)
			}
		}
		if m.NumFreePages() != 5 {
			t.Errorf("%s: Fork took pages from the free list (%d free, want 5); a fork shares pages", what, m.NumFreePages())
		}
		c := llm.NewSequence(3, make([]int, 10), 4)
		cBefore := snapshot(m, c)
		refused(t, what+": Fork(C, A, 6), not whole pages", m, c, cBefore, m.Fork(c, a, 6))
		refused(t, what+": Fork(C, A, 12), more than A's 10 cached positions", m, c, cBefore, m.Fork(c, a, 12))
		bBefore := snapshot(m, b)
		refused(t, what+": Fork(B, A, 4), B already holding pages", m, b, bBefore, m.Fork(b, a, 4))

		// Rewind: B drops 5 of its 8 positions: its second page goes back
		// to A alone; A drops 3 of 10: its third page goes back to the pool.
		mustNil(t, what+": Rewind(B, 5)", m.Rewind(b, 5))
		if b.NumCached != 3 || !slices.Equal(b.BlockTable, a.BlockTable[:1]) {
			t.Errorf("%s: after Rewind(B, 5) B has NumCached %d, block table %v; want 3 and %v", what, b.NumCached, b.BlockTable, a.BlockTable[:1])
		}
		if rc, _ := pool.RefCount(a.BlockTable[1]); rc != 1 {
			t.Errorf("%s: after Rewind(B, 5) the page B gave up (%d, still A's) has RefCount %d, want 1", what, a.BlockTable[1], rc)
		}
		third := a.BlockTable[2]
		mustNil(t, what+": Rewind(A, 3)", m.Rewind(a, 3))
		if a.NumCached != 7 || len(a.BlockTable) != 2 || m.NumFreePages() != 6 {
			t.Errorf("%s: after Rewind(A, 3) of 10 positions A has NumCached %d, %d pages, %d free; want 7, 2, 6", what, a.NumCached, len(a.BlockTable), m.NumFreePages())
		}
		if rc, _ := pool.RefCount(third); rc != 0 {
			t.Errorf("%s: the page A no longer needs after Rewind(A, 3) has RefCount %d, want 0", what, rc)
		}
		mustNil(t, what+": Rewind(A, 0)", m.Rewind(a, 0))
		aBefore := snapshot(m, a)
		refused(t, what+": Rewind(A, -1)", m, a, aBefore, m.Rewind(a, -1))
		refused(t, what+": Rewind(A, 8) of 7 cached positions", m, a, aBefore, m.Rewind(a, 8))

		// Free: A first; the page it shares with B stays in use.
		shared := a.BlockTable[0]
		mustNil(t, what+": Free(A)", m.Free(a))
		if len(a.BlockTable) != 0 || a.NumCached != 0 {
			t.Errorf("%s: after Free(A) A has block table %v and NumCached %d; want none and 0", what, a.BlockTable, a.NumCached)
		}
		if rc, _ := pool.RefCount(shared); rc != 1 || m.NumFreePages() != 7 {
			t.Errorf("%s: after Free(A) the page B shares has RefCount %d with %d pages free; want 1 and 7", what, rc, m.NumFreePages())
		}
		mustNil(t, what+": Free(A) a second time, with an empty table", m.Free(a))
		// A stale copy of B's table: freeing it twice is a double free.
		stale := llm.NewSequence(9, make([]int, 4), 4)
		stale.BlockTable = slices.Clone(b.BlockTable)
		mustNil(t, what+": Free(B)", m.Free(b))
		if m.NumFreePages() != shape.NumPages {
			t.Errorf("%s: every sequence freed, %d of %d pages free", what, m.NumFreePages(), shape.NumPages)
		}
		sBefore := snapshot(m, stale)
		refused(t, what+": Free of a block table whose page was freed already (a double free)", m, stale, sBefore, m.Free(stale))
		stale.BlockTable = []int{shape.NumPages + 3}
		sBefore = snapshot(m, stale)
		refused(t, what+": Free of a block table with a page id out of range", m, stale, sBefore, m.Free(stale))
		// A table that names one page held and one free: nothing of it
		// may be released.
		d := llm.NewSequence(4, make([]int, 4), 4)
		mustNil(t, what+": Allocate(D, 4)", m.Allocate(d, 4))
		mixed := llm.NewSequence(5, make([]int, 4), 4)
		mixed.BlockTable = []int{d.BlockTable[0], shared}
		mBefore := snapshot(m, mixed)
		refused(t, what+": Free of a table naming a held page and a free one", m, mixed, mBefore, m.Free(mixed))
		if rc, _ := pool.RefCount(d.BlockTable[0]); rc != 1 {
			t.Errorf("%s: the refused Free released D's page anyway (RefCount %d): check the whole table before releasing any of it", what, rc)
		}
		mustNil(t, what+": Free(D)", m.Free(d))
		if m.NumFreePages() != shape.NumPages {
			t.Errorf("%s: at the end %d of %d pages are free", what, m.NumFreePages(), shape.NumPages)
		}
	})
}

// KVThroughTables checks Task 3: keys and values written at a sequence's
// positions through its block table are read back, land in the pool where
// Locate says, and positions the table does not cover are refused.
func KVThroughTables(t *testing.T, newManager NewManagerFunc) {
	shape := Shape{NumPages: 10, PageSize: 3, Layers: 2, KVHeads: 2, HeadDim: 2}
	withManager(t, "W3D3 Task 3 keys and values through block tables", shape, newManager, func(what string, m Manager, pool Pool) {
		w := shape.KVHeads * shape.HeadDim
		val := func(id, layer, pos, j int) float32 { return float32(((id*shape.Layers+layer)*64+pos)*w + j + 1) }
		a := llm.NewSequence(1, make([]int, 9), 4)
		b := llm.NewSequence(2, make([]int, 7), 4)
		// Interleaved, so that neither sequence's pages are consecutive.
		mustNil(t, what+": Allocate(A, 5)", m.Allocate(a, 5))
		mustNil(t, what+": Allocate(B, 7)", m.Allocate(b, 7))
		mustNil(t, what+": Allocate(A, 9)", m.Allocate(a, 9))
		seqs := []*llm.Sequence{a, b}
		lens := []int{9, 7}
		for i, s := range seqs {
			for pos := range lens[i] {
				for layer := range shape.Layers {
					k, v := make([]float32, w), make([]float32, w)
					for j := range w {
						k[j], v[j] = val(s.ID, layer, pos, j), -val(s.ID, layer, pos, j)
					}
					mustNil(t, fmt.Sprintf("%s: Write(seq %d, layer %d, position %d)", what, s.ID, layer, pos), m.Write(s, layer, pos, k, v))
				}
			}
		}
		for i, s := range seqs {
			for pos := range lens[i] {
				page, slot, err := m.Locate(s, pos)
				mustNil(t, fmt.Sprintf("%s: Locate(seq %d, %d)", what, s.ID, pos), err)
				if page != s.BlockTable[pos/shape.PageSize] || slot != pos%shape.PageSize {
					t.Fatalf("%s: Locate(seq %d, position %d) = page %d slot %d; the block table %v says page %d slot %d",
						what, s.ID, pos, page, slot, s.BlockTable, s.BlockTable[pos/shape.PageSize], pos%shape.PageSize)
				}
				for layer := range shape.Layers {
					k, v, err := m.Read(s, layer, pos)
					mustNil(t, fmt.Sprintf("%s: Read(seq %d, layer %d, position %d)", what, s.ID, layer, pos), err)
					lk, lv, err := pool.Layer(layer)
					mustNil(t, what+": Layer", err)
					for j := range w {
						want := val(s.ID, layer, pos, j)
						at := (page*shape.PageSize+slot)*w + j
						if len(k) != w || len(v) != w || k[j] != want || v[j] != -want {
							t.Fatalf("%s: Read(seq %d, layer %d, position %d) = keys %v values %v; float %d was written as %v and %v",
								what, s.ID, layer, pos, k, v, j, want, -want)
						}
						if lk[at] != want || lv[at] != -want {
							t.Fatalf("%s: seq %d, layer %d, position %d is not in the pool at page %d slot %d (offset %d of Layer(%d)): found %v, wrote %v",
								what, s.ID, layer, pos, page, slot, at, layer, lk[at], want)
						}
					}
				}
			}
		}
		ok := make([]float32, w)
		beyond := len(b.BlockTable) * shape.PageSize
		for _, c := range []struct {
			name string
			err  error
		}{
			{fmt.Sprintf("Write(B, 0, %d), beyond its %d pages", beyond, len(b.BlockTable)), m.Write(b, 0, beyond, ok, ok)},
			{"Write(B, 0, -1)", m.Write(b, 0, -1, ok, ok)},
			{fmt.Sprintf("Write(B, %d, 0), layer out of range", shape.Layers), m.Write(b, shape.Layers, 0, ok, ok)},
			{"Write(B, 0, 0) with keys of the wrong length", m.Write(b, 0, 0, make([]float32, w+1), ok)},
			{fmt.Sprintf("Read(B, 0, %d), beyond its pages", beyond), readErr(m.Read(b, 0, beyond))},
			{"Read(B, -1, 0)", readErr(m.Read(b, -1, 0))},
		} {
			if c.err == nil {
				t.Errorf("%s: %s was accepted; it must return an error", what, c.name)
			}
		}
		if k, _, err := m.Read(b, 0, 0); err != nil || k[0] != val(b.ID, 0, 0, 0) {
			t.Errorf("%s: a refused Write changed position 0 of B (reads %v, %v)", what, k, err)
		}
		mustNil(t, what+": Free(A)", m.Free(a))
		mustNil(t, what+": Free(B)", m.Free(b))
	})
}

// withManager runs check on a new manager over a pool of shape s, as the
// task named task, turning a stub's panic into one line.
func withManager(t *testing.T, task string, s Shape, newManager NewManagerFunc, check func(what string, m Manager, pool Pool)) {
	t.Helper()
	grade.PointToChapter(t, task)
	what := fmt.Sprintf("%s (%s)", task, s)
	grade.Run(t, what, func() {
		m, pool, err := newManager(s)
		mustNil(t, what+": NewBlockManager", err)
		check(what, m, pool)
	})
}

func readErr(_, _ []float32, err error) error { return err }

// NoLeaks checks Task 4: the fault scenarios of Day 2 (finish, cancel,
// the model failing in prefill and in decode, preemption) run on the day's
// block manager under the learner's Day 2 engine, with the fake model
// writing every position's keys and values through the block tables and
// reading the earlier ones back; no page may stay in use.
func NoLeaks(t *testing.T, newEngine w3d2.NewEngineFunc, newManager NewManagerFunc) {
	newAlloc := func(t *testing.T, pageSize, numPages int) llm.BlockAllocator {
		t.Helper()
		m, _, err := newManager(Shape{NumPages: numPages, PageSize: pageSize, Layers: w3d2.KVLayers, KVHeads: 1, HeadDim: w3d2.KVWidth})
		if err != nil {
			t.Fatalf("W3D3 Task 4: NewPagePool of %d pages of %d: %v", numPages, pageSize, err)
		}
		return m
	}
	kv := func(alloc llm.BlockAllocator) w3d2.KVStore { return alloc.(Manager) }
	w3d2.Faults(t, "W3D3 Task 4 no leaks", newEngine, newAlloc, kv)
}

// RandomOperations checks Task 2 against a model of its own: thousands of
// random Allocate, Fork, Rewind and Free calls on a few sequences, each
// followed by the invariants that make leaks and double frees impossible:
// every page a table names has a reference count equal to the number of
// tables naming it, the free pages are exactly the pages no table names, an
// allocation succeeds exactly when the free pages suffice, and a call
// changes only the end of the table it works on.
func RandomOperations(t *testing.T, newManager NewManagerFunc) {
	shape := Shape{NumPages: 12, PageSize: 3, Layers: 1, KVHeads: 1, HeadDim: 1}
	withManager(t, "W3D3 Task 2 random operations", shape, newManager, func(what string, m Manager, pool Pool) {
		rng := rand.New(rand.NewPCG(3, 3203))
		ps := shape.PageSize
		seqs := make([]*llm.Sequence, 5)
		for i := range seqs {
			seqs[i] = llm.NewSequence(i, make([]int, 1), 1)
		}
		var log []string
		fail := func(format string, args ...any) {
			t.Helper()
			tail := log[max(0, len(log)-8):]
			t.Fatalf("%s: after %s\n%s\n(the last calls, oldest first:\n  %s)", what, log[len(log)-1],
				fmt.Sprintf(format, args...), strings.Join(tail, "\n  "))
		}
		for step := range 3000 {
			s := seqs[rng.IntN(len(seqs))]
			before := slices.Clone(s.BlockTable)
			free, cached := m.NumFreePages(), s.NumCached
			wantCached := cached
			var err error
			var keep int // how many pages of before must stay as they were
			var wantLen int
			switch op := rng.IntN(10); {
			case op < 4: // grow
				n := s.NumCached + rng.IntN(2*ps+1)
				need := llm.PagesFor(n, ps) - len(before)
				err = m.Allocate(s, n)
				log = append(log, fmt.Sprintf("step %d: Allocate(seq %d, %d) with table %v, %d free", step, s.ID, n, before, free))
				if (err == nil) != (need <= free) {
					fail("Allocate returned %v; %d more pages were needed and %d free", err, max(need, 0), free)
				}
				keep, wantLen = len(before), max(len(before), llm.PagesFor(n, ps))
				if err != nil {
					wantLen = len(before)
				} else {
					// The model runs what was allocated: those positions are cached.
					s.NumCached, wantCached = n, n
				}
			case op < 6: // rewind
				k := rng.IntN(s.NumCached + 1)
				err = m.Rewind(s, k)
				log = append(log, fmt.Sprintf("step %d: Rewind(seq %d, %d) of %d cached, table %v", step, s.ID, k, cached, before))
				wantCached = cached - k
				wantLen = min(len(before), llm.PagesFor(wantCached, ps))
				keep = wantLen
			case op < 8: // fork from another sequence into s
				src := seqs[rng.IntN(len(seqs))]
				if src == s || len(s.BlockTable) != 0 {
					err = m.Free(s)
					log = append(log, fmt.Sprintf("step %d: Free(seq %d) with table %v", step, s.ID, before))
					wantCached = 0
					break
				}
				n := (src.NumCached / ps) * ps
				n = rng.IntN(n/ps+1) * ps
				err = m.Fork(s, src, n)
				log = append(log, fmt.Sprintf("step %d: Fork(seq %d, seq %d, %d) with source table %v", step, s.ID, src.ID, n, src.BlockTable))
				wantLen, wantCached = n/ps, n
				if err == nil && !slices.Equal(s.BlockTable, src.BlockTable[:n/ps]) {
					fail("the fork's table is %v, want the source's first %d pages %v", s.BlockTable, n/ps, src.BlockTable[:n/ps])
				}
			default:
				err = m.Free(s)
				log = append(log, fmt.Sprintf("step %d: Free(seq %d) with table %v", step, s.ID, before))
				wantCached = 0
			}
			if err != nil && !errors.Is(err, llm.ErrOutOfPages) {
				fail("a valid call returned %v", err)
			}
			if s.NumCached != wantCached {
				fail("NumCached is %d, want %d", s.NumCached, wantCached)
			}
			if len(s.BlockTable) != wantLen {
				fail("the table is %v, %d pages; want %d", s.BlockTable, len(s.BlockTable), wantLen)
			}
			if !slices.Equal(s.BlockTable[:min(keep, len(s.BlockTable))], before[:min(keep, len(s.BlockTable))]) {
				fail("the table changed from %v to %v; only its end may change", before, s.BlockTable)
			}
			holders := map[int]int{}
			for _, q := range seqs {
				for _, page := range q.BlockTable {
					holders[page]++
				}
			}
			for page := range shape.NumPages {
				rc, err := pool.RefCount(page)
				if err != nil || rc != holders[page] {
					fail("page %d has RefCount %d (%v), but %d tables name it", page, rc, err, holders[page])
				}
			}
			if got, want := m.NumFreePages(), shape.NumPages-len(holders); got != want {
				fail("%d pages are free, but the tables name %d of %d", got, len(holders), shape.NumPages)
			}
		}
		for _, s := range seqs {
			mustNil(t, what+": the final Free", m.Free(s))
		}
		if m.NumFreePages() != shape.NumPages {
			t.Errorf("%s: every table freed, %d of %d pages are free", what, m.NumFreePages(), shape.NumPages)
		}
	})
}
