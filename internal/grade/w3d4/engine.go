package w3d4

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// StackFunc builds the day's model runner (Week 3 model, paged cache) for a
// checkpoint over a new pool of numPages pages of pageSize positions, and
// the block manager that allocates from that pool.
type StackFunc func(ck *checkpoint.Checkpoint, numPages, pageSize int) (llm.ModelRunner, llm.BlockAllocator, error)

// EngineFunc is the tree's Day 2 NewEngine.
type EngineFunc func(cfg llm.EngineConfig, runner llm.ModelRunner, blocks llm.BlockAllocator) (llm.Engine, error)

// Week2Func is the tree's Week 2 model constructor: the reference each
// request is run through alone.
type Week2Func func(ck *checkpoint.Checkpoint) (llm.CachedModel, error)

// ShippedModel is the model the engine check runs, relative to the
// repository root.
const ShippedModel = "models/tinyqwen-chat"

// OpenShipped opens the shipped model for the rest of the test.
func OpenShipped(t testing.TB) *checkpoint.Checkpoint {
	t.Helper()
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(filepath.Join(root, filepath.FromSlash(ShippedModel)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

// Greedy is the greedy continuation of prompt by m alone: n tokens, with its
// own KV cache, end-of-sequence tokens ignored.
func Greedy(m llm.CachedModel, prompt []int, n int) []int {
	caches := m.NewCaches()
	logits := m.ForwardLast([][]int{prompt}, 0, caches)
	var out []int
	for {
		vocab := logits.Dim(-1)
		row := tensor.New(logits.Data()[logits.Size()-vocab:], vocab)
		tok := tensor.ArgMax(row, 0)[0]
		out = append(out, tok)
		if len(out) == n {
			return out
		}
		logits = m.ForwardLast([][]int{{tok}}, len(prompt)+len(out)-1, caches)
	}
}

// request is one request of the engine check: prompt length, tokens to
// generate, and the step it joins at.
type request struct{ prompt, gen, join int }

// engineCase is a pool and a budget the requests run under.
type engineCase struct {
	name               string
	numPages, pageSize int
	budget, maxSeqs    int
	wantPreemption     bool
	requests           []request
	promptSeed         uint64
}

var engineCases = []engineCase{
	{name: "roomy pool, chunked prefill mixed with decodes", numPages: 64, pageSize: 16, budget: 48, maxSeqs: 4,
		requests: []request{{3, 12, 0}, {17, 20, 0}, {40, 8, 0}, {70, 16, 2}, {9, 24, 5}, {100, 10, 9}}, promptSeed: 1},
	{name: "small pool of 4-position pages: preemption and recompute", numPages: 36, pageSize: 4, budget: 32, maxSeqs: 4,
		wantPreemption: true,
		requests:       []request{{30, 40, 0}, {45, 30, 0}, {12, 50, 0}, {60, 25, 1}, {5, 40, 3}}, promptSeed: 2},
}

// EngineGreedy checks Task 3, the model runner: the tree's Day 2 engine on
// its Day 3 block manager and this day's runner, on the shipped model, gives
// every request exactly the greedy tokens the Week 2 model gives it alone,
// for requests of different prompt lengths that join at different steps,
// with chunked prefill, and in a pool small enough that requests are
// preempted and recomputed; afterwards every page is free.
func EngineGreedy(t *testing.T, stack StackFunc, newEngine EngineFunc, week2 Week2Func) {
	const task = "W3D4 Task 3 Runner"
	grade.PointToChapter(t, task)
	ck := OpenShipped(t)
	var ref llm.CachedModel
	var err error
	if grade.Run(t, task+" (the Week 2 model, the reference)", func() { ref, err = week2(ck) }) {
		return
	}
	if err != nil {
		t.Fatalf("%s: the Week 2 model: %v", task, err)
	}
	vocab := ck.Config.VocabSize
	for _, ec := range engineCases {
		t.Run(ec.name, func(t *testing.T) {
			what := task + ", " + ec.name
			rng := rand.New(rand.NewPCG(ec.promptSeed, 17))
			prompts := make([][]int, len(ec.requests))
			want := make([][]int, len(ec.requests))
			for i, r := range ec.requests {
				prompts[i] = make([]int, r.prompt)
				for j := range prompts[i] {
					prompts[i][j] = rng.IntN(vocab)
				}
			}
			if grade.Run(t, what+" (the Week 2 model alone, the reference)", func() {
				for i, r := range ec.requests {
					want[i] = Greedy(ref, prompts[i], r.gen)
				}
			}) {
				return
			}
			var runner llm.ModelRunner
			var blocks llm.BlockAllocator
			if grade.Run(t, what+" (building the runner)", func() { runner, blocks, err = stack(ck, ec.numPages, ec.pageSize) }) {
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			cfg := llm.EngineConfig{MaxNumBatchedTokens: ec.budget, MaxNumSeqs: ec.maxSeqs, MaxContext: ck.Config.MaxPositionEmbeddings}
			e, err := newEngine(cfg, runner, blocks)
			if err != nil {
				t.Fatalf("%s: the engine: %v", what, err)
			}
			seqs := make([]*llm.Sequence, len(ec.requests))
			peak := 0
			for step := 0; ; step++ {
				for i, r := range ec.requests {
					if r.join == step {
						if seqs[i], err = e.AddRequest(prompts[i], r.gen); err != nil {
							t.Fatalf("%s: request %d refused: %v", what, i, err)
						}
					}
				}
				if !e.HasWork() && step > lastJoin(ec.requests) {
					break
				}
				if step > 20000 {
					t.Fatalf("%s: still running after %d steps", what, step)
				}
				var stepErr error
				if grade.Run(t, fmt.Sprintf("%s, step %d", what, step), func() { _, stepErr = e.Step() }) {
					return
				}
				if stepErr != nil {
					t.Fatalf("%s: step %d: %v", what, step, stepErr)
				}
				peak = max(peak, blocks.NumPages()-blocks.NumFreePages())
			}
			preempted := 0
			for i, s := range seqs {
				preempted += s.Preemptions
				if s.Finish != llm.FinishLength {
					t.Errorf("%s: request %d finished with %q (%v), want %q after %d tokens", what, i, s.Finish, s.Err, llm.FinishLength, ec.requests[i].gen)
				}
				got := s.Output()
				if msg := firstDiff(got, want[i]); msg != "" {
					t.Errorf("%s: request %d (prompt of %d tokens, joined at step %d, preempted %d times): %s",
						what, i, ec.requests[i].prompt, ec.requests[i].join, s.Preemptions, msg)
				}
			}
			if ec.wantPreemption && preempted == 0 {
				t.Errorf("%s: no request was preempted in a pool of %d pages (peak %d in use): the case does not test what it should", what, ec.numPages, peak)
			}
			if free := blocks.NumFreePages(); free != blocks.NumPages() {
				t.Errorf("%s: %d of %d pages still in use after every request finished", what, blocks.NumPages()-free, blocks.NumPages())
			}
			t.Logf("%s: %d requests, %d preemptions, peak %d of %d pages in use", what, len(seqs), preempted, peak, ec.numPages)
		})
	}
}

func lastJoin(rs []request) int {
	n := 0
	for _, r := range rs {
		n = max(n, r.join)
	}
	return n
}

// firstDiff says where got and want first differ, or "".
func firstDiff(got, want []int) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("token %d is %d, the Week 2 model alone gives %d (first %d agree)", i, got[i], want[i], i)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d tokens, want %d", len(got), len(want))
	}
	return ""
}

// RunnerRefuses checks Task 3's validation: Run returns an error, and no
// panic, for a batch it cannot compute: an empty batch, a chunk that does
// not start at the sequence's cached positions, a token outside the
// vocabulary, a block table too short for the chunk, a page id outside the
// pool, the same sequence twice.
func RunnerRefuses(t *testing.T, stack StackFunc) {
	const task = "W3D4 Task 3 Runner"
	grade.PointToChapter(t, task)
	ck := OpenShipped(t)
	var runner llm.ModelRunner
	var blocks llm.BlockAllocator
	var err error
	if grade.Run(t, task+" (building the runner)", func() { runner, blocks, err = stack(ck, 16, 4) }) {
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", task, err)
	}
	vocab := ck.Config.VocabSize
	fresh := func(n, pages int) *llm.Sequence {
		s := llm.NewSequence(0, make([]int, n), 4)
		if err := blocks.Allocate(s, pages*blocks.PageSize()); err != nil {
			t.Fatalf("%s: allocating %d pages: %v", task, pages, err)
		}
		return s
	}
	cases := []struct {
		name  string
		batch func() llm.Batch
	}{
		{"an empty batch", func() llm.Batch { return nil }},
		{"a chunk that starts past the cached positions", func() llm.Batch {
			return llm.Batch{{Seq: fresh(6, 2), Start: 3, Len: 3}}
		}},
		{"a token outside the vocabulary", func() llm.Batch {
			s := fresh(5, 2)
			s.Tokens[2] = vocab
			return llm.Batch{{Seq: s, Start: 0, Len: 5}}
		}},
		{"a block table too short for the chunk", func() llm.Batch {
			return llm.Batch{{Seq: fresh(9, 2), Start: 0, Len: 9}}
		}},
		{"a page id outside the pool", func() llm.Batch {
			s := fresh(3, 1)
			s.BlockTable = append([]int(nil), 1<<20)
			return llm.Batch{{Seq: s, Start: 0, Len: 3}}
		}},
		{"one sequence twice in a step", func() llm.Batch {
			s := fresh(4, 1)
			return llm.Batch{{Seq: s, Start: 0, Len: 4}, {Seq: s, Start: 0, Len: 4}}
		}},
	}
	for _, c := range cases {
		b := c.batch()
		var next []int
		if grade.Run(t, task+", "+c.name, func() { next, err = runner.Run(b) }) {
			return
		}
		if err == nil {
			t.Errorf("%s, %s: Run returned %v and no error (check the batch before computing it)", task, c.name, next)
		}
	}
}
