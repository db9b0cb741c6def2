package w3d7

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/bench"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// Target and Draft are the shipped model and its draft, relative to the
// repository root.
const (
	Target = "models/tinyqwen-chat"
	Draft  = "models/tinyqwen-draft"
)

// Constructor builds the tree's Week 2 model from an open checkpoint.
type Constructor[M llm.CachedModel] func(ck *checkpoint.Checkpoint) (M, error)

// Stats is what the day's Stats counts, as the checks read it.
type Stats struct{ Steps, Proposed, Accepted, Generated int }

// SpecFunc is the day's SpeculativeGenerate.
type SpecFunc func(target, draft llm.CachedModel, prompt []int, k, maxTokens int, eos []int, onToken func(int)) ([]int, Stats, error)

// GenerateFunc is the day's Generate.
type GenerateFunc func(target, draft llm.CachedModel, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, k, maxTokens int, eos []int, onText func(string)) (string, Stats, error)

// open loads a model folder of the repository (or any folder) with the
// tree's constructor.
func open[M llm.CachedModel](t *testing.T, dir string, newModel Constructor[M]) llm.CachedModel {
	t.Helper()
	if !filepath.IsAbs(dir) {
		root, err := fixture.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, filepath.FromSlash(dir))
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	m, err := newModel(ck)
	if err != nil {
		t.Fatalf("loading %s: %v", dir, err)
	}
	return m
}

// watched passes calls on to a model and checks how speculative decoding
// drives it: every call starts where the caches end (the model's own
// Forward checks that too), and no call reaches past limit positions.
type watched struct {
	llm.CachedModel
	t      *testing.T
	what   string
	limit  int
	calls  int
	maxLen int // the most tokens in one call after the first
}

func (w *watched) Forward(tokens [][]int, offset int, caches []llm.KVCache) *tensor.Tensor {
	w.check(tokens, offset, caches)
	return w.CachedModel.Forward(tokens, offset, caches)
}

func (w *watched) ForwardLast(tokens [][]int, offset int, caches []llm.KVCache) *tensor.Tensor {
	w.check(tokens, offset, caches)
	return w.CachedModel.ForwardLast(tokens, offset, caches)
}

func (w *watched) check(tokens [][]int, offset int, caches []llm.KVCache) {
	w.t.Helper()
	for i, c := range caches {
		if c.Offset() != offset {
			w.t.Fatalf("%s: a call at offset %d, but the cache of layer %d holds %d positions (a rewind missed or went too far)", w.what, offset, i, c.Offset())
		}
	}
	if end := offset + len(tokens[0]); w.limit > 0 && end > w.limit {
		w.t.Fatalf("%s: a call of %d tokens at offset %d reaches position %d; plain greedy decoding never goes past %d", w.what, len(tokens[0]), offset, end, w.limit)
	}
	if w.calls > 0 {
		w.maxLen = max(w.maxLen, len(tokens[0]))
	}
	w.calls++
}

// plainGreedy is the grader's own greedy decoding with the target alone:
// prefill, then one token per step.
func plainGreedy(m llm.CachedModel, prompt []int, maxTokens int, eos []int) []int {
	caches := m.NewCaches()
	logits := m.ForwardLast([][]int{prompt}, 0, caches)
	var out []int
	for {
		d := logits.Data()
		next := argmax(d[len(d)-logits.Dim(logits.NDim()-1):])
		out = append(out, next)
		if len(out) == maxTokens || slices.Contains(eos, next) {
			return out
		}
		logits = m.ForwardLast([][]int{{next}}, len(prompt)+len(out)-1, caches)
	}
}

// run calls spec with the target and draft watched, and checks what must
// hold whatever the draft: the ids equal want, the stats add up, no target
// call is longer than k+1 tokens, and there is one target call per step.
func run(t *testing.T, what string, spec SpecFunc, target, draft llm.CachedModel, prompt []int, k, maxTokens int, eos, want []int) Stats {
	t.Helper()
	limit := len(prompt) + maxTokens - 1
	wt := &watched{CachedModel: target, t: t, what: what + " (target)", limit: limit}
	wd := &watched{CachedModel: draft, t: t, what: what + " (draft)", limit: limit}
	var streamed []int
	got, st, err := spec(wt, wd, prompt, k, maxTokens, eos, func(id int) { streamed = append(streamed, id) })
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !slices.Equal(got, want) {
		n := 0
		for n < min(len(got), len(want)) && got[n] == want[n] {
			n++
		}
		t.Fatalf("%s: speculative decoding gave %v\n    greedy decoding with the target alone gives %v (first difference at token %d)", what, got, want, n)
	}
	if !slices.Equal(streamed, got) {
		t.Fatalf("%s: onToken saw %v, the result is %v", what, streamed, got)
	}
	switch {
	case st.Generated != len(got):
		t.Fatalf("%s: Stats.Generated = %d for %d tokens", what, st.Generated, len(got))
	case st.Accepted > st.Proposed || st.Proposed > k*st.Steps:
		t.Fatalf("%s: Stats %+v: accepted more than proposed, or more than k=%d proposals in a step", what, st, k)
	case len(got) > st.Steps+1+st.Accepted:
		t.Fatalf("%s: Stats %+v: %d tokens from %d steps (each gives at most its accepted tokens and one of the target's) and the prefill's", what, st, len(got), st.Steps)
	case wt.calls != st.Steps+1:
		t.Fatalf("%s: the target ran %d times for a prefill and %d steps: one pass must verify a whole proposal", what, wt.calls, st.Steps)
	case wt.maxLen > k+1:
		t.Fatalf("%s: a target pass took %d tokens; a step feeds the last token and at most k=%d proposals", what, wt.maxLen, k)
	}
	return st
}

// conversation is one parity case of testdata/shipped/greedy.
type conversation struct {
	name       string
	msgs       []tokenizer.Message
	prompt     []int
	want       []int // Hugging Face's greedy ids
	reply      string
	maxTokens  int
	eosOfModel []int
}

func conversations(t *testing.T, task string) []conversation {
	t.Helper()
	cases, err := fixture.Load("shipped", "greedy")
	if err != nil {
		t.Fatalf("%s: %v", task, err)
	}
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(filepath.Join(root, Target))
	if err != nil {
		t.Fatal(err)
	}
	gen, err := ck.ReadGenerationConfig()
	ck.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out []conversation
	for _, c := range cases {
		out = append(out, conversation{
			name: c.Name, msgs: grade.MustMessages(t, c), prompt: grade.MustInts(t, c, "prompt_ids"),
			want: grade.MustInts(t, c, "ids"), reply: c.Params["reply"].(string),
			maxTokens: grade.MustInt(t, c, "max_tokens"), eosOfModel: gen.EOSTokenIDs,
		})
	}
	return out
}

// Speculate checks Task 3 on the shipped model:
//   - with the shipped draft, for k = 1 … 6, the ids of Hugging Face's greedy
//     generation on the parity conversations, and the ids of the grader's
//     plain greedy loop on random prompts;
//   - with a draft of random weights (bad on purpose): the same ids, and
//     almost nothing accepted;
//   - with the target as its own draft: every proposal accepted;
//   - errors for k < 1, an empty prompt and a draft of another vocabulary.
func Speculate[M llm.CachedModel](t *testing.T, newModel Constructor[M], spec SpecFunc) {
	const task = "W3D7 Task 3 SpeculativeGenerate"
	grade.PointToChapter(t, task)
	var target, draft llm.CachedModel
	if grade.Run(t, task+": loading the models with the Week 2 model (W2D1)", func() {
		target, draft = open(t, Target, newModel), open(t, Draft, newModel)
	}) {
		return
	}
	convs := conversations(t, task)
	var st Stats
	stubbed := false
	for _, c := range convs {
		if stubbed {
			break
		}
		for k := 1; k <= 6 && !stubbed; k++ {
			what := fmt.Sprintf("%s, shipped draft, conversation %s, k=%d", task, c.name, k)
			stubbed = grade.Run(t, what, func() {
				s := run(t, what, spec, target, draft, c.prompt, k, c.maxTokens, c.eosOfModel, c.want)
				st.Steps, st.Proposed, st.Accepted, st.Generated = st.Steps+s.Steps, st.Proposed+s.Proposed, st.Accepted+s.Accepted, st.Generated+s.Generated
			})
		}
	}
	if stubbed {
		return
	}
	t.Logf("%s: shipped draft on the parity conversations, k = 1 … 6: %d of %d proposals accepted (%.0f%%), %.2f tokens per target pass",
		task, st.Accepted, st.Proposed, 100*float64(st.Accepted)/float64(max(st.Proposed, 1)), float64(st.Generated)/float64(st.Steps+len(convs)*6))

	t.Run("random_prompts", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(17, 3107))
		for i := range 4 {
			prompt := make([]int, 3+rng.IntN(30))
			for j := range prompt {
				prompt[j] = rng.IntN(3069) // ordinary tokens: below <|endoftext|>
			}
			want := plainGreedy(target, prompt, 24, nil)
			for k := 1; k <= 6; k++ {
				what := fmt.Sprintf("%s, shipped draft, random prompt %d (%d tokens), k=%d", task, i, len(prompt), k)
				grade.Run(t, what, func() { run(t, what, spec, target, draft, prompt, k, 24, nil, want) })
			}
		}
	})

	t.Run("random_draft", func(t *testing.T) {
		dir := t.TempDir()
		ck, err := checkpoint.Open(filepath.Join(mustRoot(t), Draft))
		if err != nil {
			t.Fatal(err)
		}
		cfg := ck.Config
		ck.Close()
		shape := bench.Shape{Name: "random-draft", VocabSize: cfg.VocabSize, HiddenSize: cfg.HiddenSize, IntermediateSize: cfg.IntermediateSize,
			NumHiddenLayers: cfg.NumHiddenLayers, NumAttentionHeads: cfg.NumAttentionHeads, NumKeyValueHeads: cfg.NumKeyValueHeads,
			MaxPositionEmbeddings: cfg.MaxPositionEmbeddings, RopeTheta: cfg.RopeTheta, RMSNormEps: cfg.RMSNormEps, TieWordEmbeddings: cfg.TieWordEmbeddings}
		if err := bench.WriteRandomModel(context.Background(), dir, shape, bench.RandomModelOptions{Seed: 3107, TokenizerFrom: filepath.Join(mustRoot(t), Target)}); err != nil {
			t.Fatal(err)
		}
		var bad llm.CachedModel
		grade.Run(t, task+": loading the random draft", func() { bad = open(t, dir, newModel) })
		if bad == nil {
			return
		}
		var all Stats
		for _, c := range convs {
			for _, k := range []int{1, 4} {
				what := fmt.Sprintf("%s, random-weights draft, conversation %s, k=%d", task, c.name, k)
				grade.Run(t, what, func() {
					s := run(t, what, spec, target, bad, c.prompt, k, c.maxTokens, c.eosOfModel, c.want)
					all.Proposed += s.Proposed
					all.Accepted += s.Accepted
				})
			}
		}
		// A random model agrees with the target about as often as chance
		// allows; a tenth is far above that and far below a trained draft.
		if rate := float64(all.Accepted) / float64(max(all.Proposed, 1)); rate > 0.1 {
			t.Errorf("%s: a draft of random weights had %d of %d proposals accepted (%.0f%%): acceptance must be decided by the target's argmax", task, all.Accepted, all.Proposed, 100*rate)
		}
		t.Logf("%s: random-weights draft: %d of %d proposals accepted", task, all.Accepted, all.Proposed)
	})

	t.Run("target_as_draft", func(t *testing.T) {
		for _, c := range convs {
			for _, k := range []int{2, 5} {
				what := fmt.Sprintf("%s, the target as its own draft, conversation %s, k=%d", task, c.name, k)
				grade.Run(t, what, func() {
					s := run(t, what, spec, target, target, c.prompt, k, c.maxTokens, c.eosOfModel, c.want)
					if s.Accepted != s.Proposed || s.Proposed == 0 {
						t.Fatalf("%s: %d of %d proposals accepted; a draft that is the target must have all of them accepted", what, s.Accepted, s.Proposed)
					}
				})
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		prompt := convs[0].prompt
		for _, bad := range []struct {
			name          string
			draft         llm.CachedModel
			prompt        []int
			k             int
			wantInMessage string
		}{
			{"k_zero", draft, prompt, 0, "K"},
			{"empty_prompt", draft, nil, 3, "prompt"},
			{"other_vocabulary", wider{draft}, prompt, 3, "vocabulary"},
		} {
			what := fmt.Sprintf("%s, case %s", task, bad.name)
			grade.Run(t, what, func() {
				_, _, err := spec(target, bad.draft, bad.prompt, bad.k, 8, nil, nil)
				if err == nil {
					t.Fatalf("%s: no error", what)
				}
				if !strings.Contains(err.Error(), bad.wantInMessage) {
					t.Errorf("%s: the error %q does not mention %q", what, err, bad.wantInMessage)
				}
			})
		}
	})
}

// wider is a model whose logits have one column more than its inner
// model's: a draft of another vocabulary.
type wider struct{ llm.CachedModel }

func (w wider) Forward(tokens [][]int, offset int, caches []llm.KVCache) *tensor.Tensor {
	return widen(w.CachedModel.Forward(tokens, offset, caches))
}

func (w wider) ForwardLast(tokens [][]int, offset int, caches []llm.KVCache) *tensor.Tensor {
	return widen(w.CachedModel.ForwardLast(tokens, offset, caches))
}

func widen(x *tensor.Tensor) *tensor.Tensor {
	s := x.Shape()
	return tensor.Concat(len(s)-1, x, tensor.Zeros(append(s[:len(s)-1:len(s)-1], 1)...))
}

func mustRoot(t *testing.T) string {
	t.Helper()
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Generate checks Task 4: the replies to the parity conversations, with the
// shipped draft and k = 4, are Hugging Face's, and the streamed pieces add
// up to them.
func Generate[M llm.CachedModel](t *testing.T, newModel Constructor[M], generate GenerateFunc) {
	const task = "W3D7 Task 4 Generate"
	grade.PointToChapter(t, task)
	root := mustRoot(t)
	tok, err := tokenizer.LoadDir(filepath.Join(root, Target))
	if err != nil {
		t.Fatal(err)
	}
	var target, draft llm.CachedModel
	if grade.Run(t, task+": loading the models with the Week 2 model (W2D1)", func() {
		target, draft = open(t, Target, newModel), open(t, Draft, newModel)
	}) {
		return
	}
	for _, c := range conversations(t, task) {
		what := fmt.Sprintf("%s, conversation %s", task, c.name)
		if grade.Run(t, what, func() {
			var pieces []string
			got, st, err := generate(target, draft, tok, c.msgs, 4, c.maxTokens, c.eosOfModel, func(s string) { pieces = append(pieces, s) })
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if got != c.reply {
				t.Fatalf("%s: replied %q, Hugging Face %q", what, got, c.reply)
			}
			if strings.Join(pieces, "") != got {
				t.Fatalf("%s: streamed pieces %q do not add up to the reply", what, pieces)
			}
			if st.Generated != len(c.want) {
				t.Fatalf("%s: Stats.Generated = %d, the reply has %d tokens (with its end-of-turn token)", what, st.Generated, len(c.want))
			}
		}) {
			return
		}
	}
}
