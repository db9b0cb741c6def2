package bench

import (
	"fmt"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"math/rand/v2"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Model is a loaded language model: Forward maps B×L token ids to
// B×L×vocab logits. Both trees' Week 1 models satisfy it.
type Model = llm.Model

// Options choose what RunModel measures.
type Options struct {
	PromptLen int    // tokens in the prompt (prefill)
	GenLen    int    // tokens to generate, the first included
	Warmup    int    // untimed forward passes over the prompt first
	Repeats   int    // timed runs
	VocabSize int    // prompt ids are drawn from [0, VocabSize)
	Seed      uint64 // for the prompt ids
	// AllLogits also times, in each run, one Forward over the prompt that
	// computes every position's logits (what a plain forward call of
	// another engine computes), beside the generation that needs only the
	// last position's.
	AllLogits bool
	// PrefillChunk, for a model with a KV cache, feeds the prompt in
	// pieces of at most this many tokens, as a serving engine does: the
	// activations of one forward pass stay the size of a piece, not of
	// the prompt. 0 feeds it whole.
	PrefillChunk int
	// Ahead, for a model that is an llm.AheadDecoder (the GPU model),
	// is how many greedy decode steps are queued at once; 0 means
	// llm.AheadWindow, 1 one step at a time (the host waits for each).
	Ahead int
}

// Run is one timed generation.
type Run struct {
	// TTFTSeconds is the time to first token: the forward pass over the
	// prompt and picking the first token.
	TTFTSeconds float64 `json:"ttft_s"`
	// DecodeSeconds is the time of the GenLen-1 steps after the first
	// token.
	DecodeSeconds float64 `json:"decode_s"`
	// ForwardAllSeconds is the time of one Forward over the prompt with
	// every position's logits (only with Options.AllLogits).
	ForwardAllSeconds float64 `json:"forward_all_logits_s,omitempty"`
}

// Result is what RunModel measured. Rates are medians over the runs.
type Result struct {
	PromptLen       int     `json:"prompt_len"`
	GenLen          int     `json:"gen_len"`
	Warmup          int     `json:"warmup"`
	Repeats         int     `json:"repeats"`
	Runs            []Run   `json:"runs"`
	TTFTSeconds     float64 `json:"ttft_s"`
	PrefillTokPerS  float64 `json:"prefill_tok_s"`
	DecodeTokPerS   float64 `json:"decode_tok_s"`
	FirstDecodeStep float64 `json:"first_decode_step_s,omitempty"`
	// ForwardAllSeconds is the median of the runs' ForwardAllSeconds.
	ForwardAllSeconds float64 `json:"forward_all_logits_s,omitempty"`
}

// RunModel first runs Warmup untimed forward passes over a random prompt of
// PromptLen ids (enough to fault in the weights and fill the buffer pools),
// then generates GenLen tokens greedily after it, Repeats times, and times
// each run.
//
// The Week 1 model has no KV cache: each decode step runs the whole
// sequence so far through the model again, so its decode rate falls as
// the sequence grows, and is not comparable with an engine that caches
// keys and values (Week 2 adds the cache). The prefill rate and the time
// to first token are comparable.
func RunModel(m Model, o Options) (Result, error) {
	return run(o, func(prompt []int) {
		llm.LastLogits(m, prompt)
	}, func(prompt []int, n int) Run {
		return generate(m, prompt, n)
	}, func(prompt []int) {
		m.Forward([][]int{prompt})
	})
}

// run draws the prompt, runs the warm-up passes and the timed generations
// (each with its all-logits forward pass if asked), and takes the medians.
func run(o Options, warm func(prompt []int), gen func(prompt []int, n int) Run, forwardAll func(prompt []int)) (Result, error) {
	if o.PromptLen <= 0 || o.GenLen <= 0 || o.Repeats <= 0 || o.Warmup < 0 || o.VocabSize <= 0 {
		return Result{}, fmt.Errorf("bench: prompt and generation lengths, repeats and vocabulary size must be positive")
	}
	rng := rand.New(rand.NewPCG(o.Seed, 1))
	prompt := make([]int, o.PromptLen)
	for i := range prompt {
		prompt[i] = rng.IntN(o.VocabSize)
	}
	res := Result{PromptLen: o.PromptLen, GenLen: o.GenLen, Warmup: o.Warmup, Repeats: o.Repeats}
	for range o.Warmup {
		warm(prompt)
	}
	for range o.Repeats {
		r := gen(prompt, o.GenLen)
		if o.AllLogits {
			start := time.Now()
			forwardAll(prompt)
			r.ForwardAllSeconds = time.Since(start).Seconds()
		}
		res.Runs = append(res.Runs, r)
	}
	var ttft, prefill, decode, forward []float64
	for _, r := range res.Runs {
		forward = append(forward, r.ForwardAllSeconds)
		ttft = append(ttft, r.TTFTSeconds)
		prefill = append(prefill, float64(o.PromptLen)/r.TTFTSeconds)
		if o.GenLen > 1 {
			decode = append(decode, float64(o.GenLen-1)/r.DecodeSeconds)
		}
	}
	res.TTFTSeconds = Median(ttft)
	res.PrefillTokPerS = Median(prefill)
	res.DecodeTokPerS = Median(decode)
	if o.AllLogits {
		res.ForwardAllSeconds = Median(forward)
	}
	return res, nil
}

// Prefill is a tree's W2D1 Prefill: the prompt into fresh caches in pieces
// of at most chunk tokens, returning the last position's logits.
type Prefill func(m llm.CachedModel, prompt []int, caches []llm.KVCache, chunk int) *tensor.Tensor

// RunCachedModel is RunModel for a model with a KV cache (Week 2 onwards):
// each run prefills the prompt into fresh caches with prefill, in pieces of
// o.PrefillChunk, then feeds one token per decode step. AllLogits times a
// Forward of the prompt into fresh caches.
func RunCachedModel(m llm.CachedModel, prefill Prefill, o Options) (Result, error) {
	return run(o, func(prompt []int) {
		prefill(m, prompt, m.NewCaches(), o.PrefillChunk)
	}, func(prompt []int, n int) Run {
		caches := m.NewCaches()
		start := time.Now()
		next := lastArgmax(prefill(m, prompt, caches, o.PrefillChunk))
		first := time.Now()
		for pos := len(prompt); pos < len(prompt)+n-1; pos++ {
			next = lastArgmax(m.ForwardLast([][]int{{next}}, pos, caches))
		}
		return Run{TTFTSeconds: first.Sub(start).Seconds(), DecodeSeconds: time.Since(first).Seconds()}
	}, func(prompt []int) {
		m.Forward([][]int{prompt}, 0, m.NewCaches())
	})
}

// generate runs one greedy generation and times it.
func generate(m Model, prompt []int, n int) Run {
	seq := append(make([]int, 0, len(prompt)+n), prompt...)
	start := time.Now()
	seq = append(seq, lastArgmax(llm.LastLogits(m, seq)))
	first := time.Now()
	for len(seq) < len(prompt)+n {
		seq = append(seq, lastArgmax(llm.LastLogits(m, seq)))
	}
	return Run{TTFTSeconds: first.Sub(start).Seconds(), DecodeSeconds: time.Since(first).Seconds()}
}

// lastArgmax returns the most likely next token after the last position of
// 1×L×V logits.
func lastArgmax(logits *tensor.Tensor) int {
	// The last row where it lies: copying 151936 logits out first cost a
	// decode step about a tenth of a millisecond.
	d := logits.Data()
	last := d[len(d)-logits.Dim(-1):]
	best := 0
	for i, x := range last {
		if x > last[best] {
			best = i
		}
	}
	return best
}
