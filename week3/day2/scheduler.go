// Package day2 is Week 3 Day 2 of the course: the scheduler and the engine's
// step loop. Prompts are prefilled in chunks under a per-step token budget,
// in the same steps as other requests' decodes; when the KV cache runs out
// of pages, the newest running request is preempted and recomputed later.
// The guide's chapter "Week 3 Day 2" explains the tasks; grade your work
// with `make check-w3d2`.
package day2

import (
	"fmt"
	"slices"

	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// The types the engine's parts pass between them, declared once in
// internal/llm.
type (
	// Sequence is one request: tokens, cached positions, block table, state.
	Sequence = llm.Sequence
	// ScheduledChunk is one sequence's positions in a step.
	ScheduledChunk = llm.ScheduledChunk
	// Batch is the chunks of one step.
	Batch = llm.Batch
	// EngineConfig is the token budget, the sequence limit, the context and
	// the end-of-sequence tokens.
	EngineConfig = llm.EngineConfig
	// ModelRunner computes a batch and returns the sampled tokens.
	ModelRunner = llm.ModelRunner
	// BlockAllocator hands out the KV cache's pages.
	BlockAllocator = llm.BlockAllocator
)

// Scheduler decides, step by step, which positions of which requests the
// model computes. It keeps two queues, both oldest first: waiting (not yet
// started, or preempted) and running (holding pages). Every running request
// arrived before every waiting one, and the scheduler keeps it so: it
// admits from the front of waiting and preempts from the back of running.
//
// A Scheduler is not safe for concurrent use; the engine's step loop owns it.
type Scheduler struct {
	cfg     EngineConfig
	blocks  BlockAllocator
	waiting []*Sequence
	running []*Sequence
}

// NewScheduler returns an empty scheduler, or an error if cfg cannot work:
// a budget or a sequence limit below 1, more sequences than budget tokens
// (a running request would then wait for a decode slot forever), a context
// below 2, or no allocator.
func NewScheduler(cfg EngineConfig, blocks BlockAllocator) (*Scheduler, error) {
	switch {
	case cfg.MaxNumBatchedTokens < 1:
		return nil, fmt.Errorf("scheduler: max_num_batched_tokens must be at least 1, got %d", cfg.MaxNumBatchedTokens)
	case cfg.MaxNumSeqs < 1:
		return nil, fmt.Errorf("scheduler: max_num_seqs must be at least 1, got %d", cfg.MaxNumSeqs)
	case cfg.MaxNumSeqs > cfg.MaxNumBatchedTokens:
		return nil, fmt.Errorf("scheduler: max_num_seqs %d exceeds max_num_batched_tokens %d: every running request needs a token of each step",
			cfg.MaxNumSeqs, cfg.MaxNumBatchedTokens)
	case cfg.MaxContext < 2:
		return nil, fmt.Errorf("scheduler: the model's context must be at least 2 tokens, got %d", cfg.MaxContext)
	case blocks == nil:
		return nil, fmt.Errorf("scheduler: no block allocator")
	}
	return &Scheduler{cfg: cfg, blocks: blocks}, nil
}

// Waiting returns the waiting requests, oldest first.
func (s *Scheduler) Waiting() []*Sequence { return slices.Clone(s.waiting) }

// Running returns the running requests, oldest first.
func (s *Scheduler) Running() []*Sequence { return slices.Clone(s.running) }

// HasWork reports whether a request is waiting or running.
func (s *Scheduler) HasWork() bool { return len(s.waiting)+len(s.running) > 0 }

// Add queues seq at the back of waiting. It refuses, with an error and
// without allocating anything, a request that can never run: an empty
// prompt, MaxTokens below 1, a prompt that leaves no room in the model's
// context for one generated token, or one that at its longest needs more
// pages than the pool has.
func (s *Scheduler) Add(seq *Sequence) error {
	// Your code here (W3D2).
	// Check in the order the doc lists; the longest a request gets is
	// min(prompt + max tokens, context) tokens, and the last one is never
	// fed back, so it caches one position fewer. llm.PagesFor counts pages.
	panic("TODO(W3D2): implement Scheduler.Add")
}

// Schedule picks the next step's batch and reserves its pages. The policy:
//
//  1. Running requests, oldest first, each take min(Uncached, tokens left
//     in the budget): a decode takes 1 token, an unfinished prefill what is
//     left. Before a request is scheduled its block table must cover the
//     positions; while the free pages are too few, the newest running
//     request is preempted (its pages freed, sent to the front of waiting);
//     if that is the request itself, the running pass ends.
//  2. If nothing was preempted in this step, waiting requests, oldest
//     first, the same way; the first whose pages do not fit ends the pass,
//     so no request overtakes an older one.
//
// Both passes end when the budget or MaxNumSeqs is used up.
//
// With an allocator that is an llm.PrefixCache (Day 6), a waiting request
// that holds no pages starts at its CachedPrefix: its chunk covers only the
// positions after the cached ones, and Allocate gives it the cached pages
// and sets its NumCached to match.
func (s *Scheduler) Schedule() (Batch, error) {
	// Your code here (W3D2).
	// Two passes over s.running then s.waiting, with the budget and the
	// sequence count going down. Helpers worth writing: fits(seq, n), true
	// if the free pages can grow seq's table to n positions; preempt(seq),
	// which frees its pages (s.blocks.Free), counts the preemption and puts
	// it at the front of s.waiting. A chunk starts at seq.NumCached.
	panic("TODO(W3D2): implement Scheduler.Schedule")
}

// Update records a computed batch: each chunk's positions are cached, and a
// chunk that samples appends its token, next[i] for batch[i]. A request
// finishes on an EOS token (FinishStop), at MaxTokens generated or at the
// model's context (FinishLength); its pages are freed. It returns the
// requests that gained a token, in batch order, and the allocator's error if
// freeing pages failed.
func (s *Scheduler) Update(batch Batch, next []int) ([]*Sequence, error) {
	// Your code here (W3D2).
	// A helper finish(seq, reason) that takes seq out of both queues, marks
	// it finished and frees its pages serves Update, Fail and Cancel.
	panic("TODO(W3D2): implement Scheduler.Update")
}

// Fail finishes every request of a batch the model could not compute with
// FinishError and err, and frees their pages. It returns them, and the
// allocator's error if freeing pages failed.
func (s *Scheduler) Fail(batch Batch, err error) ([]*Sequence, error) {
	// Your code here (W3D2).
	panic("TODO(W3D2): implement Scheduler.Fail")
}

// Cancel finishes the waiting or running request id with FinishCancelled
// and frees its pages. An id that is neither waiting nor running is an
// error.
func (s *Scheduler) Cancel(id int) (*Sequence, error) {
	// Your code here (W3D2).
	panic("TODO(W3D2): implement Scheduler.Cancel")
}
