// Package day6 is the reference solution of Week 3 Day 6: prefix caching.
// A full page is named by a hash chained over its tokens and the hash of the
// page before it, so one hash stands for the whole prefix up to the page's
// end. A block manager that remembers which page holds which hash can give a
// new request the pages of the longest prefix it shares with earlier ones:
// the scheduler skips computing those positions. Pages nobody holds stay
// cached in an LRU list and are reused, oldest first, only when the free
// list runs out. Graded by `make check-w3d6`.
//
// The invariant that makes sharing safe without copy-on-write: only full
// pages whose every position is computed are registered under a hash, and
// the model never writes into such a page again (a sequence's next position
// is always in a page after them). The one operation that could break it,
// Rewind into a registered page, takes the page out of the cache first, or
// copies it when another sequence holds it too.
package day6

import (
	"container/list"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/tinyllm-go/tinyllm/internal/llm"
	w3day3 "github.com/tinyllm-go/tinyllm/solutions/week3/day3"
)

// The types the engine's parts pass between them, declared once in
// internal/llm.
type (
	// Sequence is one request: tokens, cached positions, block table, state.
	Sequence = llm.Sequence
	// PrefixCache is what the Day 2 scheduler asks of a block manager
	// that caches prefixes.
	PrefixCache = llm.PrefixCache
	// PrefixStats counts lookups, hits and evictions.
	PrefixStats = llm.PrefixStats
)

// ErrOutOfPages is wrapped by every error that says the pool has too few
// free pages.
var ErrOutOfPages = llm.ErrOutOfPages

// PageHash is the hash of a full page of tokens that follows a page of hash
// prev (0 for the first page of a sequence): FNV-1a, 64 bits (hash/fnv's
// New64a), of prev as 8 little-endian bytes followed by every token as 8
// little-endian bytes. Chaining through prev makes equal hashes mean equal
// prefixes, not just equal pages: the same tokens after a different prefix
// have different keys and values.
func PageHash(prev uint64, tokens []int) uint64 {
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

// pageInfo is what the manager knows of one page of the pool.
type pageInfo struct {
	hashed bool          // the page is full and computed, and hash names it
	hash   uint64        // PageHash of its tokens after its prefix
	prev   uint64        // the hash of the page before it (0 for a first page)
	tokens []int         // its tokens, checked on every match (a hash can collide)
	lru    *list.Element // its place in the LRU list while cached and free
}

// PrefixBlockManager is Day 3's block manager with a prefix cache: it
// implements llm.PrefixCache. A page is registered under its hash once it
// is full and computed (seen when the sequence's table grows, or when the
// sequence is freed); a sequence that starts with no pages shares the
// registered pages of its longest cached prefix, each with one more holder
// in the pool's reference counts.
//
// A registered page that no sequence holds is kept: the manager holds it
// (reference count 1 in the pool) in an LRU list, oldest first, and counts
// it among the free pages. Allocating takes the pool's free pages first and
// evicts the oldest cached page only when there are none.
type PrefixBlockManager struct {
	*w3day3.BlockManager
	pool   *w3day3.PagePool
	pages  []pageInfo
	byHash map[uint64]int // hash -> the page registered under it
	lru    *list.List     // cached pages no sequence holds, oldest at the front
	stats  PrefixStats
}

var _ PrefixCache = (*PrefixBlockManager)(nil)

// NewPrefixBlockManager returns a prefix-caching block manager over pool,
// with an empty cache.
func NewPrefixBlockManager(pool *w3day3.PagePool) *PrefixBlockManager {
	return &PrefixBlockManager{
		BlockManager: w3day3.NewBlockManager(pool),
		pool:         pool,
		pages:        make([]pageInfo, pool.Config().NumPages),
		byHash:       map[uint64]int{},
		lru:          list.New(),
	}
}

// NumFreePages is the number of pages no sequence holds: the pool's free
// pages and the cached pages in the LRU list, which Allocate may evict.
func (m *PrefixBlockManager) NumFreePages() int { return m.pool.NumFree() + m.lru.Len() }

// NumCachedPages is the number of pages registered under a hash, held by
// sequences or not.
func (m *PrefixBlockManager) NumCachedPages() int { return len(m.byHash) }

// NumEvictable is the number of cached pages no sequence holds: the LRU
// list's length.
func (m *PrefixBlockManager) NumEvictable() int { return m.lru.Len() }

// Stats returns the cache's lookup and hit counts.
func (m *PrefixBlockManager) Stats() PrefixStats { return m.stats }

// Holders is the number of sequences that hold page: its reference count in
// the pool, less the cache's own reference of a page in the LRU list.
func (m *PrefixBlockManager) Holders(page int) (int, error) {
	n, err := m.pool.RefCount(page)
	if err != nil {
		return 0, err
	}
	if m.pages[page].lru != nil {
		n--
	}
	return n, nil
}

// PageHashOf returns the hash a page is registered under, and whether it is
// registered.
func (m *PrefixBlockManager) PageHashOf(page int) (uint64, bool) {
	if page < 0 || page >= len(m.pages) {
		return 0, false
	}
	pi := m.pages[page]
	return pi.hash, pi.hashed && m.byHash[pi.hash] == page
}

// lookup returns the page registered under the hash of tokens after a page
// of hash prev, or -1.
func (m *PrefixBlockManager) lookup(prev uint64, tokens []int) (page int, hash uint64) {
	h := PageHash(prev, tokens)
	p, ok := m.byHash[h]
	if !ok || m.pages[p].prev != prev || !slices.Equal(m.pages[p].tokens, tokens) {
		return -1, h
	}
	return p, h
}

// match returns the cached pages of the longest prefix of tokens, leaving
// at least the last token out.
func (m *PrefixBlockManager) match(tokens []int) []int {
	ps := m.PageSize()
	var pages []int
	prev := uint64(0)
	for i := 0; (i+1)*ps <= len(tokens)-1; i++ {
		p, h := m.lookup(prev, tokens[i*ps:(i+1)*ps])
		if p < 0 {
			break
		}
		pages = append(pages, p)
		prev = h
	}
	return pages
}

// CachedPrefix is the number of leading positions of tokens held in cached
// pages: a multiple of PageSize, at most len(tokens)-1. It changes nothing.
func (m *PrefixBlockManager) CachedPrefix(tokens []int) int {
	return len(m.match(tokens)) * m.PageSize()
}

// fresh reports whether seq holds nothing: Allocate then starts it on its
// cached prefix.
func fresh(seq *Sequence) bool { return len(seq.BlockTable) == 0 && seq.NumCached == 0 }

// Allocate grows seq's block table to cover positions 0 … n-1. A sequence
// that holds no pages (new, or preempted) first takes the cached pages of
// its longest cached prefix (CachedPrefix of its tokens), and its NumCached
// becomes their positions; the lookup is counted in Stats. New pages come
// from the pool's free list, then from the oldest cached pages. Before the
// table grows, its full computed pages are registered. Without enough free
// pages it returns an error wrapping ErrOutOfPages and changes nothing.
func (m *PrefixBlockManager) Allocate(seq *Sequence, n int) error {
	if n < 0 {
		return fmt.Errorf("prefix cache: sequence %d: cannot allocate %d positions", seq.ID, n)
	}
	var shared []int
	have := len(seq.BlockTable)
	if fresh(seq) {
		shared = m.match(seq.Tokens)
		have = len(shared)
	}
	need := max(0, llm.PagesFor(n, m.PageSize())-have)
	// The shared pages that sit in the LRU list count among the free ones
	// but will not be free after this call.
	avail := m.NumFreePages()
	for _, p := range shared {
		if m.pages[p].lru != nil {
			avail--
		}
	}
	if avail < need {
		return fmt.Errorf("prefix cache: sequence %d needs %d more pages for %d positions, %d free: %w",
			seq.ID, need, n, avail, ErrOutOfPages)
	}
	if fresh(seq) {
		// Take the shared pages before allocating, so that eviction
		// cannot pick one of them.
		for _, p := range shared {
			if e := m.pages[p].lru; e != nil {
				m.lru.Remove(e) // the cache's reference becomes seq's
				m.pages[p].lru = nil
			} else {
				_ = m.pool.Retain(p) // in use: it is registered and not in the LRU list
			}
		}
		seq.BlockTable = append(seq.BlockTable, shared...)
		seq.NumCached = len(shared) * m.PageSize()
		m.stats.Lookups += seq.Len()
		m.stats.Hits += seq.NumCached
	} else {
		m.register(seq)
	}
	for range need {
		seq.BlockTable = append(seq.BlockTable, m.alloc())
	}
	return nil
}

// alloc takes a page from the pool's free list, or evicts the oldest cached
// page when the list is empty. The caller has checked that one is free.
func (m *PrefixBlockManager) alloc() int {
	if m.pool.NumFree() == 0 {
		p := m.lru.Remove(m.lru.Front()).(int)
		m.pages[p].lru = nil
		m.unhash(p)
		m.stats.Evictions++
		_ = m.pool.Release(p) // the cache's reference: the page goes to the free list
	}
	p, _ := m.pool.Alloc() // one is free: checked by the caller, or just released
	m.pages[p] = pageInfo{}
	return p
}

// register names every full page of seq's computed positions by its hash,
// unless another page holds that hash already (two sequences computed the
// same prefix at once: the first keeps the name, the copy is freed as any
// page).
func (m *PrefixBlockManager) register(seq *Sequence) {
	ps := m.PageSize()
	prev := uint64(0)
	for i := 0; (i+1)*ps <= seq.NumCached && i < len(seq.BlockTable); i++ {
		p := seq.BlockTable[i]
		pi := &m.pages[p]
		if !pi.hashed {
			toks := seq.Tokens[i*ps : (i+1)*ps]
			h := PageHash(prev, toks)
			*pi = pageInfo{hashed: true, hash: h, prev: prev, tokens: slices.Clone(toks)}
			if _, taken := m.byHash[h]; !taken {
				m.byHash[h] = p
			}
		}
		prev = pi.hash
	}
}

// unhash forgets page's hash.
func (m *PrefixBlockManager) unhash(p int) {
	pi := &m.pages[p]
	if pi.hashed && m.byHash[pi.hash] == p {
		delete(m.byHash, pi.hash)
	}
	pi.hashed, pi.tokens = false, nil
}

// checkHeld returns an error unless every page of pages is one seq may hold:
// in range, and held by sequences at least as often as pages names it.
func (m *PrefixBlockManager) checkHeld(seq *Sequence, pages []int) error {
	count := map[int]int{}
	for _, p := range pages {
		count[p]++
		n, err := m.Holders(p)
		if err != nil {
			return fmt.Errorf("prefix cache: sequence %d: %w", seq.ID, err)
		}
		if n < count[p] {
			return fmt.Errorf("prefix cache: sequence %d holds page %d, which no sequence holds (freed twice?)", seq.ID, p)
		}
	}
	return nil
}

// release drops one holder of each of pages, last page first. A page whose
// last holder leaves stays cached (into the LRU list, newest at the back)
// when it is registered, and goes to the pool's free list otherwise.
// Releasing the last page first puts a sequence's later pages ahead of its
// earlier ones in the LRU list: eviction takes a prefix's tail before its
// head, whose loss would orphan every page after it.
func (m *PrefixBlockManager) release(pages []int) {
	for i := len(pages) - 1; i >= 0; i-- {
		p := pages[i]
		n, _ := m.pool.RefCount(p) // checked by checkHeld
		if n == 1 && m.pages[p].hashed && m.byHash[m.pages[p].hash] == p {
			m.pages[p].lru = m.lru.PushBack(p) // the cache keeps the last reference
			continue
		}
		if n == 1 {
			m.unhash(p)
		}
		_ = m.pool.Release(p)
	}
}

// Free registers seq's full computed pages, then gives every page of its
// block table back (a page another sequence holds stays in use; a
// registered page stays cached), empties the table and sets NumCached to 0.
// A table that names a free page or a page out of range is an error, and
// then nothing changes.
func (m *PrefixBlockManager) Free(seq *Sequence) error {
	if err := m.checkHeld(seq, seq.BlockTable); err != nil {
		return err
	}
	m.register(seq)
	m.release(seq.BlockTable)
	seq.BlockTable = seq.BlockTable[:0]
	seq.NumCached = 0
	return nil
}

// Rewind drops the last n cached positions of seq, as Day 3's Rewind does.
// The page that keeps some of its positions will be written again, so it
// must not stay registered under the hash of tokens it will no longer hold:
// it leaves the cache, or, if another sequence holds it too, seq gets a
// private copy of it (the one place a page is copied, since the others
// still read it). Pages past the kept positions are released; a registered
// one still holds exactly the tokens its hash names and stays cached.
func (m *PrefixBlockManager) Rewind(seq *Sequence, n int) error {
	if n < 0 || n > seq.NumCached {
		return fmt.Errorf("prefix cache: sequence %d: cannot rewind %d of its %d cached positions", seq.ID, n, seq.NumCached)
	}
	ps := m.PageSize()
	left := seq.NumCached - n
	keep := llm.PagesFor(left, ps)
	if err := m.checkHeld(seq, seq.BlockTable); err != nil {
		return err
	}
	if left%ps != 0 && m.pages[seq.BlockTable[keep-1]].hashed {
		p := seq.BlockTable[keep-1]
		if holders, _ := m.pool.RefCount(p); holders > 1 {
			if m.NumFreePages() == 0 {
				return fmt.Errorf("prefix cache: sequence %d: rewinding into shared page %d needs a free page for its copy: %w", seq.ID, p, ErrOutOfPages)
			}
			q := m.alloc()
			m.copyPage(q, p)
			_ = m.pool.Release(p) // another sequence still holds it
			seq.BlockTable[keep-1] = q
		} else {
			m.unhash(p)
		}
	}
	m.release(seq.BlockTable[keep:])
	seq.BlockTable = seq.BlockTable[:keep]
	seq.NumCached = left
	return nil
}

// copyPage copies the keys and values of page src into page dst, in every
// layer.
func (m *PrefixBlockManager) copyPage(dst, src int) {
	c := m.pool.Config()
	w := c.PageSize * c.PositionFloats()
	for l := range c.Layers {
		k, v, _ := m.pool.Layer(l) // l is in range
		copy(k[dst*w:(dst+1)*w], k[src*w:(src+1)*w])
		copy(v[dst*w:(dst+1)*w], v[src*w:(src+1)*w])
	}
}

// Write stores the keys and values of position pos of seq in one layer, as
// Day 3's Write does, but refuses a page that is registered or that another
// sequence holds: those pages are immutable, and writing one would change
// what every sequence sharing it reads.
func (m *PrefixBlockManager) Write(seq *Sequence, layer, pos int, k, v []float32) error {
	page, _, err := m.Locate(seq, pos)
	if err != nil {
		return err
	}
	if n, err := m.pool.RefCount(page); err != nil {
		return err
	} else if n > 1 {
		return fmt.Errorf("prefix cache: sequence %d: position %d is in page %d, which %d sequences share: shared pages are never written", seq.ID, pos, page, n)
	}
	if m.pages[page].hashed {
		return fmt.Errorf("prefix cache: sequence %d: position %d is in page %d, a full cached page: cached pages are never written", seq.ID, pos, page)
	}
	return m.BlockManager.Write(seq, layer, pos, k, v)
}
