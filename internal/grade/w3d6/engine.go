package w3d6

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/w3d4"
	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// StackFunc builds the tree's Day 4 model runner for a checkpoint over a new
// pool of numPages pages of pageSize positions, and the block manager that
// allocates from it: the day's prefix-caching one when cached is true, Day
// 3's otherwise. It returns the pool too.
type StackFunc func(ck *checkpoint.Checkpoint, numPages, pageSize int, cached bool) (llm.ModelRunner, llm.BlockAllocator, Pool, error)

// countingRunner counts the positions a runner computes.
type countingRunner struct {
	llm.ModelRunner
	tokens int
}

func (r *countingRunner) Run(b llm.Batch) ([]int, error) {
	r.tokens += b.NumTokens()
	return r.ModelRunner.Run(b)
}

// engineRequest is one request of the engine check: which system prompt it
// starts with, its own tokens after it, tokens to generate, the step it
// joins at.
type engineRequest struct {
	system, user, gen, join int
}

// The engine check's workload: two system prompts of 40 tokens (ten pages
// of 4), requests that share them joining while others run and after they
// finished, one that repeats an earlier prompt exactly (all of it cached,
// yet its last token must be computed), in a pool of 24 pages, too few to
// keep every finished request's pages: the cache evicts, and running
// requests are preempted and restart on their own cached pages.
var (
	systemLen = 40
	pageSize  = 4
	numPages  = 24
	requests  = []engineRequest{
		{0, 7, 10, 0}, {0, 3, 12, 0}, {1, 9, 8, 4}, {0, 0, 9, 40}, {0, 5, 10, 41},
		{1, 6, 14, 60}, {1, 0, 6, 61}, {0, 11, 8, 90}, {1, 2, 10, 90}, {0, 7, 10, 130},
	}
)

// run is one engine run of the workload: every request's output, the
// positions the runner computed, the preemptions, and the block manager.
type run struct {
	outputs     [][]int
	computed    int
	preemptions int
	blocks      llm.BlockAllocator
}

// Engine checks Task 3: the tree's Day 2 engine, its Day 4 runner and the
// shipped model give every request the same greedy tokens with the prefix
// cache as with Day 3's block manager, while computing fewer positions;
// cached pages are hit and evicted; no page registered under a hash is
// written while it stays registered; and after the last request every page
// is free.
func Engine(t *testing.T, stack StackFunc, newEngine w3d4.EngineFunc) {
	const task = "W3D6 Task 3 engine with a prefix cache"
	grade.PointToChapter(t, task)
	ck := w3d4.OpenShipped(t)
	vocab := ck.Config.VocabSize
	rng := rand.New(rand.NewPCG(6, 3))
	randTokens := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = rng.IntN(vocab)
		}
		return out
	}
	systems := [][]int{randTokens(systemLen), randTokens(systemLen)}
	prompts := make([][]int, len(requests))
	for i, r := range requests {
		prompts[i] = slices.Concat(systems[r.system], randTokens(r.user))
	}
	lastJoin := 0
	for _, r := range requests {
		lastJoin = max(lastJoin, r.join)
	}
	exec := func(cached bool) (*run, bool) {
		what := fmt.Sprintf("%s (prefix cache %v)", task, cached)
		var runner llm.ModelRunner
		var blocks llm.BlockAllocator
		var pool Pool
		var err error
		if grade.Run(t, what+": building the runner", func() { runner, blocks, pool, err = stack(ck, numPages, pageSize, cached) }) {
			return nil, true
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		counter := &countingRunner{ModelRunner: runner}
		cfg := llm.EngineConfig{MaxNumBatchedTokens: 32, MaxNumSeqs: 3, MaxContext: ck.Config.MaxPositionEmbeddings}
		e, err := newEngine(cfg, counter, blocks)
		if err != nil {
			t.Fatalf("%s: the engine: %v", what, err)
		}
		m, _ := blocks.(Manager)
		snap := newSnapshots(pool)
		seqs := make([]*llm.Sequence, len(requests))
		for step := 0; ; step++ {
			for i, r := range requests {
				if r.join == step {
					if seqs[i], err = e.AddRequest(prompts[i], r.gen); err != nil {
						t.Fatalf("%s: request %d refused: %v", what, i, err)
					}
				}
			}
			if !e.HasWork() && step > lastJoin {
				break
			}
			if step > 5000 {
				t.Fatalf("%s: still running after %d steps", what, step)
			}
			var stepErr error
			if grade.Run(t, fmt.Sprintf("%s, step %d", what, step), func() { _, stepErr = e.Step() }) {
				return nil, true
			}
			if stepErr != nil {
				t.Fatalf("%s: step %d: %v", what, step, stepErr)
			}
			if cached && m != nil {
				if msg := snap.check(m, numPages); msg != "" {
					t.Fatalf("%s: after step %d: %s", what, step, msg)
				}
			}
		}
		out := &run{computed: counter.tokens, blocks: blocks}
		for i, s := range seqs {
			out.preemptions += s.Preemptions
			if s.Finish != llm.FinishLength && s.Finish != llm.FinishStop {
				t.Errorf("%s: request %d finished with %q (%v)", what, i, s.Finish, s.Err)
			}
			out.outputs = append(out.outputs, s.Output())
		}
		if free := blocks.NumFreePages(); free != blocks.NumPages() {
			t.Errorf("%s: %d of %d pages in use after every request finished", what, blocks.NumPages()-free, blocks.NumPages())
		}
		return out, false
	}
	plain, stub := exec(false)
	if stub {
		return
	}
	cachedRun, stub := exec(true)
	if stub {
		return
	}
	m, ok := cachedRun.blocks.(Manager)
	if !ok {
		t.Fatalf("%s: the prefix-caching block manager lacks the day's methods", task)
	}
	for i := range requests {
		if msg := diff(cachedRun.outputs[i], plain.outputs[i]); msg != "" {
			t.Errorf("%s: request %d (system prompt %d, %d own tokens, joins at step %d): with the prefix cache %s",
				task, i, requests[i].system, requests[i].user, requests[i].join, msg)
		}
	}
	st := m.Stats()
	t.Logf("%s: %d positions computed without the cache, %d with it; %+v (hit rate %.2f); preemptions %d and %d",
		task, plain.computed, cachedRun.computed, st, st.HitRate(), plain.preemptions, cachedRun.preemptions)
	if st.Hits == 0 || cachedRun.computed >= plain.computed {
		t.Errorf("%s: the cache found %d positions and the runner computed %d positions with it, %d without: requests that share a system prompt must skip its cached pages",
			task, st.Hits, cachedRun.computed, plain.computed)
	}
	if cachedRun.preemptions == 0 {
		t.Errorf("%s: no request was preempted with the cache in a pool of %d pages: the case does not test a restart on cached pages", task, numPages)
	}
	if st.Evictions == 0 {
		t.Errorf("%s: no cached page was evicted in a pool of %d pages: the case does not test eviction", task, numPages)
	}
	for p := range numPages {
		if n, err := m.Holders(p); err != nil || n != 0 {
			t.Errorf("%s: page %d has %d holders (%v) after every request finished, want 0", task, p, n, err)
		}
	}
}

// diff says where got and want first differ, or "".
func diff(got, want []int) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("token %d is %d, without it %d (first %d agree)", i, got[i], want[i], i)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d tokens, without it %d", len(got), len(want))
	}
	return ""
}

// snapshots remembers the keys and values of every registered page, to
// catch a write into one: a page keeps its contents for as long as it stays
// registered under the same hash.
type snapshots struct {
	pool Pool
	hash map[int]uint64
	data map[int][]float32
}

func newSnapshots(pool Pool) *snapshots {
	return &snapshots{pool: pool, hash: map[int]uint64{}, data: map[int][]float32{}}
}

// page returns a copy of page p's keys and values in every layer.
func (s *snapshots) page(p, pages int) []float32 {
	var out []float32
	for l := 0; ; l++ {
		k, v, err := s.pool.Layer(l)
		if err != nil {
			return out
		}
		w := len(k) / pages
		out = append(out, k[p*w:(p+1)*w]...)
		out = append(out, v[p*w:(p+1)*w]...)
	}
}

// check compares every registered page with its snapshot, taking one for a
// page newly registered, and returns what changed, or "".
func (s *snapshots) check(m Manager, pages int) string {
	for p := range pages {
		h, ok := m.PageHashOf(p)
		if !ok {
			delete(s.hash, p)
			continue
		}
		now := s.page(p, pages)
		if old, seen := s.hash[p]; seen && old == h {
			if !slices.Equal(now, s.data[p]) {
				return fmt.Sprintf("page %d, registered under hash %#x, was written while registered: a cached page must never change", p, h)
			}
			continue
		}
		s.hash[p], s.data[p] = h, now
	}
	return ""
}
