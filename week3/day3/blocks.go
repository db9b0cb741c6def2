package day3

// BlockManager gives sequences the pages of a PagePool through their block
// tables: position p of a sequence lives in page BlockTable[p / PageSize],
// slot p % PageSize. It is the BlockAllocator of the Day 2 scheduler.
type BlockManager struct {
	pool *PagePool
}

// NewBlockManager returns a block manager over pool.
func NewBlockManager(pool *PagePool) *BlockManager {
	return &BlockManager{pool: pool}
}

// Pool is the page pool the manager allocates from.
func (m *BlockManager) Pool() *PagePool { return m.pool }

// PageSize is the number of positions a page holds.
func (m *BlockManager) PageSize() int { return m.pool.cfg.PageSize }

// NumPages is the number of pages of the pool.
func (m *BlockManager) NumPages() int { return m.pool.cfg.NumPages }

// NumFreePages is the number of pages no sequence holds.
func (m *BlockManager) NumFreePages() int { return m.pool.NumFree() }

// Allocate grows seq's block table to cover positions 0 … n-1. Without
// enough free pages it returns an error wrapping ErrOutOfPages and changes
// nothing; a table that covers n positions already is left as it is.
func (m *BlockManager) Allocate(seq *Sequence, n int) error {
	// Your code here (W3D3).
	panic("TODO(W3D3): implement BlockManager.Allocate")
}

// Free gives every page of seq's block table back to the pool (a shared
// page stays in use until its last holder frees it), empties the table and
// sets NumCached to 0. A table that names a free page or a page out of range
// is an error, and then nothing is released.
func (m *BlockManager) Free(seq *Sequence) error {
	// Your code here (W3D3).
	// Check every page of the table first (in range, and in use at least
	// as often as the table names it), then release them all: a refused
	// Free must release nothing.
	panic("TODO(W3D3): implement BlockManager.Free")
}

// Rewind drops the last n cached positions of seq (speculative decoding
// rejects draft tokens this way, Day 7): NumCached goes down by n, and the
// pages that no longer hold a position go back to the pool. It does not
// touch seq.Tokens; the caller trims those. n must be between 0 and
// NumCached.
func (m *BlockManager) Rewind(seq *Sequence, n int) error {
	// Your code here (W3D3).
	panic("TODO(W3D3): implement BlockManager.Rewind")
}

// Fork makes dst share the first n cached positions of src: dst's block
// table starts with src's first n / PageSize pages, each with one more
// holder, and dst.NumCached is n. Only whole pages are shared, so n must be
// a multiple of PageSize, at most src.NumCached; dst must hold no pages.
func (m *BlockManager) Fork(dst, src *Sequence, n int) error {
	// Your code here (W3D3).
	panic("TODO(W3D3): implement BlockManager.Fork")
}

// Locate returns the page and slot of position pos of seq, or an error if
// its block table does not cover pos.
func (m *BlockManager) Locate(seq *Sequence, pos int) (page, slot int, err error) {
	// Your code here (W3D3).
	panic("TODO(W3D3): implement BlockManager.Locate")
}

// Write stores the keys and values of position pos of seq in one layer,
// each KVHeads x HeadDim, in the page its block table names.
func (m *BlockManager) Write(seq *Sequence, layer, pos int, k, v []float32) error {
	// Your code here (W3D3).
	panic("TODO(W3D3): implement BlockManager.Write")
}

// Read returns the keys and values of position pos of seq in one layer,
// each KVHeads x HeadDim. They share the pool's memory: read them before
// the page can change hands, and do not write into them.
func (m *BlockManager) Read(seq *Sequence, layer, pos int) (k, v []float32, err error) {
	// Your code here (W3D3).
	panic("TODO(W3D3): implement BlockManager.Read")
}
