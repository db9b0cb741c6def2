// Package day3 is Week 3 Day 3 of the course: the paged KV cache. A page pool
// holds the keys and values of every layer in fixed-size pages with a free
// list and reference counts; a block manager maps each sequence's positions
// to pages through its block table. The guide's chapter "Week 3 Day 3"
// explains the tasks; grade your work with `make check-w3d3`.
package day3

import (
	"fmt"
	"sync"

	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// Sequence is one request as the engine's parts see it; it is declared once,
// in internal/llm.
type Sequence = llm.Sequence

// BlockAllocator is what the Day 2 scheduler asks of a block manager; it is
// declared once, in internal/llm.
type BlockAllocator = llm.BlockAllocator

// ErrOutOfPages is wrapped by every error that says the pool has too few
// free pages.
var ErrOutOfPages = llm.ErrOutOfPages

// PoolConfig is the shape of a page pool.
type PoolConfig struct {
	NumPages int // pages in the pool
	PageSize int // positions per page
	Layers   int // attention layers; every page holds its positions for all of them
	KVHeads  int // key/value heads
	HeadDim  int // dimension of one head
}

// PositionFloats is the number of float32 values of one position's keys (or
// values) in one layer: KVHeads x HeadDim.
func (c PoolConfig) PositionFloats() int { return c.KVHeads * c.HeadDim }

// BytesPerPage is the memory of one page: keys and values of PageSize
// positions in every layer, float32.
func (c PoolConfig) BytesPerPage() int64 {
	return 2 * int64(c.Layers) * int64(c.PageSize) * int64(c.PositionFloats()) * 4
}

// PagePool is the storage of the paged KV cache and its free list. Keys and
// values are each one float32 slice of Layers x NumPages x PageSize x
// KVHeads x HeadDim: a layer's pages are contiguous, so paged attention
// reads one layer through Layer without a copy, and a page's positions are
// contiguous within it.
//
// Every page has a reference count: 0 for a free page, the number of
// sequences whose block tables hold it otherwise (more than one when a
// prefix is shared, Day 6).
type PagePool struct {
	cfg PoolConfig
	// k and v are made on the first Slot or Layer call: a pool whose
	// pages live elsewhere (a GPU runner keeps them in device memory and
	// uses the pool only for its free list and counts) never holds them.
	once sync.Once
	k, v []float32
	refs []int
	free []int // the free pages; the next Alloc takes the last
}

// NewPagePool returns a pool of cfg.NumPages free pages, or an error if a
// size is not positive.
func NewPagePool(cfg PoolConfig) (*PagePool, error) {
	if cfg.NumPages <= 0 || cfg.PageSize <= 0 || cfg.Layers <= 0 || cfg.KVHeads <= 0 || cfg.HeadDim <= 0 {
		return nil, fmt.Errorf("page pool: every size must be positive, got %d pages of %d positions, %d layers, %d kv heads, head dim %d",
			cfg.NumPages, cfg.PageSize, cfg.Layers, cfg.KVHeads, cfg.HeadDim)
	}
	p := &PagePool{cfg: cfg, refs: make([]int, cfg.NumPages)}
	p.free = make([]int, cfg.NumPages)
	for i := range p.free {
		// Reversed, so that Alloc hands out page 0 first: block tables
		// in a test read in order.
		p.free[i] = cfg.NumPages - 1 - i
	}
	return p, nil
}

// Config is the pool's shape.
func (p *PagePool) Config() PoolConfig { return p.cfg }

// NumFree is the number of free pages.
func (p *PagePool) NumFree() int { return len(p.free) }

// Alloc takes a free page, with reference count 1. Its contents are
// whatever its last holder left: the caller writes a position before it
// reads it. With no free page it returns an error wrapping ErrOutOfPages.
func (p *PagePool) Alloc() (int, error) {
	if len(p.free) == 0 {
		return -1, fmt.Errorf("page pool: all %d pages in use: %w", p.cfg.NumPages, ErrOutOfPages)
	}
	page := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.refs[page] = 1
	return page, nil
}

// check returns an error unless page is a page of the pool that is in use.
func (p *PagePool) check(page int) error {
	if page < 0 || page >= p.cfg.NumPages {
		return fmt.Errorf("page pool: page %d out of range [0, %d)", page, p.cfg.NumPages)
	}
	if p.refs[page] == 0 {
		return fmt.Errorf("page pool: page %d is free (freed twice, or never allocated)", page)
	}
	return nil
}

// Retain adds a holder to a page in use. A free page, or an id out of
// range, is an error.
func (p *PagePool) Retain(page int) error {
	if err := p.check(page); err != nil {
		return err
	}
	p.refs[page]++
	return nil
}

// Release drops a holder of a page; the page returns to the free list when
// its last holder releases it. Releasing a free page is an error (a double
// free), as is a page id out of range.
func (p *PagePool) Release(page int) error {
	if err := p.check(page); err != nil {
		return err
	}
	p.refs[page]--
	if p.refs[page] == 0 {
		p.free = append(p.free, page)
	}
	return nil
}

// RefCount is the number of holders of a page, 0 for a free one. An id
// out of range is an error.
func (p *PagePool) RefCount(page int) (int, error) {
	if page < 0 || page >= p.cfg.NumPages {
		return 0, fmt.Errorf("page pool: page %d out of range [0, %d)", page, p.cfg.NumPages)
	}
	return p.refs[page], nil
}

// Slot returns the keys and values of one position of one layer, slot
// slot of page page: two slices of KVHeads x HeadDim that share the pool's
// memory, so writing into them stores the position.
func (p *PagePool) Slot(layer, page, slot int) (k, v []float32, err error) {
	c := p.cfg
	switch {
	case layer < 0 || layer >= c.Layers:
		return nil, nil, fmt.Errorf("page pool: layer %d out of range [0, %d)", layer, c.Layers)
	case page < 0 || page >= c.NumPages:
		return nil, nil, fmt.Errorf("page pool: page %d out of range [0, %d)", page, c.NumPages)
	case slot < 0 || slot >= c.PageSize:
		return nil, nil, fmt.Errorf("page pool: slot %d out of range [0, %d)", slot, c.PageSize)
	}
	p.storage()
	w := c.PositionFloats()
	at := ((layer*c.NumPages+page)*c.PageSize + slot) * w
	return p.k[at : at+w : at+w], p.v[at : at+w : at+w], nil
}

// Layer returns the keys and values of every page of one layer, each
// NumPages x PageSize x KVHeads x HeadDim, sharing the pool's memory: what
// paged attention reads through a block table.
func (p *PagePool) Layer(layer int) (k, v []float32, err error) {
	if layer < 0 || layer >= p.cfg.Layers {
		return nil, nil, fmt.Errorf("page pool: layer %d out of range [0, %d)", layer, p.cfg.Layers)
	}
	p.storage()
	n := p.cfg.NumPages * p.cfg.PageSize * p.cfg.PositionFloats()
	return p.k[layer*n : (layer+1)*n : (layer+1)*n], p.v[layer*n : (layer+1)*n : (layer+1)*n], nil
}

// storage makes the keys and values of every page, once.
func (p *PagePool) storage() {
	p.once.Do(func() {
		n := p.cfg.Layers * p.cfg.NumPages * p.cfg.PageSize * p.cfg.PositionFloats()
		p.k, p.v = make([]float32, n), make([]float32, n)
	})
}
