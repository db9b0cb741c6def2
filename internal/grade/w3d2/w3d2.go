package w3d2

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// scheduleCase is a scripted run with its expected model calls, derived by
// hand from the policy of the chapter (and of Scheduler.Schedule's doc).
type scheduleCase struct {
	name  string
	setup Setup
	reqs  []Request
	// want is one line per step: the chunks of the model call, in batch
	// order (running requests first, oldest first; then admitted ones).
	want []string
	// preempted is how often each request is preempted (unnamed: 0).
	preempted map[string]int
}

// Task 2: prompts in chunks under the budget, decodes in the same steps.
var chunkCases = []scheduleCase{
	{
		// 10 prompt tokens under a budget of 4: two full chunks, then the
		// rest, which samples the first token; then one decode.
		name:  "one_prompt_in_chunks",
		setup: Setup{Budget: 4, Seqs: 4, PageSize: 4, Pages: 64, Context: 64},
		reqs:  []Request{{Name: "A", Arrive: 1, Prompt: 10, MaxTokens: 2}},
		want:  []string{"A[0:4]", "A[4:8]", "A[8:10]", "A[10:11]"},
	},
	{
		// A decodes (1 token) first; B's 9-token prompt takes the other 5
		// of the budget, then its last 4.
		name:  "decodes_ride_with_a_chunk",
		setup: Setup{Budget: 6, Seqs: 4, PageSize: 4, Pages: 64, Context: 64},
		reqs:  []Request{{Name: "A", Arrive: 1, Prompt: 3, MaxTokens: 4}, {Name: "B", Arrive: 2, Prompt: 9, MaxTokens: 2}},
		want:  []string{"A[0:3]", "A[3:4] B[0:5]", "A[4:5] B[5:9]", "A[5:6] B[9:10]"},
	},
	{
		// Any waiting request may be chunked, not only the first: B gets
		// the 2 tokens A leaves.
		name:  "two_prompts_share_a_budget",
		setup: Setup{Budget: 5, Seqs: 4, PageSize: 4, Pages: 64, Context: 64},
		reqs:  []Request{{Name: "A", Arrive: 1, Prompt: 3, MaxTokens: 1}, {Name: "B", Arrive: 1, Prompt: 4, MaxTokens: 1}},
		want:  []string{"A[0:3] B[0:2]", "B[2:4]"},
	},
	{
		// A running prefill continues before a new request starts.
		name:  "arrival_during_a_prefill",
		setup: Setup{Budget: 4, Seqs: 4, PageSize: 4, Pages: 64, Context: 64},
		reqs:  []Request{{Name: "A", Arrive: 1, Prompt: 6, MaxTokens: 1}, {Name: "B", Arrive: 2, Prompt: 3, MaxTokens: 2}},
		want:  []string{"A[0:4]", "A[4:6] B[0:2]", "B[2:3]", "B[3:4]"},
	},
	{
		// Two sequences a step: C waits for B to finish.
		name:  "max_num_seqs",
		setup: Setup{Budget: 16, Seqs: 2, PageSize: 4, Pages: 64, Context: 64},
		reqs: []Request{{Name: "A", Arrive: 1, Prompt: 2, MaxTokens: 3}, {Name: "B", Arrive: 1, Prompt: 2, MaxTokens: 1},
			{Name: "C", Arrive: 1, Prompt: 2, MaxTokens: 1}},
		want: []string{"A[0:2] B[0:2]", "A[2:3] C[0:2]", "A[3:4]"},
	},
	{
		// 4 pages of 4: A takes 3. B needs 2 and waits; C would fit in the
		// last page but does not overtake B. A's pages come back only after
		// its last step, so B and C start in step 3.
		name:  "pages_keep_arrival_order",
		setup: Setup{Budget: 32, Seqs: 4, PageSize: 4, Pages: 4, Context: 64},
		reqs: []Request{{Name: "A", Arrive: 1, Prompt: 10, MaxTokens: 2}, {Name: "B", Arrive: 1, Prompt: 8, MaxTokens: 1},
			{Name: "C", Arrive: 1, Prompt: 2, MaxTokens: 1}},
		want: []string{"A[0:10]", "A[10:11]", "B[0:8] C[0:2]"},
	},
	{
		// The fake returns EOS as A's second token: A stops there.
		name:  "eos_stops_a_request",
		setup: Setup{Budget: 8, Seqs: 4, PageSize: 4, Pages: 64, Context: 64},
		reqs:  []Request{{Name: "A", Arrive: 1, Prompt: 2, MaxTokens: 10, EOSAt: 2}},
		want:  []string{"A[0:2]", "A[2:3]"},
	},
	{
		// A context of 6: a 4-token prompt generates 2 tokens.
		name:  "context_ends_a_request",
		setup: Setup{Budget: 8, Seqs: 4, PageSize: 4, Pages: 64, Context: 6},
		reqs:  []Request{{Name: "A", Arrive: 1, Prompt: 4, MaxTokens: 10}},
		want:  []string{"A[0:4]", "A[4:5]"},
	},
}

// Task 3: preemption of the newest running request.
var preemptCases = []scheduleCase{
	{
		// 4 pages of 2 positions. In step 3 A needs a third page: B, the
		// newest, gives its two back and waits; it comes back when A is done
		// and recomputes its prompt and its 2 tokens (positions 0 to 4).
		name:      "newest_is_preempted",
		setup:     Setup{Budget: 16, Seqs: 4, PageSize: 2, Pages: 4, Context: 64},
		reqs:      []Request{{Name: "A", Arrive: 1, Prompt: 3, MaxTokens: 4}, {Name: "B", Arrive: 1, Prompt: 3, MaxTokens: 4}},
		want:      []string{"A[0:3] B[0:3]", "A[3:4] B[3:4]", "A[4:5]", "A[5:6]", "B[0:5]", "B[5:6]"},
		preempted: map[string]int{"B": 1},
	},
	{
		// In step 2 B, the newest, is the one that needs a page: it
		// preempts itself and A runs alone.
		name:      "newest_preempts_itself",
		setup:     Setup{Budget: 16, Seqs: 4, PageSize: 2, Pages: 4, Context: 64},
		reqs:      []Request{{Name: "A", Arrive: 1, Prompt: 3, MaxTokens: 3}, {Name: "B", Arrive: 1, Prompt: 4, MaxTokens: 3}},
		want:      []string{"A[0:3] B[0:4]", "A[3:4]", "A[4:5]", "B[0:5]", "B[5:6]"},
		preempted: map[string]int{"B": 1},
	},
	{
		// Budget 3, 4 pages of 2. Step 4: A's third page costs B; the 2
		// tokens left of the budget would fit a chunk of B in the page
		// that is free, but a step that preempts admits no one (else B
		// would be preempted and readmitted in turns). B starts over in
		// step 5.
		name:  "no_admission_in_a_preempting_step",
		setup: Setup{Budget: 3, Seqs: 2, PageSize: 2, Pages: 4, Context: 64},
		reqs:  []Request{{Name: "A", Arrive: 1, Prompt: 2, MaxTokens: 5}, {Name: "B", Arrive: 1, Prompt: 1, MaxTokens: 6}},
		want: []string{"A[0:2] B[0:1]", "A[2:3] B[1:2]", "A[3:4] B[2:3]", "A[4:5]", "A[5:6] B[0:2]",
			"B[2:4]", "B[4:5]", "B[5:6]"},
		preempted: map[string]int{"B": 1},
	},
	{
		// Pages of 1 position: every decode needs a page. Step 2: B's
		// page costs C. Step 3: A's costs B. B and C come back together,
		// B first (it arrived first).
		name:  "two_preemptions",
		setup: Setup{Budget: 16, Seqs: 4, PageSize: 1, Pages: 6, Context: 64},
		reqs: []Request{{Name: "A", Arrive: 1, Prompt: 2, MaxTokens: 3}, {Name: "B", Arrive: 1, Prompt: 2, MaxTokens: 3},
			{Name: "C", Arrive: 1, Prompt: 1, MaxTokens: 3}},
		want:      []string{"A[0:2] B[0:2] C[0:1]", "A[2:3] B[2:3]", "A[3:4]", "B[0:4] C[0:2]", "C[2:3]"},
		preempted: map[string]int{"B": 1, "C": 1},
	},
}

const policy = `the policy: running requests first, oldest first, each taking min(its uncached tokens, budget left); ` +
	`while pages are short, preempt the newest running request; then, if nothing was preempted, ` +
	`waiting requests oldest first the same way, stopping at the first whose pages do not fit`

func runCases(t *testing.T, task string, newEngine NewEngineFunc, cases []scheduleCase) {
	t.Helper()
	grade.PointToChapter(t, task)
	for _, tc := range cases {
		stubbed := false
		t.Run(tc.name, func(t *testing.T) {
			what := fmt.Sprintf("%s, case %s", task, tc.name)
			stubbed = grade.Run(t, what, func() {
				r := Start(t, what, newEngine, CountingAllocator, tc.setup, tc.reqs)
				r.Finish(4 * len(tc.want))
				if !slices.Equal(r.Log, tc.want) {
					var want strings.Builder
					for i, l := range tc.want {
						fmt.Fprintf(&want, "  step %d: %s\n", i+1, l)
					}
					t.Errorf("%s: the model was called with\n%swant\n%s(%s)", what, r.Steps(), want.String(), policy)
				}
				for _, q := range tc.reqs {
					if s := r.Seqs[q.Name]; s != nil && s.Preemptions != tc.preempted[q.Name] {
						t.Errorf("%s: request %s was preempted %d times, want %d", what, q.Name, s.Preemptions, tc.preempted[q.Name])
					}
				}
				r.CheckOutputs()
			})
		})
		if stubbed {
			return
		}
	}
}

// CallSequences checks Task 2: the exact model calls of scripted runs
// without preemption.
func CallSequences(t *testing.T, newEngine NewEngineFunc) {
	runCases(t, "W3D2 Task 2 chunked prefill", newEngine, chunkCases)
}

// Preemption checks Task 3: the exact model calls of scripted runs that
// preempt, the preemption counts, and that a recomputed request generates
// what it generates alone.
func Preemption(t *testing.T, newEngine NewEngineFunc) {
	runCases(t, "W3D2 Task 3 preemption", newEngine, preemptCases)
}

// Admission checks Task 1: configurations and requests that can never run
// are refused with an error, not a panic, and a refused request allocates
// nothing and never reaches the model.
func Admission(t *testing.T, newEngine NewEngineFunc) {
	const task = "W3D2 Task 1 admission"
	grade.PointToChapter(t, task)
	good := Setup{Budget: 8, Seqs: 4, PageSize: 4, Pages: 8, Context: 32}
	configs := []struct {
		name   string
		mutate func(*llm.EngineConfig)
	}{
		{"zero_budget", func(c *llm.EngineConfig) { c.MaxNumBatchedTokens = 0 }},
		{"zero_seqs", func(c *llm.EngineConfig) { c.MaxNumSeqs = 0 }},
		{"more_seqs_than_budget", func(c *llm.EngineConfig) { c.MaxNumSeqs = 9 }},
		{"context_of_one", func(c *llm.EngineConfig) { c.MaxContext = 1 }},
	}
	for _, c := range configs {
		cfg := good.config()
		c.mutate(&cfg)
		t.Run("config_"+c.name, func(t *testing.T) {
			what := fmt.Sprintf("%s: NewEngine(%+v)", task, cfg)
			grade.Run(t, what, func() {
				if _, err := newEngine(cfg, NewFake(t, what, good.PageSize), NewPages(good.PageSize, good.Pages)); err == nil {
					t.Errorf("%s was accepted; it cannot work, NewEngine must return an error", what)
				}
			})
		})
	}
	t.Run("config_no_runner_or_allocator", func(t *testing.T) {
		what := task + ": NewEngine with a nil model runner or a nil allocator"
		grade.Run(t, what, func() {
			if _, err := newEngine(good.config(), nil, NewPages(good.PageSize, good.Pages)); err == nil {
				t.Errorf("%s: a nil runner was accepted", what)
			}
			if _, err := newEngine(good.config(), NewFake(t, what, good.PageSize), nil); err == nil {
				t.Errorf("%s: a nil allocator was accepted", what)
			}
		})
	})

	requests := []struct {
		name     string
		prompt   int
		max      int
		mentions []string // the error must name these
	}{
		{"prompt_longer_than_context", 40, 4, []string{"40", "32"}},
		{"prompt_as_long_as_context", 32, 4, []string{"32"}},
		{"empty_prompt", 0, 4, nil},
		{"zero_max_tokens", 5, 0, nil},
		// 8 pages of 4 hold 32 positions; the context is 32 in the setup
		// above, so use a larger context for this one.
		{"more_pages_than_the_pool", 40, 10, []string{"pages"}},
	}
	for _, q := range requests {
		stubbed := false
		t.Run("request_"+q.name, func(t *testing.T) {
			s := good
			if q.name == "more_pages_than_the_pool" {
				s.Context = 100
			}
			what := fmt.Sprintf("%s: AddRequest(%d prompt tokens, max %d) with %s", task, q.prompt, q.max, s)
			stubbed = grade.Run(t, what, func() {
				pages := NewPages(s.PageSize, s.Pages)
				spy := &spyAllocator{BlockAllocator: pages}
				fake := NewFake(t, what, s.PageSize)
				eng, err := newEngine(s.config(), fake, spy)
				if err != nil {
					t.Fatalf("%s: NewEngine refused a valid configuration: %v", what, err)
				}
				seq, err := eng.AddRequest(PromptFor("A", q.prompt), q.max)
				if err == nil {
					t.Fatalf("%s was accepted (sequence %+v); it can never run and must be refused with an error", what, seq)
				}
				for _, m := range q.mentions {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("%s: the error %q does not say %s; a clear error names the numbers that do not fit", what, err, m)
					}
				}
				for eng.HasWork() && len(fake.Steps) < 10 {
					if _, err := eng.Step(); err != nil {
						t.Errorf("%s: a step after the refusal failed: %v", what, err)
						break
					}
				}
				if spy.allocs != 0 || len(fake.Steps) != 0 || eng.HasWork() {
					t.Errorf("%s: the refused request still got %d allocations and %d model calls (HasWork %v); refuse before allocating",
						what, spy.allocs, len(fake.Steps), eng.HasWork())
				}
			})
		})
		if stubbed {
			return
		}
	}
	t.Run("request_longest_prompt_that_fits", func(t *testing.T) {
		s := good
		what := fmt.Sprintf("%s: AddRequest(%d prompt tokens, max 4) with %s", task, s.Context-1, s)
		grade.Run(t, what, func() {
			r := Start(t, what, newEngine, CountingAllocator, s, []Request{{Name: "A", Arrive: 1, Prompt: s.Context - 1, MaxTokens: 4}})
			r.Finish(20)
			r.CheckOutputs() // one token: the context ends it
		})
	})
}

// spyAllocator counts the Allocate calls that reach an allocator.
type spyAllocator struct {
	llm.BlockAllocator
	allocs int
}

func (s *spyAllocator) Allocate(seq *llm.Sequence, n int) error {
	s.allocs++
	return s.BlockAllocator.Allocate(seq, n)
}

// NoStarvation checks Task 3's promise with random arrivals: in every step
// the oldest unfinished request is in the batch (so it is never preempted
// and never waits behind younger ones), every batch keeps to the budget and
// the sequence limit, every request finishes with the tokens it generates
// alone, within a bound on the number of steps, and no page stays in use.
func NoStarvation(t *testing.T, newEngine NewEngineFunc) {
	const task = "W3D2 Task 3 no starvation"
	grade.PointToChapter(t, task)
	for trial := range 40 {
		rng := rand.New(rand.NewPCG(uint64(trial), 3202))
		ps := []int{1, 2, 4, 8}[rng.IntN(4)]
		budget := 1 + rng.IntN(24)
		s := Setup{Budget: budget, Seqs: 1 + rng.IntN(min(budget, 6)), PageSize: ps, Context: 8 + rng.IntN(33)}
		// The pool holds one request at its longest, plus a random part of
		// a few more: small enough that requests get preempted.
		s.Pages = llm.PagesFor(s.Context-1, ps) + rng.IntN(3*llm.PagesFor(s.Context, ps)+1)
		var reqs []Request
		bound := 0
		for i := range 1 + rng.IntN(12) {
			q := Request{Name: string(rune('A' + i)), Arrive: 1 + rng.IntN(20), Prompt: 1 + rng.IntN(s.Context-1), MaxTokens: 1 + rng.IntN(15)}
			reqs = append(reqs, q)
			bound = max(bound, q.Arrive)
		}
		for _, q := range reqs {
			bound += q.Prompt + q.MaxTokens
		}
		stubbed := false
		t.Run(fmt.Sprintf("trial_%02d", trial), func(t *testing.T) {
			what := fmt.Sprintf("%s, trial %d", task, trial)
			stubbed = grade.Run(t, what, func() {
				r := Start(t, what, newEngine, CountingAllocator, s, reqs)
				r.Fake.Before = func(b llm.Batch) {
					if n := b.NumTokens(); n > s.Budget || len(b) > s.Seqs {
						t.Errorf("%s: model step %d computes %d tokens of %d requests; the budget is %d tokens, %d requests",
							what, len(r.Fake.Steps), n, len(b), s.Budget, s.Seqs)
					}
					var oldest *llm.Sequence
					for _, q := range r.order {
						if !q.Finished() {
							oldest = q
							break
						}
					}
					if oldest != nil && !slices.ContainsFunc(b, func(c llm.ScheduledChunk) bool { return c.Seq == oldest }) {
						t.Errorf("%s: model step %d leaves out request %s, the oldest unfinished one (%v, %d preemptions); under the policy it is always scheduled, so it can never starve",
							what, len(r.Fake.Steps), r.names[oldest.ID], oldest.Status, oldest.Preemptions)
					}
				}
				r.Finish(bound)
				r.CheckOutputs()
			})
		})
		if stubbed || t.Failed() {
			return // one failing trial says enough
		}
	}
}
