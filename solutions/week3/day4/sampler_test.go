package day4

import (
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w3d4"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	w1day7 "github.com/tinyllm-go/tinyllm/solutions/week1/day7"
	w3day1 "github.com/tinyllm-go/tinyllm/solutions/week3/day1"
	w3day3 "github.com/tinyllm-go/tinyllm/solutions/week3/day3"
)

// generate runs prompts to n tokens each through a fresh engine whose
// runner samples with s, and returns the outputs.
func generate(t *testing.T, m *w3day1.Qwen2ModelWeek3, s Sampler, prompts [][]int, n int) [][]int {
	t.Helper()
	return generateEach(t, m, s, make([]Sampler, len(prompts)), prompts, n)
}

// generateEach is generate with each sequence's own sampler too
// (llm.Sequence.Sampler), own[i] for prompts[i].
func generateEach(t *testing.T, m *w3day1.Qwen2ModelWeek3, s Sampler, own []Sampler, prompts [][]int, n int) [][]int {
	t.Helper()
	sh := m.Shape()
	pool, err := w3day3.NewPagePool(w3day3.PoolConfig{NumPages: 64, PageSize: 8, Layers: sh.NumLayers, KVHeads: sh.NumKVHeads, HeadDim: sh.HeadDim})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(m, pool)
	if err != nil {
		t.Fatal(err)
	}
	r.Sampler = s
	e, err := newEngine(llm.EngineConfig{MaxNumBatchedTokens: 32, MaxNumSeqs: 4, MaxContext: sh.MaxContext}, r, w3day3.NewBlockManager(pool))
	if err != nil {
		t.Fatal(err)
	}
	var seqs []*llm.Sequence
	for i, p := range prompts {
		seq, err := e.AddRequest(p, n)
		if err != nil {
			t.Fatal(err)
		}
		seq.Sampler = own[i]
		seqs = append(seqs, seq)
	}
	for e.HasWork() {
		if _, err := e.Step(); err != nil {
			t.Fatal(err)
		}
	}
	out := make([][]int, len(seqs))
	for i, s := range seqs {
		out[i] = s.Output()
	}
	return out
}

// The runner's Sampler: Week 1's sampler at temperature 0 gives the greedy
// tokens; at temperature 1 with a seed, the same tokens on a second run,
// and (over 3 x 24 draws) not the greedy ones.
func TestRunnerSampler(t *testing.T) {
	m, err := w3day1.NewQwen2ModelWeek3(w3d4.OpenShipped(t))
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int{{5, 17, 99, 3}, {400, 2, 2, 2, 2, 2, 7, 8, 9}, {1000}}
	greedy := generate(t, m, nil, prompts, 24)
	if got := generate(t, m, w1day7.NewSampler(0, 1, 0, 1), prompts, 24); !slices.EqualFunc(got, greedy, slices.Equal) {
		t.Errorf("temperature 0 gave %v, greedy %v", got, greedy)
	}
	a := generate(t, m, w1day7.NewSampler(1, 1, 0, 7), prompts, 24)
	b := generate(t, m, w1day7.NewSampler(1, 1, 0, 7), prompts, 24)
	if !slices.EqualFunc(a, b, slices.Equal) {
		t.Errorf("one seed gave %v and then %v", a, b)
	}
	if slices.EqualFunc(a, greedy, slices.Equal) {
		t.Errorf("temperature 1 gave exactly the greedy tokens: the sampler is not used")
	}
}

// A sequence's own Sampler (llm.Sequence.Sampler, a server's per-request
// seed) comes before the runner's: a seeded request gives the same tokens
// alone and batched with others (greedy ones, and one of another seed),
// and the greedy requests of that batch give their greedy tokens.
func TestRunnerSequenceSampler(t *testing.T) {
	m, err := w3day1.NewQwen2ModelWeek3(w3d4.OpenShipped(t))
	if err != nil {
		t.Fatal(err)
	}
	run := func(prompts [][]int, own []Sampler) [][]int { return generateEach(t, m, nil, own, prompts, 24) }
	prompts := [][]int{{5, 17, 99, 3}, {400, 2, 2, 2, 2, 2, 7, 8, 9}, {1000}}
	alone := run(prompts[:1], []Sampler{w1day7.NewSampler(1, 1, 0, 7)})[0]
	greedy := generate(t, m, nil, prompts[1:], 24)
	got := run(prompts, []Sampler{w1day7.NewSampler(1, 1, 0, 7), nil, w1day7.NewSampler(1, 1, 0, 8)})
	if !slices.Equal(got[0], alone) {
		t.Errorf("seed 7 batched with others gave %v, alone %v", got[0], alone)
	}
	if !slices.Equal(got[1], greedy[0]) {
		t.Errorf("a greedy request batched with sampled ones gave %v, greedy %v", got[1], greedy[0])
	}
	if slices.Equal(alone, run(prompts[:1], []Sampler{nil})[0]) {
		t.Errorf("seed 7 at temperature 1 gave exactly the greedy tokens: the sequence's sampler is not used")
	}
}
