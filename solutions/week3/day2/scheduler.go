// Package day2 is Week 3 Day 2 of the course: the scheduler and the engine's
// step loop. Prompts are prefilled in chunks under a per-step token budget,
// in the same steps as other requests' decodes; when the KV cache runs out
// of pages, the newest running request is preempted and recomputed later.
// The guide's chapter "Week 3 Day 2" explains the tasks; grade your work
// with `make check-w3d2`.
package day2

import (
	"errors"
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
	switch {
	case seq.NumPrompt == 0:
		return fmt.Errorf("request %d: empty prompt", seq.ID)
	case seq.MaxTokens < 1:
		return fmt.Errorf("request %d: max tokens must be at least 1, got %d", seq.ID, seq.MaxTokens)
	case seq.NumPrompt >= s.cfg.MaxContext:
		return fmt.Errorf("request %d: prompt of %d tokens does not fit the model's context of %d tokens (at most %d, to leave room for one generated token)",
			seq.ID, seq.NumPrompt, s.cfg.MaxContext, s.cfg.MaxContext-1)
	}
	// The most positions it will cache: every token but the last, which
	// is returned and never fed back.
	longest := min(seq.NumPrompt+seq.MaxTokens, s.cfg.MaxContext) - 1
	if need := llm.PagesFor(longest, s.blocks.PageSize()); need > s.blocks.NumPages() {
		return fmt.Errorf("request %d: %d prompt tokens and up to %d generated need up to %d pages of %d positions; the KV cache has %d",
			seq.ID, seq.NumPrompt, seq.MaxTokens, need, s.blocks.PageSize(), s.blocks.NumPages())
	}
	seq.Status = llm.SeqWaiting
	s.waiting = append(s.waiting, seq)
	return nil
}

// fits reports whether seq's block table can be grown to n positions now.
func (s *Scheduler) fits(seq *Sequence, n int) bool {
	return llm.PagesFor(n, s.blocks.PageSize())-len(seq.BlockTable) <= s.blocks.NumFreePages()
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
	var batch Batch
	budget := s.cfg.MaxNumBatchedTokens
	preempted := false
running:
	for i := 0; i < len(s.running) && budget > 0 && len(batch) < s.cfg.MaxNumSeqs; i++ {
		seq := s.running[i]
		n := min(seq.Uncached(), budget)
		for !s.fits(seq, seq.NumCached+n) {
			victim := s.running[len(s.running)-1]
			s.running = s.running[:len(s.running)-1]
			preempted = true
			if err := s.preempt(victim); err != nil {
				return nil, err
			}
			if victim == seq {
				break running
			}
		}
		if err := s.blocks.Allocate(seq, seq.NumCached+n); err != nil {
			return nil, fmt.Errorf("scheduler: request %d: %w", seq.ID, err)
		}
		batch = append(batch, ScheduledChunk{Seq: seq, Start: seq.NumCached, Len: n})
		budget -= n
	}
	for !preempted && len(s.waiting) > 0 && budget > 0 && len(batch) < s.cfg.MaxNumSeqs {
		seq := s.waiting[0]
		start := seq.NumCached
		if pc, ok := s.blocks.(llm.PrefixCache); ok && len(seq.BlockTable) == 0 {
			start = pc.CachedPrefix(seq.Tokens)
		}
		n := min(seq.Len()-start, budget)
		if !s.fits(seq, start+n) {
			break
		}
		if err := s.blocks.Allocate(seq, start+n); err != nil {
			return nil, fmt.Errorf("scheduler: request %d: %w", seq.ID, err)
		}
		if seq.NumCached != start {
			return nil, fmt.Errorf("scheduler: request %d: the block manager cached %d of its positions, %d expected", seq.ID, seq.NumCached, start)
		}
		s.waiting = s.waiting[1:]
		seq.Status = llm.SeqRunning
		s.running = append(s.running, seq)
		batch = append(batch, ScheduledChunk{Seq: seq, Start: start, Len: n})
		budget -= n
	}
	return batch, nil
}

// preempt frees seq's pages and puts it at the front of waiting, to be
// computed again from its first token (prompt and output so far).
func (s *Scheduler) preempt(seq *Sequence) error {
	seq.Status = llm.SeqWaiting
	seq.Preemptions++
	s.waiting = slices.Insert(s.waiting, 0, seq)
	if err := s.blocks.Free(seq); err != nil {
		return fmt.Errorf("scheduler: preempting request %d: %w", seq.ID, err)
	}
	return nil
}

// Update records a computed batch: each chunk's positions are cached, and a
// chunk that samples appends its token, next[i] for batch[i]. A request
// finishes on an EOS token (FinishStop), at MaxTokens generated or at the
// model's context (FinishLength); its pages are freed. It returns the
// requests that gained a token, in batch order, and the allocator's error if
// freeing pages failed.
func (s *Scheduler) Update(batch Batch, next []int) ([]*Sequence, error) {
	var changed []*Sequence
	var errs []error
	for i, c := range batch {
		seq := c.Seq
		seq.NumCached = c.Start + c.Len
		if !c.Samples() {
			continue
		}
		tok := next[i]
		seq.Tokens = append(seq.Tokens, tok)
		changed = append(changed, seq)
		var err error
		switch {
		case slices.Contains(s.cfg.EOS, tok):
			err = s.finish(seq, llm.FinishStop)
		case seq.NumOutput() >= seq.MaxTokens || seq.Len() >= s.cfg.MaxContext:
			err = s.finish(seq, llm.FinishLength)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return changed, errors.Join(errs...)
}

// Fail finishes every request of a batch the model could not compute with
// FinishError and err, and frees their pages. It returns them, and the
// allocator's error if freeing pages failed.
func (s *Scheduler) Fail(batch Batch, err error) ([]*Sequence, error) {
	var failed []*Sequence
	var errs []error
	for _, c := range batch {
		c.Seq.Err = err
		if ferr := s.finish(c.Seq, llm.FinishError); ferr != nil {
			errs = append(errs, ferr)
		}
		failed = append(failed, c.Seq)
	}
	return failed, errors.Join(errs...)
}

// Cancel finishes the waiting or running request id with FinishCancelled
// and frees its pages. An id that is neither waiting nor running is an
// error.
func (s *Scheduler) Cancel(id int) (*Sequence, error) {
	for _, q := range [][]*Sequence{s.waiting, s.running} {
		for _, seq := range q {
			if seq.ID == id {
				return seq, s.finish(seq, llm.FinishCancelled)
			}
		}
	}
	return nil, fmt.Errorf("no waiting or running request %d", id)
}

// finish takes seq out of its queue, marks it finished and frees its pages.
func (s *Scheduler) finish(seq *Sequence, why llm.FinishReason) error {
	drop := func(q []*Sequence) []*Sequence {
		return slices.DeleteFunc(q, func(o *Sequence) bool { return o == seq })
	}
	s.waiting = drop(s.waiting)
	s.running = drop(s.running)
	seq.Status = llm.SeqFinished
	seq.Finish = why
	if err := s.blocks.Free(seq); err != nil {
		return fmt.Errorf("scheduler: freeing the pages of request %d: %w", seq.ID, err)
	}
	return nil
}
