package tokenizer

import (
	"math"
	"strings"
	"sync"
)

// Byte-pair encoding of one pre-token.
//
// A pre-token starts as one symbol per byte. The merge list ranks pairs of
// symbols; the lowest-ranked adjacent pair present is merged into one symbol
// (the vocabulary token spelled by the two), and this repeats until no
// adjacent pair has a merge. Ties (the same pair at several places) go to the
// leftmost. This is exactly Hugging Face's order: it keeps a priority queue
// of (rank, position).

// merge is what a pair of symbols becomes: the merged token and the rank.
type merge struct {
	rank int32
	id   int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// smallWord is the length up to which bpe scans for the best pair directly
// (quadratic but allocation-free); longer pre-tokens use the priority queue.
const smallWord = 256

// bpe appends the token ids of one pre-token (raw bytes) to out.
func (t *Tokenizer) bpe(out []int, word string) []int {
	if len(word) == 1 {
		return append(out, int(t.byteID[word[0]]))
	}
	if t.ignoreMerges {
		if id, ok := t.vocab[byteLevelString(word)]; ok {
			return append(out, id)
		}
	}
	if len(word) <= smallWord {
		var buf [smallWord]int32
		syms := buf[:len(word)]
		for i := 0; i < len(word); i++ {
			syms[i] = t.byteID[word[i]]
		}
		syms = t.mergeSmall(syms)
		for _, s := range syms {
			out = append(out, int(s))
		}
		return out
	}
	syms := make([]int32, len(word))
	for i := 0; i < len(word); i++ {
		syms[i] = t.byteID[word[i]]
	}
	for _, s := range t.mergeHeap(syms) {
		out = append(out, int(s))
	}
	return out
}

// mergeSmall merges in place. ranks[i] is the rank of the pair (syms[i],
// syms[i+1]); each step merges the lowest (leftmost on ties) and looks up
// only the two pairs that changed.
func (t *Tokenizer) mergeSmall(syms []int32) []int32 {
	const none = int32(math.MaxInt32)
	var rbuf [smallWord]int32
	var ibuf [smallWord]int32
	ranks, ids := rbuf[:len(syms)-1], ibuf[:len(syms)-1]
	pair := func(i int) {
		if m, ok := t.merges[pairKey(syms[i], syms[i+1])]; ok {
			ranks[i], ids[i] = m.rank, m.id
		} else {
			ranks[i] = none
		}
	}
	for i := range ranks {
		pair(i)
	}
	for len(syms) > 1 {
		best := 0
		for i, r := range ranks {
			if r < ranks[best] {
				best = i
			}
		}
		if ranks[best] == none {
			break
		}
		syms[best] = ids[best]
		syms = append(syms[:best+1], syms[best+2:]...)
		ranks = append(ranks[:best], ranks[best+1:]...)
		ids = append(ids[:best], ids[best+1:]...)
		if best > 0 {
			pair(best - 1)
		}
		if best < len(ranks) {
			pair(best)
		}
	}
	return syms
}

// mergeHeap merges with a priority queue over a linked list of symbols:
// O(n log n) for pre-tokens of any length (a page of Chinese text without
// punctuation is a single pre-token).
func (t *Tokenizer) mergeHeap(ids []int32) []int32 {
	n := len(ids)
	prev := make([]int32, n)
	next := make([]int32, n)
	alive := make([]bool, n)
	for i := range ids {
		prev[i], next[i], alive[i] = int32(i-1), int32(i+1), true
	}
	next[n-1] = -1
	q := mergeQueue(make([]candidate, 0, n))
	push := func(pos int32) {
		if pos < 0 || next[pos] < 0 {
			return
		}
		if m, ok := t.merges[pairKey(ids[pos], ids[next[pos]])]; ok {
			q.push(newCandidate(m.rank, pos, m.id))
		}
	}
	for i := 0; i+1 < n; i++ {
		if m, ok := t.merges[pairKey(ids[i], ids[i+1])]; ok {
			q = append(q, newCandidate(m.rank, int32(i), m.id))
		}
	}
	q.init()
	for len(q) > 0 {
		c := q.pop()
		// Skip candidates made stale by an earlier merge: the left symbol was
		// absorbed, or it or its right neighbour changed.
		pos := c.pos()
		if !alive[pos] || next[pos] < 0 {
			continue
		}
		r := next[pos]
		if m, ok := t.merges[pairKey(ids[pos], ids[r])]; !ok || m.id != c.id || m.rank != c.rank() {
			continue
		}
		ids[pos] = c.id
		alive[r] = false
		next[pos] = next[r]
		if next[r] >= 0 {
			prev[next[r]] = pos
		}
		push(prev[pos])
		push(pos)
	}
	out := ids[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}

// candidate is a possible merge at pos; key orders the queue: rank, then
// position.
type candidate struct {
	key uint64 // rank<<32 | pos
	id  int32
}

func (c candidate) rank() int32 { return int32(c.key >> 32) }
func (c candidate) pos() int32  { return int32(uint32(c.key)) }

func newCandidate(rank, pos, id int32) candidate {
	return candidate{uint64(rank)<<32 | uint64(uint32(pos)), id}
}

// mergeQueue is a binary min-heap of candidates ordered by (rank, pos).
type mergeQueue []candidate

func (c candidate) less(d candidate) bool { return c.key < d.key }

func (q mergeQueue) init() {
	for i := len(q)/2 - 1; i >= 0; i-- {
		q.down(i)
	}
}

func (q *mergeQueue) push(c candidate) {
	*q = append(*q, c)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *mergeQueue) pop() candidate {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	*q = h[:last]
	q.down(0)
	return top
}

func (q mergeQueue) down(i int) {
	n := len(q)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && q[r].less(q[l]) {
			m = r
		}
		if !q[m].less(q[i]) {
			return
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
}

// wordCache remembers the ids of pre-tokens already encoded: natural text
// repeats its words, so most pre-tokens are a map lookup. It is shared by
// every Encode call and safe for concurrent use; it is emptied when full.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int
}

const (
	cacheMaxWord    = 64      // longer pre-tokens are not cached
	cacheMaxEntries = 1 << 17 // the cache is reset when it grows past this
)

func (c *wordCache) get(w string) ([]int, bool) {
	c.mu.RLock()
	ids, ok := c.m[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= cacheMaxEntries {
		c.m = make(map[string][]int, 1024)
	}
	c.m[strings.Clone(w)] = ids // w may be a slice of a large input
	c.mu.Unlock()
}
