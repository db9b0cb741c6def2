// Package w3d2 holds the checks of Week 3 Day 2 (the scheduler and the
// engine's step loop), shared by week3/day2 and solutions/week3/day2. Week 3
// Day 3 runs its fault-injection checks through Faults too, with its own
// block manager in place of the counting allocator here.
//
// No check needs a real model: a scripted fake stands in for the model
// runner. It emulates a KV cache per request, so it can tell a chunk that
// skips or repeats positions, and its next token is a function of the tokens
// it has been fed, so a request recomputed after a preemption must produce
// the very tokens it would have produced without one.
package w3d2

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// EOSToken is the end-of-sequence token of the checks' engines. The fake
// never returns it unless a request's script says so.
const EOSToken = 2

// NewEngineFunc is the day's NewEngine with its result as an llm.Engine.
type NewEngineFunc func(cfg llm.EngineConfig, runner llm.ModelRunner, blocks llm.BlockAllocator) (llm.Engine, error)

// NewAllocatorFunc returns an empty allocator of numPages pages of pageSize
// positions: the counting one of this package for Day 2, the learner's
// block manager for Day 3.
type NewAllocatorFunc func(t *testing.T, pageSize, numPages int) llm.BlockAllocator

// nextToken is the fake model's next token after fed: a hash of the tokens,
// in [10, 1007), so never the EOS token and never a negative one.
func nextToken(fed []int) int {
	h := uint64(len(fed))
	for _, tok := range fed {
		h = h*1000003 + uint64(tok)
	}
	return 10 + int(h%997)
}

// Expected is what the fake model generates for prompt with no scheduler in
// between: the token of nextToken, one at a time, until maxTokens, the
// context or the script's EOS (eosAt is the 1-based output index at which
// the fake returns EOS, 0 for never).
func Expected(prompt []int, maxTokens, context, eosAt int) []int {
	seq := slices.Clone(prompt)
	var out []int
	for len(out) < maxTokens && len(seq) < context {
		tok := nextToken(seq)
		if len(out)+1 == eosAt {
			tok = EOSToken
		}
		seq = append(seq, tok)
		out = append(out, tok)
		if tok == EOSToken {
			break
		}
	}
	return out
}

// Call is one chunk the fake model was asked to compute.
type Call struct {
	ID, Start, Len int
}

// KVStore is the part of a block manager the fake writes and reads keys and
// values through (Day 3): it stores each position it computes and reads back
// every earlier one, so pages that two requests share by mistake, or that
// are handed out while still in use, show as wrong values.
type KVStore interface {
	Write(seq *llm.Sequence, layer, pos int, k, v []float32) error
	Read(seq *llm.Sequence, layer, pos int) (k, v []float32, err error)
}

// KVLayers and KVWidth are the shape of the pool the fake writes through:
// 2 layers, 1 key/value head of dimension 4.
const (
	KVLayers = 2
	KVWidth  = 4
)

// Fake is the scripted model runner.
type Fake struct {
	t        *testing.T
	what     string
	pageSize int
	// Steps holds the chunks of every Run call, in order.
	Steps [][]Call
	// FailAt is the Run call (1-based) that returns ErrInjected; 0 never.
	FailAt int
	// EOSAt maps a request id to the 1-based output index at which the
	// fake returns EOSToken.
	EOSAt map[int]int
	// KV, when set, receives every computed position's keys and values.
	KV KVStore
	// Before, when set, is called with every batch before it is computed.
	Before func(batch llm.Batch)
	// Names maps request ids to the names the reports use.
	Names map[int]string
	fed   map[int][]int // per request: the tokens it has computed, as a KV cache holds them
}

// name is how the reports call request id: its script name, else its id.
func (f *Fake) name(id int) string {
	if n, ok := f.Names[id]; ok {
		return n
	}
	return fmt.Sprint(id)
}

// ErrInjected is the error of the fake's failing step.
var ErrInjected = errors.New("injected model failure")

// NewFake returns a fake model for engines whose pages hold pageSize
// positions; what names the check in its reports.
func NewFake(t *testing.T, what string, pageSize int) *Fake {
	return &Fake{t: t, what: what, pageSize: pageSize, EOSAt: map[int]int{}, Names: map[int]string{}, fed: map[int][]int{}}
}

// kvValue is the key (sign +1) or value (sign -1) the fake stores at one
// position of one layer of one request: distinct for every combination and
// exact in float32.
func kvValue(id, pos, layer, j int, sign float32) float32 {
	return sign * float32((((id%64)*1024+pos%1024)*KVLayers+layer)*KVWidth+j+1)
}

// Run checks the batch against the engine's contract, records it, and
// returns the next token of every chunk that samples.
func (f *Fake) Run(batch llm.Batch) ([]int, error) {
	f.t.Helper()
	step := len(f.Steps) + 1
	calls := make([]Call, len(batch))
	for i, c := range batch {
		calls[i] = Call{c.Seq.ID, c.Start, c.Len}
	}
	f.Steps = append(f.Steps, calls)
	if f.Before != nil {
		f.Before(batch)
	}
	seen := map[int]bool{}
	bad := false
	report := func(format string, args ...any) {
		f.t.Errorf(format, args...)
		bad = true
	}
	for _, c := range batch {
		s := c.Seq
		at := fmt.Sprintf("%s: model step %d, request %s positions %d…%d", f.what, step, f.name(s.ID), c.Start, c.Start+c.Len-1)
		switch {
		case seen[s.ID]:
			report("%s: the request is twice in one batch", at)
		case c.Len < 1 || c.Start < 0 || c.Start+c.Len > s.Len():
			report("%s: the chunk is not inside the request's %d tokens", at, s.Len())
		case c.Start != s.NumCached:
			report("%s: the chunk starts at %d but the request's NumCached is %d", at, c.Start, s.NumCached)
		case c.Start != 0 && c.Start != len(f.fed[s.ID]):
			report("%s: the model has computed %d positions of this request; a chunk continues at the next one (or starts over at 0 after a preemption)",
				at, len(f.fed[s.ID]))
		case len(s.BlockTable)*f.pageSize < c.Start+c.Len:
			report("%s: its block table holds %d pages of %d positions, too few for position %d: pages are allocated before the model runs",
				at, len(s.BlockTable), f.pageSize, c.Start+c.Len-1)
		case s.Status != llm.SeqRunning:
			report("%s: the request's status is %v, want running", at, s.Status)
		}
		seen[s.ID] = true
	}
	if bad {
		return nil, fmt.Errorf("the fake model refused a batch that breaks the engine's contract (see the errors above)")
	}
	if step == f.FailAt {
		return nil, ErrInjected
	}
	next := make([]int, len(batch))
	for i, c := range batch {
		s := c.Seq
		if c.Start == 0 {
			f.fed[s.ID] = nil
		}
		if f.KV != nil {
			f.checkKV(step, s, c.Start, c.Len)
		}
		f.fed[s.ID] = append(f.fed[s.ID], c.Tokens()...)
		next[i] = -1
		if c.Samples() {
			next[i] = nextToken(f.fed[s.ID])
			if f.EOSAt[s.ID] == s.NumOutput()+1 {
				next[i] = EOSToken
			}
		}
	}
	return next, nil
}

// checkKV reads back positions 0 … start-1 of s, which the fake stored in
// earlier steps, then stores positions start … start+n-1.
func (f *Fake) checkKV(step int, s *llm.Sequence, start, n int) {
	f.t.Helper()
	for pos := 0; pos < start; pos++ {
		for layer := range KVLayers {
			k, v, err := f.KV.Read(s, layer, pos)
			if err != nil {
				f.t.Errorf("%s: model step %d: Read(request %s, layer %d, position %d): %v", f.what, step, f.name(s.ID), layer, pos, err)
				return
			}
			for j := range KVWidth {
				if len(k) != KVWidth || len(v) != KVWidth || k[j] != kvValue(s.ID, pos, layer, j, 1) || v[j] != kvValue(s.ID, pos, layer, j, -1) {
					f.t.Errorf("%s: model step %d: request %s, layer %d, position %d reads back keys %v values %v, not what was written (a page given to two requests, or freed while in use?)",
						f.what, step, f.name(s.ID), layer, pos, k, v)
					return
				}
			}
		}
	}
	for pos := start; pos < start+n; pos++ {
		for layer := range KVLayers {
			k, v := make([]float32, KVWidth), make([]float32, KVWidth)
			for j := range KVWidth {
				k[j], v[j] = kvValue(s.ID, pos, layer, j, 1), kvValue(s.ID, pos, layer, j, -1)
			}
			if err := f.KV.Write(s, layer, pos, k, v); err != nil {
				f.t.Errorf("%s: model step %d: Write(request %s, layer %d, position %d): %v", f.what, step, f.name(s.ID), layer, pos, err)
			}
		}
	}
}

// Pages is a BlockAllocator that only counts: pages are ids with an owner,
// no storage. Day 2 runs on it, so its checks do not depend on Day 3.
type Pages struct {
	pageSize int
	owner    []int // request id holding each page, -1 if free
	free     []int
}

// NewPages returns numPages free pages of pageSize positions.
func NewPages(pageSize, numPages int) *Pages {
	p := &Pages{pageSize: pageSize, owner: make([]int, numPages)}
	for i := numPages - 1; i >= 0; i-- {
		p.owner[i] = -1
		p.free = append(p.free, i)
	}
	return p
}

// PageSize is the number of positions of a page.
func (p *Pages) PageSize() int { return p.pageSize }

// NumPages is the size of the pool.
func (p *Pages) NumPages() int { return len(p.owner) }

// NumFreePages is the number of pages nobody holds.
func (p *Pages) NumFreePages() int { return len(p.free) }

// Allocate grows seq's table to n positions, or fails with ErrOutOfPages.
func (p *Pages) Allocate(seq *llm.Sequence, n int) error {
	need := llm.PagesFor(n, p.pageSize) - len(seq.BlockTable)
	if need > len(p.free) {
		return fmt.Errorf("counting allocator: request %d needs %d pages, %d free: %w", seq.ID, need, len(p.free), llm.ErrOutOfPages)
	}
	for range max(need, 0) {
		page := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		p.owner[page] = seq.ID
		seq.BlockTable = append(seq.BlockTable, page)
	}
	return nil
}

// Free returns seq's pages; a page it does not hold is an error.
func (p *Pages) Free(seq *llm.Sequence) error {
	for _, page := range seq.BlockTable {
		if page < 0 || page >= len(p.owner) || p.owner[page] != seq.ID {
			return fmt.Errorf("counting allocator: request %d frees page %d, which it does not hold", seq.ID, page)
		}
	}
	for _, page := range seq.BlockTable {
		p.owner[page] = -1
		p.free = append(p.free, page)
	}
	seq.BlockTable = seq.BlockTable[:0]
	seq.NumCached = 0
	return nil
}

// CountingAllocator is the NewAllocatorFunc of Day 2's checks.
func CountingAllocator(_ *testing.T, pageSize, numPages int) llm.BlockAllocator {
	return NewPages(pageSize, numPages)
}
