package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/bench"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	refw2d1 "github.com/tinyllm-go/tinyllm/solutions/week2/day1"
	refw3d7 "github.com/tinyllm-go/tinyllm/solutions/week3/day7"
)

// specStats is what a tree's W3D7 Stats counts.
type specStats struct{ Steps, Proposed, Accepted, Generated int }

// acceptance is the share of proposals the target kept.
func (s specStats) acceptance() float64 {
	return float64(s.Accepted) / float64(max(s.Proposed, 1))
}

// perPass is the tokens one target pass gave, the prefill counted as one.
func (s specStats) perPass() float64 { return float64(s.Generated) / float64(s.Steps+1) }

// speculateFunc answers a conversation greedily with a target and a draft
// model, streaming the reply's text to onText.
type speculateFunc func(target, draft llm.CachedModel, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, k, maxTokens int, eos []int, onText func(string)) (string, specStats, error)

// maxSpeculate bounds --speculate: past a handful of tokens even a perfect
// draft gains little (a step's cost grows with k, its gain by at most one
// token), and a long run of draft steps is wasted at the first rejection.
const maxSpeculate = 16

// flagGiven reports whether the flag called name was set on fs.
func flagGiven(fs *flag.FlagSet, name string) bool {
	set := false
	if fs != nil {
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	}
	return set
}

// validateDraft checks --draft and --speculate. Speculative decoding here is
// greedy and runs the Week 2 models on the CPU, so --week defaults to 2 and
// --device auto to cpu with a draft; anything that contradicts that is a
// usage error.
func (f *engineFlags) validateDraft() error {
	if f.draft == "" {
		if flagGiven(f.fs, "speculate") {
			return fmt.Errorf("%w: --speculate needs --draft DIR, the model that proposes the tokens", errUsage)
		}
		return nil
	}
	if err := checkModelFolder("--draft", f.draft); err != nil {
		return err
	}
	switch {
	case f.speculate < 1 || f.speculate > maxSpeculate:
		return fmt.Errorf("%w: --speculate must be between 1 and %d, got %d", errUsage, maxSpeculate, f.speculate)
	case f.temperature != 0:
		return fmt.Errorf("%w: --draft decodes greedily (its output is plain greedy decoding's, token for token): leave --temperature at 0", errUsage)
	case flagGiven(f.fs, "week") && f.week != 2:
		return fmt.Errorf("%w: --draft runs the Week 2 engine (a KV cache that can rewind); --week %d has none", errUsage, f.week)
	case f.device != "auto" && f.device != "cpu":
		return fmt.Errorf("%w: --draft runs on the CPU; --device %s is not supported with it", errUsage, f.device)
	}
	f.week, f.device = 2, "cpu"
	return nil
}

// probeText is encoded by the target's and the draft's tokenizers: a draft
// whose ids mean other text would only ever be rejected.
const probeText = "Hello! What is 358 + 467? Reverse the list: red, green, blue. Café 👋"

// loadDraft opens the --draft folder and builds the implementation's Week 2
// model from it, after checking that it speaks the target's vocabulary. A
// draft of a shorter context than the target's (targetContext) loads, with
// a note: replies that could run past its context are decoded without it.
func loadDraft(f *engineFlags, im impl, vocab, targetContext int, target *tokenizer.Tokenizer, stderr io.Writer) (llm.CachedModel, *checkpoint.Checkpoint, error) {
	ck, err := checkpoint.Open(f.draft)
	if err != nil {
		return nil, nil, fmt.Errorf("--draft: %w", err)
	}
	fail := func(err error) (llm.CachedModel, *checkpoint.Checkpoint, error) {
		ck.Close()
		return nil, nil, err
	}
	if ck.Config.VocabSize != vocab {
		return fail(fmt.Errorf("--draft %s: its vocabulary has %d ids, the model's %d: a draft must share the model's tokenizer", f.draft, ck.Config.VocabSize, vocab))
	}
	if tok, err := tokenizer.LoadDir(f.draft); err == nil {
		a, errA := target.Encode(probeText)
		b, errB := tok.Encode(probeText)
		if errA != nil || errB != nil || !slices.Equal(a, b) {
			return fail(fmt.Errorf("--draft %s: its tokenizer encodes text differently from the model's: a draft must share the model's tokenizer", f.draft))
		}
	}
	if err := warm(ck.WeightFiles(), stderr); err != nil {
		return fail(err)
	}
	var m loadedModel
	if err := learnerGuard(f.impl, func() error {
		var err error
		m, err = im.weeks[2](ck)
		return err
	}); err != nil {
		return fail(fmt.Errorf("--draft: %w", err))
	}
	c := ck.Config
	fmt.Fprintf(stderr, "draft %s: %d layers, hidden %d; speculating %d tokens per step\n", modelName(f.draft), c.NumHiddenLayers, c.HiddenSize, f.speculate)
	if c.MaxPositionEmbeddings < targetContext {
		fmt.Fprintf(stderr, "note: the draft's context is %d positions, the model's %d: a reply that could run past %d is decoded without the draft\n",
			c.MaxPositionEmbeddings, targetContext, c.MaxPositionEmbeddings)
	}
	return m.cached, ck, nil
}

// replySpeculating is reply with the draft: the same greedy reply, with
// how the draft did on stderr.
func (e *engine) replySpeculating(msgs []tokenizer.Message, maxTokens int, stdout, stderr io.Writer) (string, error) {
	f := e.flags
	if e.impl.speculate == nil {
		return "", fmt.Errorf("--impl %s has no speculative decoding (W3D7) linked in", f.impl)
	}
	start := time.Now()
	var text string
	var st specStats
	target := finiteTarget{CachedModel: e.model.cached, dir: f.modelDir, vocab: e.tok.VocabSize()}
	err := learnerGuard(f.impl, func() error {
		return stopAtNonFinite(func() error {
			var err error
			text, st, err = e.impl.speculate(target, e.draft, e.tok, msgs, f.speculate, maxTokens, e.eos, func(piece string) {
				fmt.Fprint(stdout, piece)
			})
			return err
		})
	})
	fmt.Fprintln(stdout)
	if err != nil {
		return "", e.replyError(err)
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "[%d tokens in %.1fs, %.2f tokens/s; draft: %d of %d proposals accepted (%.0f%%), %.2f tokens per target pass]\n",
		st.Generated, secs, float64(st.Generated)/secs, st.Accepted, st.Proposed, 100*st.acceptance(), st.perPass())
	if st.Generated >= maxTokens {
		fmt.Fprintf(stderr, "[reply cut at %d tokens]\n", maxTokens)
	}
	return text, nil
}

// finiteTarget is the target of speculative decoding with its logits
// checked (checkFinite): the greedy verification has no sampler to check
// them, and its argmax would accept token 0 from a row of NaN. A step's
// logits are one row, or k+1 at a verification pass; the check costs a few
// comparisons per logit, nothing beside the pass. As countingSampler does
// for a sampler, it keeps the choice to the tokenizer's ids: the logits of
// the others become -Inf, so the target never picks one and rejects a
// draft's proposal of one.
type finiteTarget struct {
	llm.CachedModel
	dir   string
	vocab int // the tokenizer's ids; 0: every id
}

func (m finiteTarget) Forward(tokens [][]int, offset int, caches []llm.KVCache) *tensor.Tensor {
	return m.check(m.CachedModel.Forward(tokens, offset, caches))
}

func (m finiteTarget) ForwardLast(tokens [][]int, offset int, caches []llm.KVCache) *tensor.Tensor {
	return m.check(m.CachedModel.ForwardLast(tokens, offset, caches))
}

func (m finiteTarget) check(logits *tensor.Tensor) *tensor.Tensor {
	data := logits.Data()
	checkFinite(data, -1, m.dir)
	if v := logits.Dim(-1); m.vocab > 0 && m.vocab < v {
		for row := 0; row < len(data); row += v {
			for i := row + m.vocab; i < row+v; i++ {
				data[i] = float32(math.Inf(-1))
			}
		}
	}
	return logits
}

// specBenchPrompts are the conversations `tinyllm bench --draft` times: one
// of each kind the shipped model was trained on, none of them a parity
// fixture's.
var specBenchPrompts = []string{
	"What is 614 + 289?",
	"What is 731 - 256?",
	"Reverse the list: cat, dog, fish, bird, horse",
	"Sort these numbers: 15, 4, 73, 28, 9, 51",
	"How many times does the letter a appear in banana?",
	"Count the letter o in bookstore.",
	"What is your name?",
	"Hello!",
}

// specBenchResult is what `tinyllm bench --draft` measures.
type specBenchResult struct {
	K             int     `json:"k"`
	Prompts       int     `json:"prompts"`
	Tokens        int     `json:"tokens"` // per repeat, over all prompts
	PlainSeconds  float64 `json:"plain_s"`
	SpecSeconds   float64 `json:"speculative_s"`
	SpeedUp       float64 `json:"speed_up"`
	Acceptance    float64 `json:"acceptance"`
	TokensPerPass float64 `json:"tokens_per_target_pass"`
	// CostRatio c is a draft decode step's time over a target decode
	// step's, VerifyCost v a target pass over k+1 tokens in target steps.
	// ExpectedPerPass is (1-α^(k+1))/(1-α) for the measured acceptance α,
	// and Predicted the speed-up that gives, ExpectedPerPass / (k·c + v),
	// for comparison with SpeedUp.
	CostRatio       float64 `json:"cost_ratio"`
	VerifyCost      float64 `json:"verify_cost"`
	ExpectedPerPass float64 `json:"expected_tokens_per_pass"`
	Predicted       float64 `json:"predicted_speed_up"`
}

// runSpecBench times greedy decoding of the bench conversations with the
// target alone and with the draft, in the same run and alternately, checks
// that both give the same tokens, and reports the speed-up and the
// acceptance rate. The reference engine's Week 2 models run on the CPU.
//
// maxTokens bounds each reply; where it was not given (maxGiven false) it
// is lowered, with a note, to what the shorter of the two contexts holds
// after the longest conversation, and where it was given and does not fit,
// the bench is refused before it starts.
func runSpecBench(targetDir, draftDir string, k, maxTokens int, maxGiven bool, repeats int, stdout, stderr io.Writer) (specBenchResult, error) {
	res := specBenchResult{K: k, Prompts: len(specBenchPrompts)}
	open := func(dir string) (*refw2d1.Qwen2ModelWeek2, *checkpoint.Checkpoint, error) {
		ck, err := checkpoint.Open(dir)
		if err != nil {
			return nil, nil, err
		}
		m, err := refw2d1.NewQwen2ModelWeek2(ck)
		if err != nil {
			ck.Close()
			return nil, nil, err
		}
		return m, ck, nil
	}
	target, tck, err := open(targetDir)
	if err != nil {
		return res, err
	}
	defer tck.Close()
	draft, dck, err := open(draftDir)
	if err != nil {
		return res, fmt.Errorf("--draft: %w", err)
	}
	defer dck.Close()
	if dck.Config.VocabSize != tck.Config.VocabSize {
		return res, fmt.Errorf("--draft %s: its vocabulary has %d ids, the model's %d", draftDir, dck.Config.VocabSize, tck.Config.VocabSize)
	}
	tok, err := tokenizer.LoadDir(targetDir)
	if err != nil {
		return res, err
	}
	gen, err := tck.ReadGenerationConfig()
	if err != nil {
		return res, err
	}
	eos := gen.EOSTokenIDs
	if id, ok := tok.TokenID("<|im_end|>"); ok && !contains(eos, id) {
		eos = append(eos, id)
	}
	var prompts [][]int
	longest := 0
	for _, p := range specBenchPrompts {
		ids, err := tok.EncodeChat([]tokenizer.Message{{Role: "user", Content: p}}, true)
		if err != nil {
			return res, err
		}
		prompts = append(prompts, ids)
		longest = max(longest, len(ids))
	}
	// Both models run over every position of a reply: the bench must fit
	// the shorter context, or the RoPE table of one of them ends first.
	ctx, whose := tck.Config.MaxPositionEmbeddings, "the model's"
	if c := dck.Config.MaxPositionEmbeddings; c < ctx {
		ctx, whose = c, "the draft's"
	}
	if longest+maxTokens > ctx {
		room := ctx - longest
		switch {
		case room < 2:
			return res, fmt.Errorf("%w: --draft %s: %s context of %d positions holds none of the bench conversations (up to %d tokens) with a reply", errUsage, draftDir, whose, ctx, longest)
		case maxGiven:
			return res, fmt.Errorf("%w: --gen-len %d: the longest bench conversation (%d tokens) and its reply need %d positions, past %s context of %d; give --gen-len %d or less",
				errUsage, maxTokens, longest, longest+maxTokens, whose, ctx, room)
		}
		fmt.Fprintf(stderr, "note: %s context is %d positions: replies of at most %d tokens after the longest conversation (%d tokens)\n", whose, ctx, room, longest)
		maxTokens = room
	}
	if n := len(prompts[0]) + k + 1; n > tck.Config.MaxPositionEmbeddings {
		return res, fmt.Errorf("%w: --speculate %d: timing a target pass over %d tokens after the first bench conversation needs %d positions, past the model's context of %d",
			errUsage, k, k+1, n, tck.Config.MaxPositionEmbeddings)
	}
	fmt.Fprintf(stderr, "timing %d conversations, %d repeats: the target alone, then with the draft proposing %d…\n", len(prompts), repeats, k)
	var plain, spec []float64
	var st specStats
	for r := range repeats + 1 { // the first round warms up and is not counted
		var tPlain, tSpec float64
		tokens := 0
		for _, prompt := range prompts {
			start := time.Now()
			want := refw2d1.GenerateTokens(target, prompt, refw3d7Greedy{}, maxTokens, eos, 0, nil)
			tPlain += time.Since(start).Seconds()
			start = time.Now()
			got, s, err := refw3d7.SpeculativeGenerate(target, draft, prompt, refw3d7.SpecOptions{K: k, MaxTokens: maxTokens, EOS: eos})
			tSpec += time.Since(start).Seconds()
			if err != nil {
				return res, err
			}
			if !slices.Equal(got, want) {
				return res, fmt.Errorf("speculative decoding gave %v, plain greedy decoding %v: they must agree", got, want)
			}
			tokens += len(want)
			if r > 0 {
				st.Steps, st.Proposed, st.Accepted, st.Generated = st.Steps+s.Steps, st.Proposed+s.Proposed, st.Accepted+s.Accepted, st.Generated+s.Generated
			}
		}
		res.Tokens = tokens
		if r > 0 {
			plain, spec = append(plain, tPlain), append(spec, tSpec)
		}
	}
	res.PlainSeconds, res.SpecSeconds = bench.Median(plain), bench.Median(spec)
	res.SpeedUp = res.PlainSeconds / res.SpecSeconds
	res.Acceptance = st.acceptance()
	res.TokensPerPass = float64(st.Generated) / float64(st.Steps+len(prompts)*repeats)
	res.CostRatio, res.VerifyCost = passCosts(target, draft, prompts[0], k)
	a, c := res.Acceptance, res.CostRatio
	res.ExpectedPerPass = float64(k + 1)
	if a < 1 {
		res.ExpectedPerPass = (1 - math.Pow(a, float64(k+1))) / (1 - a)
	}
	res.Predicted = res.ExpectedPerPass / (float64(k)*c + res.VerifyCost)
	fmt.Fprintf(stdout, "speculative decoding, k=%d, %d conversations, %d tokens (identical with and without the draft)\n", k, len(prompts), res.Tokens)
	fmt.Fprintf(stdout, "  target alone:   %.3f s  (%.1f tokens/s)\n", res.PlainSeconds, float64(res.Tokens)/res.PlainSeconds)
	fmt.Fprintf(stdout, "  with the draft: %.3f s  (%.1f tokens/s)\n", res.SpecSeconds, float64(res.Tokens)/res.SpecSeconds)
	fmt.Fprintf(stdout, "  speed-up %.2fx; acceptance %.1f%% (%d of %d proposals), %.2f tokens per target pass\n",
		res.SpeedUp, 100*res.Acceptance, st.Accepted, st.Proposed, res.TokensPerPass)
	fmt.Fprintf(stdout, "  a draft step costs c = %.3f target steps; a target pass over %d tokens costs v = %.2f target steps\n", res.CostRatio, k+1, res.VerifyCost)
	fmt.Fprintf(stdout, "  expected tokens per pass (1-a^(k+1))/(1-a) = %.2f; predicted speed-up that / (k*c + v) = %.2fx\n", res.ExpectedPerPass, res.Predicted)
	return res, nil
}

// refw3d7Greedy is the greedy sampler of the plain runs: W3D7's Argmax, so
// both runs break ties alike.
type refw3d7Greedy struct{}

func (refw3d7Greedy) Sample(row *tensor.Tensor) int { return refw3d7.Argmax(row.Data()) }

// passCosts measures, after prompt, a draft decode step (c) and a target
// pass over k+1 tokens (v) in target decode steps. The three passes run in
// turn, 30 times, and each cost is the median of the ratios within a turn:
// on a shared machine a slow moment then slows the step it is compared
// with too. The caches rewind after every pass, so each one starts at the
// same position.
func passCosts(target, draft llm.CachedModel, prompt []int, k int) (c, v float64) {
	tokens := slices.Clone(prompt[:min(k+1, len(prompt))])
	for len(tokens) < k+1 {
		tokens = append(tokens, prompt[len(tokens)%len(prompt)])
	}
	type model struct {
		m      llm.CachedModel
		caches []llm.KVCache
	}
	var ms []model
	for _, m := range []llm.CachedModel{target, draft} {
		caches := refw3d7.NewSpecCaches(len(m.NewCaches()))
		m.ForwardLast([][]int{prompt}, 0, caches)
		ms = append(ms, model{m, caches})
	}
	pass := func(x model, n int) float64 {
		start := time.Now()
		x.m.Forward([][]int{tokens[:n]}, len(prompt), x.caches)
		t := time.Since(start).Seconds()
		for _, c := range x.caches {
			_ = c.(llm.RewindCache).Rewind(n)
		}
		return t
	}
	var cs, vs []float64
	for range 30 {
		step := pass(ms[0], 1)
		cs = append(cs, pass(ms[1], 1)/step)
		vs = append(vs, pass(ms[0], k+1)/step)
	}
	return bench.Median(cs), bench.Median(vs)
}
