// Package day3 is Week 3 Day 3 of the course: the paged KV cache. A page pool
// holds the keys and values of every layer in fixed-size pages with a free
// list and reference counts; a block manager maps each sequence's positions
// to pages through its block table. The guide's chapter "Week 3 Day 3"
// explains the tasks; grade your work with `make check-w3d3`.
package day3

import (
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
	// Your code here (W3D3).
	panic("TODO(W3D3): implement PoolConfig.BytesPerPage")
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
	cfg  PoolConfig
	k, v []float32
	refs []int
	free []int // the free pages; the next Alloc takes the last
}

// NewPagePool returns a pool of cfg.NumPages free pages, or an error if a
// size is not positive.
func NewPagePool(cfg PoolConfig) (*PagePool, error) {
	// Your code here (W3D3).
	// Make k, v and refs, and put every page on the free list.
	panic("TODO(W3D3): implement NewPagePool")
}

// Config is the pool's shape.
func (p *PagePool) Config() PoolConfig { return p.cfg }

// NumFree is the number of free pages.
func (p *PagePool) NumFree() int {
	// Your code here (W3D3).
	panic("TODO(W3D3): implement PagePool.NumFree")
}

// Alloc takes a free page, with reference count 1. Its contents are
// whatever its last holder left: the caller writes a position before it
// reads it. With no free page it returns an error wrapping ErrOutOfPages.
func (p *PagePool) Alloc() (int, error) {
	// Your code here (W3D3).
	panic("TODO(W3D3): implement PagePool.Alloc")
}

// Retain adds a holder to a page in use. A free page, or an id out of
// range, is an error.
func (p *PagePool) Retain(page int) error {
	// Your code here (W3D3).
	panic("TODO(W3D3): implement PagePool.Retain")
}

// Release drops a holder of a page; the page returns to the free list when
// its last holder releases it. Releasing a free page is an error (a double
// free), as is a page id out of range.
func (p *PagePool) Release(page int) error {
	// Your code here (W3D3).
	panic("TODO(W3D3): implement PagePool.Release")
}

// RefCount is the number of holders of a page, 0 for a free one. An id
// out of range is an error.
func (p *PagePool) RefCount(page int) (int, error) {
	// Your code here (W3D3).
	panic("TODO(W3D3): implement PagePool.RefCount")
}

// Slot returns the keys and values of one position of one layer, slot
// slot of page page: two slices of KVHeads x HeadDim that share the pool's
// memory, so writing into them stores the position.
func (p *PagePool) Slot(layer, page, slot int) (k, v []float32, err error) {
	// Your code here (W3D3).
	// The float offset of (layer, page, slot) in k and v is
	// ((layer*NumPages + page)*PageSize + slot) * KVHeads*HeadDim. Return
	// sub-slices with a capacity limit (s[a:b:b]) so an append cannot run
	// into the next slot.
	panic("TODO(W3D3): implement PagePool.Slot")
}

// Layer returns the keys and values of every page of one layer, each
// NumPages x PageSize x KVHeads x HeadDim, sharing the pool's memory: what
// paged attention reads through a block table.
func (p *PagePool) Layer(layer int) (k, v []float32, err error) {
	// Your code here (W3D3).
	panic("TODO(W3D3): implement PagePool.Layer")
}
