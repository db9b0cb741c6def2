package w3d2

import (
	"errors"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// NewKVStoreFunc returns the KVStore of an allocator made by a
// NewAllocatorFunc, or nil when it stores nothing (Day 2's counting one).
type NewKVStoreFunc func(alloc llm.BlockAllocator) KVStore

// Faults checks that no page leaks, whatever ends a request: it finishes,
// it is cancelled while waiting, in prefill or in decode, the model fails on
// a step that prefills it or on one that decodes it, it is preempted. After
// every step the pages in use must be exactly those of the unfinished
// requests' block tables, and at the end none. Day 2 runs it on a counting
// allocator, Day 3 on its block manager, with kv set so that the fake model
// also writes every position's keys and values through the block tables and
// reads the earlier ones back.
func Faults(t *testing.T, task string, newEngine NewEngineFunc, newAlloc NewAllocatorFunc, kv NewKVStoreFunc) {
	t.Helper()
	grade.PointToChapter(t, task)
	start := func(t *testing.T, what string, s Setup, reqs []Request) *Run {
		t.Helper()
		r := Start(t, what, newEngine, newAlloc, s, reqs)
		if kv != nil {
			r.Fake.KV = kv(r.Alloc)
		}
		return r
	}
	scenarios := []struct {
		name string
		run  func(t *testing.T, what string)
	}{
		{"finish", func(t *testing.T, what string) {
			s := Setup{Budget: 6, Seqs: 4, PageSize: 2, Pages: 32, Context: 64}
			r := start(t, what, s, []Request{{Name: "A", Arrive: 1, Prompt: 3, MaxTokens: 4}, {Name: "B", Arrive: 1, Prompt: 5, MaxTokens: 3},
				{Name: "C", Arrive: 2, Prompt: 2, MaxTokens: 2, EOSAt: 1}})
			r.Finish(40)
			r.CheckOutputs()
		}},
		{"cancel", func(t *testing.T, what string) { cancelScenario(t, what, start) }},
		{"model_fails_in_prefill", func(t *testing.T, what string) {
			s := Setup{Budget: 6, Seqs: 4, PageSize: 2, Pages: 16, Context: 64}
			reqs := []Request{{Name: "A", Arrive: 1, Prompt: 8, MaxTokens: 3}, {Name: "B", Arrive: 1, Prompt: 2, MaxTokens: 3},
				{Name: "C", Arrive: 3, Prompt: 3, MaxTokens: 2}}
			r := start(t, what, s, reqs)
			r.Fake.FailAt = 2 // A's last prompt chunk and B's whole prompt
			failScenario(t, what, r, []string{"A", "B"}, true)
		}},
		{"model_fails_in_decode", func(t *testing.T, what string) {
			s := Setup{Budget: 6, Seqs: 4, PageSize: 2, Pages: 16, Context: 64}
			reqs := []Request{{Name: "A", Arrive: 1, Prompt: 3, MaxTokens: 5}, {Name: "B", Arrive: 1, Prompt: 2, MaxTokens: 5},
				{Name: "C", Arrive: 4, Prompt: 3, MaxTokens: 2}}
			r := start(t, what, s, reqs)
			r.Fake.FailAt = 3 // the second decode of A and B
			failScenario(t, what, r, []string{"A", "B"}, false)
		}},
		{"preempted", func(t *testing.T, what string) {
			tc := preemptCases[0]
			r := start(t, what, tc.setup, tc.reqs)
			for r.Step() {
				if b := r.Seqs["B"]; b != nil && b.Preemptions > 0 && b.Status == llm.SeqWaiting && len(b.BlockTable) != 0 {
					t.Errorf("%s: after step %d request B is preempted (waiting) but holds pages %v", what, len(r.Log), b.BlockTable)
				}
				if len(r.Log) > 20 {
					t.Fatalf("%s: still running after 20 steps:\n%s", what, r.Steps())
				}
			}
			if b := r.Seqs["B"]; b == nil || b.Preemptions == 0 {
				t.Errorf("%s: request B was never preempted; this scenario needs the preemption of Task 3:\n%s", what, r.Steps())
			}
			r.Finish(20)
			r.CheckOutputs()
		}},
	}
	for _, sc := range scenarios {
		stubbed := false
		t.Run(sc.name, func(t *testing.T) {
			what := task + ", scenario " + sc.name
			stubbed = grade.Run(t, what, func() { sc.run(t, what) })
		})
		if stubbed {
			return
		}
	}
}

// cancelScenario cancels a waiting request, one in the middle of its
// prefill and one decoding, and checks each gives its pages back at once.
func cancelScenario(t *testing.T, what string, start func(*testing.T, string, Setup, []Request) *Run) {
	t.Helper()
	// Budget 4: step 1 is A[0:4] with B and C waiting; step 2 is A[4:7]
	// and B[0:1], B in the middle of its prompt; step 3 decodes A.
	s := Setup{Budget: 4, Seqs: 4, PageSize: 2, Pages: 8, Context: 64}
	r := start(t, what, s, []Request{{Name: "A", Arrive: 1, Prompt: 7, MaxTokens: 3}, {Name: "B", Arrive: 1, Prompt: 3, MaxTokens: 5},
		{Name: "C", Arrive: 1, Prompt: 2, MaxTokens: 2}})
	cancel := func(name string, wantStatus llm.SeqStatus) {
		t.Helper()
		seq := r.Seqs[name]
		if seq.Status != wantStatus {
			t.Fatalf("%s: after step %d request %s is %v; this scenario cancels it while %v (the steps so far, under Task 2's policy, should be A[0:4], A[4:7] B[0:1], A[7:8]):\n%s",
				what, len(r.Log), name, seq.Status, wantStatus, r.Steps())
		}
		held, free := len(seq.BlockTable), r.Alloc.NumFreePages()
		if err := r.Engine.Cancel(seq.ID); err != nil {
			t.Fatalf("%s: Cancel(%d) of %v request %s: %v", what, seq.ID, wantStatus, name, err)
		}
		if seq.Status != llm.SeqFinished || seq.Finish != llm.FinishCancelled {
			t.Errorf("%s: after Cancel request %s is %v with finish reason %q, want finished, %q", what, name, seq.Status, seq.Finish, llm.FinishCancelled)
		}
		if got := r.Alloc.NumFreePages(); got != free+held {
			t.Errorf("%s: request %s held %d pages; after Cancel %d pages are free, want %d: a cancelled request's pages go back at once",
				what, name, held, got, free+held)
		}
		r.CheckPages()
	}
	r.Step()
	cancel("C", llm.SeqWaiting)
	r.Step()
	b := r.Seqs["B"]
	if b.NumCached == 0 || b.NumCached >= b.NumPrompt {
		t.Fatalf("%s: after step 2 request B has %d of its %d prompt positions cached; this scenario cancels it in the middle of its prefill:\n%s",
			what, b.NumCached, b.NumPrompt, r.Steps())
	}
	cancel("B", llm.SeqRunning)
	r.Step()
	cancel("A", llm.SeqRunning)
	if r.Engine.HasWork() {
		t.Errorf("%s: every request is cancelled but HasWork is true", what)
	}
	if err := r.Engine.Cancel(r.Seqs["A"].ID); err == nil {
		t.Errorf("%s: cancelling request A a second time was accepted; it is finished, Cancel must return an error", what)
	}
	if err := r.Engine.Cancel(12345); err == nil {
		t.Errorf("%s: Cancel(12345), an id never given, was accepted; it must return an error", what)
	}
	r.Finish(10)
	for _, l := range r.Log[3:] {
		t.Errorf("%s: a step after every request was cancelled still called the model: %s", what, l)
	}
}

// failScenario runs r, whose fake fails at r.Fake.FailAt, and checks that
// exactly the requests failed are finished with FinishError, their pages
// freed, the step's error wrapping the model's, and that the rest run to
// the end. inPrefill says whether the failing step is a prefill of them.
func failScenario(t *testing.T, what string, r *Run, failed []string, inPrefill bool) {
	t.Helper()
	r.Finish(40)
	if len(r.Fake.Steps) < r.Fake.FailAt {
		t.Fatalf("%s: the model was called %d times; the fault is injected at call %d", what, len(r.Fake.Steps), r.Fake.FailAt)
	}
	// The failing call, as the scenario means it: a prefill or a decode
	// of the named requests.
	var got []string
	for _, c := range r.Fake.Steps[r.Fake.FailAt-1] {
		name := r.names[c.ID]
		got = append(got, name)
		prefill := c.Start < r.Seqs[name].NumPrompt
		if prefill != inPrefill {
			t.Errorf("%s: the failing model call %s is not the %s this scenario means (steps:\n%s)",
				what, r.Chunk(c), map[bool]string{true: "prefill", false: "decode"}[inPrefill], r.Steps())
		}
	}
	if !slices.Equal(got, failed) {
		t.Errorf("%s: the failing model call computed requests %v, want %v (steps:\n%s)", what, got, failed, r.Steps())
	}
	failStep := -1
	for i, err := range r.StepErrs {
		if err != nil {
			if failStep >= 0 {
				t.Errorf("%s: step %d returned an error too: %v", what, i+1, err)
			}
			failStep = i
			if !errors.Is(err, ErrInjected) {
				t.Errorf("%s: step %d returned %q, which does not wrap the model's error (use %%w)", what, i+1, err)
			}
		}
	}
	if failStep < 0 {
		t.Errorf("%s: the model failed but no Step returned an error", what)
	}
	for _, name := range failed {
		s := r.Seqs[name]
		if s.Status != llm.SeqFinished || s.Finish != llm.FinishError || !errors.Is(s.Err, ErrInjected) {
			t.Errorf("%s: request %s, computed by the failing step, ends %v with finish reason %q and Err %v; want finished, %q, the model's error",
				what, name, s.Status, s.Finish, s.Err, llm.FinishError)
		}
	}
	for _, q := range r.reqs {
		if slices.Contains(failed, q.Name) {
			continue
		}
		s := r.Seqs[q.Name]
		want := Expected(PromptFor(q.Name, q.Prompt), q.MaxTokens, r.Setup.Context, q.EOSAt)
		if s.Finish != llm.FinishLength || !slices.Equal(s.Output(), want) {
			t.Errorf("%s: request %s, not in the failing step, ends with %q and output %v; want %q and %v: a failure ends only the requests of its step",
				what, q.Name, s.Finish, s.Output(), llm.FinishLength, want)
		}
	}
}
