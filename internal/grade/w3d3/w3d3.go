// Package w3d3 holds the checks of Week 3 Day 3 (the paged KV cache: the
// page pool and the block manager), shared by week3/day3 and
// solutions/week3/day3.
package w3d3

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/w3d2"
	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// Pool is the day's PagePool as the checks use it.
type Pool interface {
	NumFree() int
	Alloc() (int, error)
	Retain(page int) error
	Release(page int) error
	RefCount(page int) (int, error)
	Slot(layer, page, slot int) (k, v []float32, err error)
	Layer(layer int) (k, v []float32, err error)
}

// Manager is the day's BlockManager as the checks use it.
type Manager interface {
	llm.BlockAllocator
	w3d2.KVStore
	Rewind(seq *llm.Sequence, n int) error
	Fork(dst, src *llm.Sequence, n int) error
	Locate(seq *llm.Sequence, pos int) (page, slot int, err error)
}

// Shape is a pool's configuration, as the day's PoolConfig holds it.
type Shape struct {
	NumPages, PageSize, Layers, KVHeads, HeadDim int
}

func (s Shape) String() string {
	return fmt.Sprintf("%d pages of %d positions, %d layers, %d kv heads of dimension %d", s.NumPages, s.PageSize, s.Layers, s.KVHeads, s.HeadDim)
}

// NewPoolFunc is the day's NewPagePool; BytesPerPageFunc its
// PoolConfig.BytesPerPage.
type (
	NewPoolFunc      func(s Shape) (Pool, error)
	BytesPerPageFunc func(s Shape) int64
	// NewManagerFunc returns a block manager over a new pool of shape s,
	// and the pool.
	NewManagerFunc func(s Shape) (Manager, Pool, error)
)

// mustNil fails the test with what and err when err is not nil.
func mustNil(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// PagePool checks Task 1: the pool's free list, reference counts, errors
// and storage layout.
func PagePool(t *testing.T, newPool NewPoolFunc, bytesPerPage BytesPerPageFunc) {
	const task = "W3D3 Task 1 page pool"
	grade.PointToChapter(t, task)
	shape := Shape{NumPages: 5, PageSize: 4, Layers: 3, KVHeads: 2, HeadDim: 3}
	stubbed := false
	t.Run("bytes_per_page", func(t *testing.T) {
		stubbed = grade.Run(t, task+": BytesPerPage", func() {
			// Keys and values, float32, every layer: for Qwen2-0.5B
			// (24 layers, 2 kv heads of 64) a page of 16 is 384 KiB.
			qwen := Shape{NumPages: 1, PageSize: 16, Layers: 24, KVHeads: 2, HeadDim: 64}
			for _, s := range []Shape{qwen, shape} {
				want := int64(2 * s.Layers * s.PageSize * s.KVHeads * s.HeadDim * 4)
				if got := bytesPerPage(s); got != want {
					t.Errorf("%s: BytesPerPage of %s is %d, want %d (keys and values, float32, every layer)", task, s, got, want)
				}
			}
		})
	})
	if stubbed {
		return
	}
	t.Run("refuses_bad_shapes", func(t *testing.T) {
		grade.Run(t, task+": NewPagePool", func() {
			for i := range 5 {
				bad := shape
				f := []*int{&bad.NumPages, &bad.PageSize, &bad.Layers, &bad.KVHeads, &bad.HeadDim}[i]
				for _, v := range []int{0, -1} {
					*f = v
					if _, err := newPool(bad); err == nil {
						t.Errorf("%s: NewPagePool(%s) was accepted; every size must be positive", task, bad)
					}
				}
			}
		})
	})
	t.Run("free_list_and_refcounts", func(t *testing.T) {
		what := fmt.Sprintf("%s (%s)", task, shape)
		grade.Run(t, what, func() {
			p, err := newPool(shape)
			mustNil(t, what+": NewPagePool", err)
			if p.NumFree() != shape.NumPages {
				t.Fatalf("%s: a new pool has %d free pages, want %d", what, p.NumFree(), shape.NumPages)
			}
			var pages []int
			for i := range shape.NumPages {
				page, err := p.Alloc()
				mustNil(t, fmt.Sprintf("%s: Alloc number %d", what, i+1), err)
				if page < 0 || page >= shape.NumPages || slices.Contains(pages, page) {
					t.Fatalf("%s: Alloc number %d gave page %d after %v; want a new page in [0, %d)", what, i+1, page, pages, shape.NumPages)
				}
				if rc, err := p.RefCount(page); err != nil || rc != 1 {
					t.Errorf("%s: a page just allocated has RefCount %d (%v), want 1", what, rc, err)
				}
				pages = append(pages, page)
			}
			if p.NumFree() != 0 {
				t.Errorf("%s: every page allocated, NumFree is %d", what, p.NumFree())
			}
			if _, err := p.Alloc(); !errors.Is(err, llm.ErrOutOfPages) {
				t.Errorf("%s: Alloc with no free page returned %v, want an error wrapping llm.ErrOutOfPages", what, err)
			}
			shared := pages[1]
			mustNil(t, what+": Retain", p.Retain(shared))
			if rc, _ := p.RefCount(shared); rc != 2 {
				t.Errorf("%s: after Retain the page's RefCount is %d, want 2", what, rc)
			}
			mustNil(t, what+": Release of a page with 2 holders", p.Release(shared))
			if p.NumFree() != 0 {
				t.Errorf("%s: a page with a holder left went back to the free list (NumFree %d)", what, p.NumFree())
			}
			mustNil(t, what+": Release of its last holder", p.Release(shared))
			if rc, _ := p.RefCount(shared); rc != 0 || p.NumFree() != 1 {
				t.Errorf("%s: after its last Release the page has RefCount %d and NumFree is %d, want 0 and 1", what, rc, p.NumFree())
			}
			if err := p.Release(shared); err == nil {
				t.Errorf("%s: releasing a free page again (a double free) was accepted", what)
			}
			if err := p.Retain(shared); err == nil {
				t.Errorf("%s: Retain of a free page was accepted; only a page in use can gain a holder", what)
			}
			for _, bad := range []int{-1, shape.NumPages} {
				if err := p.Release(bad); err == nil {
					t.Errorf("%s: Release(%d), out of range, was accepted", what, bad)
				}
				if err := p.Retain(bad); err == nil {
					t.Errorf("%s: Retain(%d), out of range, was accepted", what, bad)
				}
				if _, err := p.RefCount(bad); err == nil {
					t.Errorf("%s: RefCount(%d), out of range, was accepted", what, bad)
				}
			}
			if p.NumFree() != 1 {
				t.Errorf("%s: refused calls changed the free list: NumFree %d, want 1", what, p.NumFree())
			}
			again, err := p.Alloc()
			mustNil(t, what+": Alloc after a Release", err)
			if again != shared {
				t.Errorf("%s: the only free page is %d, Alloc gave %d", what, shared, again)
			}
			for _, page := range pages {
				mustNil(t, what+": Release", p.Release(page))
			}
			if p.NumFree() != shape.NumPages {
				t.Errorf("%s: every page released, NumFree is %d, want %d", what, p.NumFree(), shape.NumPages)
			}
		})
	})
	t.Run("layout", func(t *testing.T) {
		what := fmt.Sprintf("%s, storage (%s)", task, shape)
		grade.Run(t, what, func() { layout(t, what, newPool, shape) })
	})
}

// layout writes a distinct value into every float of every slot through
// Slot and reads them all back through Layer, at the offsets of the layout
// paged attention reads: a layer's NumPages x PageSize x KVHeads x HeadDim.
func layout(t *testing.T, what string, newPool NewPoolFunc, s Shape) {
	t.Helper()
	p, err := newPool(s)
	mustNil(t, what+": NewPagePool", err)
	w := s.KVHeads * s.HeadDim
	val := func(layer, page, slot, j int) float32 {
		return float32(((layer*s.NumPages+page)*s.PageSize+slot)*w + j + 1)
	}
	for layer := range s.Layers {
		for page := range s.NumPages {
			for slot := range s.PageSize {
				k, v, err := p.Slot(layer, page, slot)
				mustNil(t, fmt.Sprintf("%s: Slot(%d, %d, %d)", what, layer, page, slot), err)
				if len(k) != w || len(v) != w {
					t.Fatalf("%s: Slot(%d, %d, %d) gave %d keys and %d values, want kv heads x head dim = %d", what, layer, page, slot, len(k), len(v), w)
				}
				for j := range w {
					k[j], v[j] = val(layer, page, slot, j), -val(layer, page, slot, j)
				}
			}
		}
	}
	for layer := range s.Layers {
		k, v, err := p.Layer(layer)
		mustNil(t, fmt.Sprintf("%s: Layer(%d)", what, layer), err)
		if len(k) != s.NumPages*s.PageSize*w || len(v) != len(k) {
			t.Fatalf("%s: Layer(%d) has %d keys and %d values, want pages x page size x kv heads x head dim = %d", what, layer, len(k), len(v), s.NumPages*s.PageSize*w)
		}
		for page := range s.NumPages {
			for slot := range s.PageSize {
				for j := range w {
					at := (page*s.PageSize+slot)*w + j
					if k[at] != val(layer, page, slot, j) || v[at] != -val(layer, page, slot, j) {
						t.Fatalf("%s: Layer(%d) at [page %d, slot %d, float %d] (offset %d) holds key %v value %v, not what Slot(%d, %d, %d) wrote (%v): the layout must be pages x page size x kv heads x head dim per layer, with no two slots sharing memory",
							what, layer, page, slot, j, at, k[at], v[at], layer, page, slot, val(layer, page, slot, j))
					}
				}
			}
		}
	}
	for _, bad := range [][3]int{{-1, 0, 0}, {s.Layers, 0, 0}, {0, -1, 0}, {0, s.NumPages, 0}, {0, 0, -1}, {0, 0, s.PageSize}} {
		if _, _, err := p.Slot(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("%s: Slot(%d, %d, %d), out of range, was accepted", what, bad[0], bad[1], bad[2])
		}
	}
	if _, _, err := p.Layer(s.Layers); err == nil {
		t.Errorf("%s: Layer(%d), out of range, was accepted", what, s.Layers)
	}
}
