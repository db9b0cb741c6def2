package w3d2

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// Request is one request of a scripted run.
type Request struct {
	Name      string // one letter, how the expected sequences name it
	Arrive    int    // the step (1-based) before which it is added
	Prompt    int    // prompt length
	MaxTokens int
	EOSAt     int // 1-based output index at which the fake returns EOS; 0 for never
}

// Setup is an engine's configuration in a scripted run.
type Setup struct {
	Budget, Seqs, PageSize, Pages, Context int
}

func (s Setup) String() string {
	return fmt.Sprintf("max_num_batched_tokens=%d max_num_seqs=%d, %d pages of %d positions, context %d",
		s.Budget, s.Seqs, s.Pages, s.PageSize, s.Context)
}

func (s Setup) config() llm.EngineConfig {
	return llm.EngineConfig{MaxNumBatchedTokens: s.Budget, MaxNumSeqs: s.Seqs, MaxContext: s.Context, EOS: []int{EOSToken}}
}

// PromptFor is the prompt of a request: tokens that differ between requests,
// so a chunk fed with another request's tokens changes what the fake returns.
func PromptFor(name string, n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = 10 + (int(name[0])*37+i*11)%900
	}
	return p
}

// Run is a scripted run in progress: an engine, its fake model and
// allocator, and the requests added so far.
type Run struct {
	t      *testing.T
	What   string
	Setup  Setup
	Engine llm.Engine
	Fake   *Fake
	Alloc  llm.BlockAllocator
	Seqs   map[string]*llm.Sequence
	names  map[int]string
	reqs   []Request
	order  []*llm.Sequence // in order of arrival
	// Log is one line per engine step: the chunks of its model call, or "-".
	Log []string
	// StepErrs is the error of every engine step, nil for most.
	StepErrs []error
	step     int
}

// Start builds the engine of a scripted run. It returns nil (after failing
// the test) if the day's NewEngine refuses a valid configuration.
func Start(t *testing.T, what string, newEngine NewEngineFunc, newAlloc NewAllocatorFunc, s Setup, reqs []Request) *Run {
	t.Helper()
	r := &Run{t: t, What: what, Setup: s, reqs: reqs, Seqs: map[string]*llm.Sequence{}, names: map[int]string{}}
	// The whole script, once; the test prints it only if it fails.
	var script []string
	for _, q := range reqs {
		line := fmt.Sprintf("%s: %d prompt tokens, max %d tokens, arrives before step %d", q.Name, q.Prompt, q.MaxTokens, q.Arrive)
		if q.EOSAt > 0 {
			line += fmt.Sprintf(", EOS as its token %d", q.EOSAt)
		}
		script = append(script, line)
	}
	t.Logf("%s: %s; requests:\n  %s", what, s, strings.Join(script, "\n  "))
	r.Alloc = newAlloc(t, s.PageSize, s.Pages)
	r.Fake = NewFake(t, what, s.PageSize)
	eng, err := newEngine(s.config(), r.Fake, r.Alloc)
	if err != nil {
		t.Fatalf("%s: NewEngine(%s) refused a valid configuration: %v", what, s, err)
	}
	r.Engine = eng
	return r
}

// Chunk names a call as the expected sequences do: A[0:8] is positions 0
// to 7 of request A, in Go's slice notation.
func (r *Run) Chunk(c Call) string {
	return fmt.Sprintf("%s[%d:%d]", r.names[c.ID], c.Start, c.Start+c.Len)
}

// Step adds the requests that arrive before the next step, then runs it.
// It reports false when there was nothing to run and nothing arrives later.
func (r *Run) Step() bool {
	r.t.Helper()
	r.step++
	pending := false
	for _, q := range r.reqs {
		switch {
		case q.Arrive == r.step:
			seq, err := r.Engine.AddRequest(PromptFor(q.Name, q.Prompt), q.MaxTokens)
			if err != nil {
				r.t.Fatalf("%s: AddRequest of request %s (%d prompt tokens, max %d) before step %d: %v", r.What, q.Name, q.Prompt, q.MaxTokens, r.step, err)
			}
			if seq == nil {
				r.t.Fatalf("%s: AddRequest of request %s returned no sequence and no error", r.What, q.Name)
			}
			if _, dup := r.names[seq.ID]; dup {
				r.t.Fatalf("%s: AddRequest gave request %s the id %d of request %s", r.What, q.Name, seq.ID, r.names[seq.ID])
			}
			r.Seqs[q.Name], r.names[seq.ID], r.Fake.Names[seq.ID] = seq, q.Name, q.Name
			r.order = append(r.order, seq)
			if q.EOSAt > 0 {
				r.Fake.EOSAt[seq.ID] = q.EOSAt
			}
		case q.Arrive > r.step:
			pending = true
		}
	}
	if !r.Engine.HasWork() && !pending {
		r.step--
		return false
	}
	calls := len(r.Fake.Steps)
	_, err := r.Engine.Step()
	r.StepErrs = append(r.StepErrs, err)
	line := "-"
	if len(r.Fake.Steps) > calls {
		var parts []string
		for _, c := range r.Fake.Steps[len(r.Fake.Steps)-1] {
			parts = append(parts, r.Chunk(c))
		}
		line = strings.Join(parts, " ")
	}
	if err != nil {
		line += fmt.Sprintf(" (Step returned the error %q)", err)
	}
	r.Log = append(r.Log, line)
	r.CheckPages()
	return true
}

// CheckPages fails the test unless the pages in use are exactly the pages
// of the unfinished requests' block tables, and no finished request holds a
// page: the invariant that makes a leak visible on the step it happens.
func (r *Run) CheckPages() {
	r.t.Helper()
	held := 0
	for _, s := range r.order {
		if s.Finished() {
			if len(s.BlockTable) != 0 {
				r.t.Errorf("%s: after step %d, request %s is finished (%s) but its block table still holds pages %v",
					r.What, r.step, r.names[s.ID], s.Finish, s.BlockTable)
			}
			continue
		}
		held += len(s.BlockTable)
	}
	inUse := r.Alloc.NumPages() - r.Alloc.NumFreePages()
	if inUse != held {
		r.t.Errorf("%s: after step %d, %d pages are in use but the unfinished requests' block tables hold %d: a leak (or a table that lost its pages)",
			r.What, r.step, inUse, held)
	}
}

// Finish runs steps until nothing is left, at most limit of them.
func (r *Run) Finish(limit int) {
	r.t.Helper()
	for r.Step() {
		if r.step >= limit {
			r.t.Fatalf("%s: still running after %d steps; the steps so far:\n%s", r.What, limit, r.Steps())
		}
	}
	if free, all := r.Alloc.NumFreePages(), r.Alloc.NumPages(); free != all {
		r.t.Errorf("%s: every request is done but %d of %d pages are in use", r.What, all-free, all)
	}
}

// Steps renders the log, one numbered line per step.
func (r *Run) Steps() string {
	var b strings.Builder
	for i, l := range r.Log {
		fmt.Fprintf(&b, "  step %d: %s\n", i+1, l)
	}
	return b.String()
}

// CheckOutputs fails the test unless every request generated what the fake
// model generates for it alone (Expected), finished for the right reason.
func (r *Run) CheckOutputs() {
	r.t.Helper()
	for _, q := range r.reqs {
		s := r.Seqs[q.Name]
		if s == nil {
			continue
		}
		want := Expected(PromptFor(q.Name, q.Prompt), q.MaxTokens, r.Setup.Context, q.EOSAt)
		if !slices.Equal(s.Output(), want) {
			r.t.Errorf("%s: request %s generated %v, want %v (what the model gives it alone; a request recomputed after a preemption must give the same)",
				r.What, q.Name, s.Output(), want)
		}
		why := llm.FinishLength
		if q.EOSAt > 0 && q.EOSAt <= len(want) && want[len(want)-1] == EOSToken {
			why = llm.FinishStop
		}
		if s.Status != llm.SeqFinished || s.Finish != why {
			r.t.Errorf("%s: request %s ends with status %v, finish reason %q; want finished, %q", r.What, q.Name, s.Status, s.Finish, why)
		}
	}
}
