package day3

import (
	"fmt"

	"github.com/tinyllm-go/tinyllm/internal/llm"
)

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
	if n < 0 {
		return fmt.Errorf("block manager: sequence %d: cannot allocate %d positions", seq.ID, n)
	}
	need := llm.PagesFor(n, m.PageSize()) - len(seq.BlockTable)
	if need <= 0 {
		return nil
	}
	// Check first, so that a failed allocation leaves no pages behind.
	if free := m.pool.NumFree(); free < need {
		return fmt.Errorf("block manager: sequence %d needs %d more pages for %d positions, %d free: %w",
			seq.ID, need, n, free, ErrOutOfPages)
	}
	for range need {
		page, err := m.pool.Alloc()
		if err != nil {
			return err // cannot happen after the check above
		}
		seq.BlockTable = append(seq.BlockTable, page)
	}
	return nil
}

// checkHeld returns an error unless every page of pages is in use at least
// as many times as pages names it: releasing them all is then safe.
func (m *BlockManager) checkHeld(seq *Sequence, pages []int) error {
	count := map[int]int{}
	for _, page := range pages {
		count[page]++
		refs, err := m.pool.RefCount(page)
		if err != nil {
			return fmt.Errorf("block manager: sequence %d: %w", seq.ID, err)
		}
		if refs < count[page] {
			return fmt.Errorf("block manager: sequence %d holds page %d, which is free (freed twice?)", seq.ID, page)
		}
	}
	return nil
}

// release drops seq's hold on pages, which checkHeld has checked.
func (m *BlockManager) release(pages []int) {
	for i := len(pages) - 1; i >= 0; i-- {
		_ = m.pool.Release(pages[i]) // checked by checkHeld
	}
}

// Free gives every page of seq's block table back to the pool (a shared
// page stays in use until its last holder frees it), empties the table and
// sets NumCached to 0. A table that names a free page or a page out of range
// is an error, and then nothing is released.
func (m *BlockManager) Free(seq *Sequence) error {
	if err := m.checkHeld(seq, seq.BlockTable); err != nil {
		return err
	}
	m.release(seq.BlockTable)
	seq.BlockTable = seq.BlockTable[:0]
	seq.NumCached = 0
	return nil
}

// Rewind drops the last n cached positions of seq (speculative decoding
// rejects draft tokens this way, Day 7): NumCached goes down by n, and the
// pages that no longer hold a position go back to the pool. It does not
// touch seq.Tokens; the caller trims those. n must be between 0 and
// NumCached.
func (m *BlockManager) Rewind(seq *Sequence, n int) error {
	if n < 0 || n > seq.NumCached {
		return fmt.Errorf("block manager: sequence %d: cannot rewind %d of its %d cached positions", seq.ID, n, seq.NumCached)
	}
	keep := llm.PagesFor(seq.NumCached-n, m.PageSize())
	if keep < len(seq.BlockTable) {
		if err := m.checkHeld(seq, seq.BlockTable[keep:]); err != nil {
			return err
		}
		m.release(seq.BlockTable[keep:])
		seq.BlockTable = seq.BlockTable[:keep]
	}
	seq.NumCached -= n
	return nil
}

// Fork makes dst share the first n cached positions of src: dst's block
// table starts with src's first n / PageSize pages, each with one more
// holder, and dst.NumCached is n. Only whole pages are shared, so n must be
// a multiple of PageSize, at most src.NumCached; dst must hold no pages.
func (m *BlockManager) Fork(dst, src *Sequence, n int) error {
	ps := m.PageSize()
	switch {
	case n < 0 || n%ps != 0:
		return fmt.Errorf("block manager: can share only whole pages of %d positions, not %d positions", ps, n)
	case n > src.NumCached:
		return fmt.Errorf("block manager: sequence %d has %d cached positions, cannot share %d", src.ID, src.NumCached, n)
	case len(dst.BlockTable) != 0:
		return fmt.Errorf("block manager: sequence %d already holds %d pages", dst.ID, len(dst.BlockTable))
	}
	shared := src.BlockTable[:n/ps]
	if err := m.checkHeld(src, shared); err != nil {
		return err
	}
	for _, page := range shared {
		_ = m.pool.Retain(page) // in use: checked above
	}
	dst.BlockTable = append(dst.BlockTable, shared...)
	dst.NumCached = n
	return nil
}

// Locate returns the page and slot of position pos of seq, or an error if
// its block table does not cover pos.
func (m *BlockManager) Locate(seq *Sequence, pos int) (page, slot int, err error) {
	ps := m.PageSize()
	if pos < 0 || pos >= len(seq.BlockTable)*ps {
		return -1, -1, fmt.Errorf("block manager: sequence %d: position %d not in its %d pages of %d positions",
			seq.ID, pos, len(seq.BlockTable), ps)
	}
	return seq.BlockTable[pos/ps], pos % ps, nil
}

// Write stores the keys and values of position pos of seq in one layer,
// each KVHeads x HeadDim, in the page its block table names.
func (m *BlockManager) Write(seq *Sequence, layer, pos int, k, v []float32) error {
	w := m.pool.cfg.PositionFloats()
	if len(k) != w || len(v) != w {
		return fmt.Errorf("block manager: keys and values of one position are %d floats (kv heads x head dim), got %d and %d", w, len(k), len(v))
	}
	page, slot, err := m.Locate(seq, pos)
	if err != nil {
		return err
	}
	dk, dv, err := m.pool.Slot(layer, page, slot)
	if err != nil {
		return err
	}
	copy(dk, k)
	copy(dv, v)
	return nil
}

// Read returns the keys and values of position pos of seq in one layer,
// each KVHeads x HeadDim. They share the pool's memory: read them before
// the page can change hands, and do not write into them.
func (m *BlockManager) Read(seq *Sequence, layer, pos int) (k, v []float32, err error) {
	page, slot, err := m.Locate(seq, pos)
	if err != nil {
		return nil, nil, err
	}
	return m.pool.Slot(layer, page, slot)
}
