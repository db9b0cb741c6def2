package day6

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/bench"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	w3day1 "github.com/tinyllm-go/tinyllm/solutions/week3/day1"
	w3day2 "github.com/tinyllm-go/tinyllm/solutions/week3/day2"
	w3day3 "github.com/tinyllm-go/tinyllm/solutions/week3/day3"
	w3day4 "github.com/tinyllm-go/tinyllm/solutions/week3/day4"
)

// The shared-prefix benchmark's workload: a system prompt of 1,000 tokens,
// then each request's own 24 tokens.
const (
	benchSystem = 1000
	benchUser   = 24
	benchPage   = 16
)

// benchModel opens the folder named by TINYLLM_BENCH_MODEL, or writes a
// random checkpoint of the shipped model's shape with a context of 2,048
// positions (the shipped model's 512 cannot hold a 1,000-token prompt) into
// a temporary folder, with the shipped model's tokenizer.
func benchModel(b *testing.B) *checkpoint.Checkpoint {
	dir := os.Getenv("TINYLLM_BENCH_MODEL")
	if dir == "" {
		root, err := fixture.RepoRoot()
		if err != nil {
			b.Fatal(err)
		}
		shipped := filepath.Join(root, "models", "tinyqwen-chat")
		sck, err := checkpoint.Open(shipped)
		if err != nil {
			b.Fatal(err)
		}
		c := sck.Config
		sck.Close()
		shape := bench.Shape{Name: "tinyqwen-2k", VocabSize: c.VocabSize, HiddenSize: c.HiddenSize,
			IntermediateSize: c.IntermediateSize, NumHiddenLayers: c.NumHiddenLayers,
			NumAttentionHeads: c.NumAttentionHeads, NumKeyValueHeads: c.NumKeyValueHeads,
			MaxPositionEmbeddings: 2048, RopeTheta: c.RopeTheta, RMSNormEps: c.RMSNormEps,
			TieWordEmbeddings: c.TieWordEmbeddings}
		dir = b.TempDir()
		if err := bench.WriteRandomModel(context.Background(), dir, shape, bench.RandomModelOptions{Seed: 6, TokenizerFrom: shipped}); err != nil {
			b.Fatal(err)
		}
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ck.Close() })
	return ck
}

// ttft adds a request of prompt to e and steps the engine until the request
// has its first token, returning the time that took.
func ttft(b *testing.B, e *w3day2.Engine, prompt []int) time.Duration {
	start := time.Now()
	seq, err := e.AddRequest(prompt, 1)
	if err != nil {
		b.Fatal(err)
	}
	for seq.NumOutput() == 0 {
		if _, err := e.Step(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkSharedPrefixTTFT times the time to first token of two requests
// that share a 1,000-token system prompt, one after the other, on an engine
// with the prefix cache: the first computes every position, the second
// finds the system prompt's full pages cached and computes only the rest. It
// also times the second request on Day 3's block manager, without the
// cache. It fails if the cache's second request is not at least 5 times
// faster than the first. The model is a random one of the shipped model's
// shape with a 2,048-position context, or the folder named by
// TINYLLM_BENCH_MODEL:
//
//	go test -run '^$' -bench SharedPrefixTTFT -benchtime 3x ./solutions/week3/day6
func BenchmarkSharedPrefixTTFT(b *testing.B) {
	ck := benchModel(b)
	m, err := w3day1.NewQwen2ModelWeek3(ck)
	if err != nil {
		b.Fatal(err)
	}
	sh := m.Shape()
	if sh.MaxContext <= benchSystem+2*benchUser {
		b.Fatalf("the model's context of %d positions cannot hold the %d-token system prompt", sh.MaxContext, benchSystem)
	}
	rng := rand.New(rand.NewPCG(6, 1000))
	prompt := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = rng.IntN(sh.VocabSize)
		}
		return out
	}
	system := prompt(benchSystem)
	first, second := slices.Concat(system, prompt(benchUser)), slices.Concat(system, prompt(benchUser))
	pages := 2 * llm.PagesFor(len(first), benchPage)
	newEngine := func(cached bool) (*w3day2.Engine, *PrefixBlockManager) {
		pool, err := w3day3.NewPagePool(w3day3.PoolConfig{NumPages: pages, PageSize: benchPage, Layers: sh.NumLayers, KVHeads: sh.NumKVHeads, HeadDim: sh.HeadDim})
		if err != nil {
			b.Fatal(err)
		}
		r, err := w3day4.NewRunner(m, pool)
		if err != nil {
			b.Fatal(err)
		}
		var blocks llm.BlockAllocator = w3day3.NewBlockManager(pool)
		var pm *PrefixBlockManager
		if cached {
			pm = NewPrefixBlockManager(pool)
			blocks = pm
		}
		// A budget of the whole prompt: the first request's prefill is one
		// step, as the second's is.
		e, err := w3day2.NewEngine(llm.EngineConfig{MaxNumBatchedTokens: 2048, MaxNumSeqs: 8, MaxContext: sh.MaxContext}, r, blocks)
		if err != nil {
			b.Fatal(err)
		}
		return e, pm
	}
	var t1, t2, t2plain time.Duration
	var hits float64
	for b.Loop() {
		e, pm := newEngine(true)
		t1 += ttft(b, e, first)
		t2 += ttft(b, e, second)
		hits = pm.Stats().HitRate()
		p, _ := newEngine(false)
		ttft(b, p, first)
		t2plain += ttft(b, p, second)
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(t1), "ttft-first-ms")
	b.ReportMetric(ms(t2), "ttft-second-ms")
	b.ReportMetric(ms(t2plain), "ttft-second-nocache-ms")
	b.ReportMetric(ms(t1)/ms(t2), "speedup-x")
	b.ReportMetric(hits, "hit-rate")
	if ms(t1) < 5*ms(t2) {
		b.Errorf("the second request's time to first token, %.1f ms, is not 5 times below the first's, %.1f ms", ms(t2), ms(t1))
	}
}
