package llm

import "errors"

// The seams of the Week 3 engine: what the engine asks of the model runner
// and of the block manager, what it is configured with, and what it offers
// the server and the benchmarks. Each part lives in its own day (the
// scheduler and the engine in Day 2, the block manager in Day 3); these
// interfaces are how they meet.

// ModelRunner computes one step's batch (Week 3). The runner reads each
// chunk's tokens from its sequence, computes the chunk's positions with the
// keys and values of the sequence's earlier positions (stored in the pages of
// its block table), stores the new positions' keys and values the same way,
// and returns one entry per chunk: the sequence's next token for a chunk
// that samples (ScheduledChunk.Samples), and -1 for a prefill chunk that
// does not. A chunk with Start 0 begins its sequence anew: after a
// preemption the whole sequence is computed again.
type ModelRunner interface {
	Run(batch Batch) (next []int, err error)
}

// ErrOutOfPages is the error of a BlockAllocator that has too few free pages
// for an allocation.
var ErrOutOfPages = errors.New("out of KV cache pages")

// BlockAllocator hands out the pages of the paged KV cache to sequences
// (Week 3 Day 3's block manager is one). The scheduler uses it to reserve
// the pages of a step's chunks before the model runs them, and to give a
// sequence's pages back when it finishes, fails, is cancelled or preempted.
type BlockAllocator interface {
	// PageSize is the number of positions a page holds.
	PageSize() int
	// NumPages is the number of pages of the pool.
	NumPages() int
	// NumFreePages is the number of pages no sequence holds.
	NumFreePages() int
	// Allocate grows seq's block table to cover positions 0 … n-1, taking
	// pages from the free list; a table that covers them already is left
	// as it is. Without enough free pages it returns an error that wraps
	// ErrOutOfPages and changes nothing.
	Allocate(seq *Sequence, n int) error
	// Free gives every page of seq's block table back (a page shared with
	// another sequence stays in use until its last holder frees it), and
	// empties the table and sets NumCached to 0.
	Free(seq *Sequence) error
}

// EngineConfig is the engine's limits.
type EngineConfig struct {
	// MaxNumBatchedTokens is the token budget of a step: the most
	// positions (prefill chunks and decodes together) one step computes.
	MaxNumBatchedTokens int
	// MaxNumSeqs is the most sequences one step computes, and so the most
	// that are running at once. At most MaxNumBatchedTokens.
	MaxNumSeqs int
	// MaxContext is the model's context: no sequence grows past it, and a
	// prompt must be shorter, to leave room for one generated token.
	MaxContext int
	// EOS are the token ids that end a sequence.
	EOS []int
}

// Engine serves many requests at once (Week 3): requests join at any time,
// and each Step runs one batch of the model over the requests the scheduler
// picks.
type Engine interface {
	// AddRequest queues a request, or refuses it with an error (and
	// allocates nothing) if it can never run.
	AddRequest(prompt []int, maxTokens int) (*Sequence, error)
	// Step schedules and runs one batch and returns the sequences it
	// changed: each gained a token, or finished, or both. The error is the
	// model runner's, when a step failed; the sequences of that batch are
	// then finished with FinishError, and the engine goes on with the rest.
	Step() ([]*Sequence, error)
	// Cancel finishes a waiting or running request and frees its pages.
	Cancel(id int) error
	// HasWork reports whether a request is waiting or running.
	HasWork() bool
}

// PrefixCache is a BlockAllocator that keeps the keys and values of full
// pages after their sequences finish and shares them with later sequences
// whose tokens begin the same way (Week 3 Day 6's prefix-caching block
// manager is one). The scheduler asks it, before it admits a sequence that
// holds no pages, how much of the sequence is cached already; Allocate then
// starts such a sequence on those pages and sets its NumCached past them,
// so the model computes only the rest.
type PrefixCache interface {
	BlockAllocator
	// CachedPrefix is the number of leading positions of tokens whose keys
	// and values are in cached pages: a multiple of PageSize, and at most
	// len(tokens)-1, so that the last token is always computed (its logits
	// give the next token). It changes nothing.
	CachedPrefix(tokens []int) int
	// Stats counts the cache's lookups, hits and evictions: what a
	// server's prefix cache hit rate gauge reports (serving.Stats). Like
	// the rest of the allocator it belongs to the engine's step loop; a
	// server copies it from there.
	Stats() PrefixStats
}

// PrefixStats counts a prefix cache's work (Week 3 Day 6), for the
// server's metrics. Lookups and Hits are in tokens: Lookups is the tokens
// of every sequence the cache was asked about when it started (a preempted
// sequence counts again when it restarts), Hits the positions among them
// found in cached pages. Evictions counts cached pages taken back for new
// positions.
type PrefixStats struct {
	Lookups, Hits, Evictions int
}

// HitRate is Hits / Lookups, in [0, 1]; 0 before any lookup.
func (s PrefixStats) HitRate() float64 {
	if s.Lookups == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Lookups)
}
