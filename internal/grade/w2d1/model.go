package w2d1

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// AttentionLayer is what the day's Qwen2AttentionWeek2 offers.
type AttentionLayer interface {
	Forward(x *tensor.Tensor, offset int, cache llm.KVCache, mask *tensor.Tensor) *tensor.Tensor
}

// AttentionConstructor builds the Week 2 attention layer from the weights of
// day3.NewQwen2Attention.
type AttentionConstructor[A AttentionLayer] func(hiddenSize, numHeads, numKVHeads int,
	wq, bq, wk, bk, wv, bv, wo *tensor.Tensor, maxSeqLen int, theta float64) A

// attentionTol is the block tolerance of W1D5: the reference is Hugging
// Face's float32 computation, RoPE tables included, not a float64 one.
var attentionTol = grade.Tol{RTol: 1e-4, ATol: 1e-5}

// Attention checks Task 2 against Hugging Face's Qwen2Attention with a
// DynamicCache: layer 0 of each random checkpoint, fed 5, 1, 1, 3 and 1 new
// positions in turn, with a bottom-right causal mask whenever more than one
// position is new.
func Attention[A AttentionLayer](t *testing.T, newAttention AttentionConstructor[A], newCache func() llm.KVCache) {
	const task = "W2D1 Task 2 Qwen2AttentionWeek2.Forward"
	grade.Cases(t, task, day, "attention", func(t *testing.T, c *fixture.Case) {
		w := func(name string) *tensor.Tensor { return grade.MustTensor(t, c, name) }
		steps := intList(t, c, "steps")
		cache := newCache()
		a := newAttention(grade.MustInt(t, c, "hidden_size"), grade.MustInt(t, c, "num_heads"), grade.MustInt(t, c, "num_kv_heads"),
			w("wq"), w("bq"), w("wk"), w("bk"), w("wv"), w("bv"), w("wo"),
			grade.MustInt(t, c, "max_position_embeddings"), grade.MustFloat(t, c, "rope_theta"))
		offset := 0
		for i, l := range steps {
			mask := grade.OptionalTensor(t, c, fmt.Sprintf("mask%d", i))
			what := fmt.Sprintf("%s, case %s, call %d (%d new positions at offset %d, %s)", task, c.Name, i+1, l, offset, maskWords(mask))
			got := a.Forward(w(fmt.Sprintf("x%d", i)), offset, cache, mask)
			compareWithHint(t, what, got, w(fmt.Sprintf("out%d", i)), attentionTol, stepHint(i, offset))
			offset += l
			if got := cache.Offset(); got != offset {
				t.Fatalf("%s: afterwards the cache's Offset() is %d, want %d", what, got, offset)
			}
		}
	})
}

func maskWords(mask *tensor.Tensor) string {
	if mask == nil {
		return "no mask"
	}
	return fmt.Sprintf("causal mask %d x %d", mask.Dim(0), mask.Dim(1))
}

// stepHint says what a failure at call i (starting at offset) most likely
// means, beyond the numbers.
func stepHint(i, offset int) string {
	if i == 0 {
		return "The first call starts at position 0 with an empty cache and must equal Week 1's attention: check that Week 1 Day 3 passes, " +
			"and that keys are rotated exactly once, before they go into the cache (what the cache hands back is used as it is, never rotated again)."
	}
	return fmt.Sprintf("The calls before this one matched. A wrong call after them usually means the new positions were rotated for position 0 instead of %d (pass the offset to RoPE), "+
		"that keys from the cache were rotated a second time (only the new keys are rotated, before they go into the cache), "+
		"or that the queries attended to the new keys alone instead of everything the cache hands back.", offset)
}

// compareWithHint is grade.AllClose with one more paragraph after the
// report. It returns the largest absolute difference, for the log.
func compareWithHint(t *testing.T, what string, got, want *tensor.Tensor, tol grade.Tol, hint string) float64 {
	t.Helper()
	if report := grade.Compare(got, want, tol); report != "" {
		t.Fatalf("%s: output does not match the reference\n%s\n    %s", what, report, hint)
	}
	return grade.MaxAbsDiff(got, want)
}

// loadCase opens the case's model folder (model_dir, relative to the
// repository root) for the rest of the test and builds the model from it.
func loadCase[M llm.CachedModel](t *testing.T, what string, c *fixture.Case, newModel func(ck *checkpoint.Checkpoint) (M, error)) (M, checkpoint.Config) {
	t.Helper()
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir, ok := c.Params["model_dir"].(string)
	if !ok {
		t.Fatalf("case %s has no model_dir", c.Name)
	}
	ck, err := checkpoint.Open(filepath.Join(root, filepath.FromSlash(dir)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	m, err := newModel(ck)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return m, ck.Config
}

// newCaches asks the model for its caches and checks there is one per layer.
func newCaches(t *testing.T, what string, m llm.CachedModel, cfg checkpoint.Config) []llm.KVCache {
	t.Helper()
	caches := m.NewCaches()
	if len(caches) != cfg.NumHiddenLayers {
		t.Fatalf("%s: NewCaches returned %d caches for a model of %d layers; want one per layer", what, len(caches), cfg.NumHiddenLayers)
	}
	for i, c := range caches {
		if c == nil || c.Offset() != 0 {
			t.Fatalf("%s: NewCaches returned a nil or non-empty cache for layer %d", what, i)
		}
	}
	return caches
}

// checkOffsets fails unless every cache holds want positions.
func checkOffsets(t *testing.T, what string, caches []llm.KVCache, want int) {
	t.Helper()
	for i, c := range caches {
		if got := c.Offset(); got != want {
			t.Fatalf("%s: afterwards layer %d's cache holds %d positions, want %d", what, i, got, want)
		}
	}
}

// Decode checks Task 3's Forward against Hugging Face with a DynamicCache:
// the log-probs of a prefill and of 8 single-token decode steps, each fed
// the greedy choice of the step before, on the two random checkpoints
// (prompts of 2 x 5 tokens) and on the shipped model (a chat prompt).
func Decode[M llm.CachedModel](t *testing.T, newModel func(ck *checkpoint.Checkpoint) (M, error)) {
	decode(t, "W2D1 Task 3 Qwen2ModelWeek2.Forward", newModel, false)
}

// DecodeLast checks Task 3's ForwardLast on the cases of Decode: shape
// B x 1 x vocab, and the log-probs of the last position of each call.
func DecodeLast[M llm.CachedModel](t *testing.T, newModel func(ck *checkpoint.Checkpoint) (M, error)) {
	decode(t, "W2D1 Task 3 Qwen2ModelWeek2.ForwardLast", newModel, true)
}

func decode[M llm.CachedModel](t *testing.T, task string, newModel func(ck *checkpoint.Checkpoint) (M, error), last bool) {
	grade.Cases(t, task, day, "decode", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		m, cfg := loadCase(t, what, c, newModel)
		forward := m.Forward
		if last {
			forward = m.ForwardLast
		}
		caches := newCaches(t, what, m, cfg)
		prompt := grade.MustTokenRows(t, c, "prompt")
		p := len(prompt[0])
		want := grade.MustTensor(t, c, "logprobs_prefill")
		if last {
			want = tensor.Take(want, []int{p - 1}, 1)
		}
		at := fmt.Sprintf("%s, prefill (%d x %d tokens at offset 0)", what, len(prompt), p)
		got := forward(prompt, 0, caches)
		checkShape(t, at, got, want)
		worst := compareWithHint(t, at+" (log-probs)", grade.LogSoftmax(got), want, grade.LogProbs,
			"The prefill is Week 1's forward pass with empty caches. If Week 1 Day 5 passes, check that keys are rotated exactly once, before they go into the cache, "+
				"and that each layer gets its own cache (caches[i] for layer i).")
		checkOffsets(t, at, caches, p)
		steps := grade.MustTokenRows(t, c, "decode_tokens")
		wantSteps := grade.MustTensor(t, c, "logprobs_decode")
		for i := range steps[0] {
			col := make([][]int, len(steps))
			for b := range steps {
				col[b] = []int{steps[b][i]}
			}
			at := fmt.Sprintf("%s, decode step %d (1 token at offset %d)", what, i+1, p+i)
			got := forward(col, p+i, caches)
			want := tensor.Take(wantSteps, []int{i}, 1)
			checkShape(t, at, got, want)
			worst = math.Max(worst, compareWithHint(t, at+" (log-probs)", grade.LogSoftmax(got), want, grade.LogProbs, decodeHint(i, p)))
			checkOffsets(t, at, caches, p+i+1)
		}
		t.Logf("%s: max |Δ log-prob| over the prefill and %d steps = %.3g", what, len(steps[0]), worst)
	})
}

func decodeHint(i, p int) string {
	if i == 0 {
		return fmt.Sprintf("The prefill matched, so the weights and the layers are right; the first single-token step is the first that depends on the cache. "+
			"Check that the token is rotated for position %d (the offset), that the cached keys are not rotated again, and that attention reads every cached position.", p)
	}
	return "The prefill and the earlier steps matched: look for something that goes wrong only as the cache grows, such as storage that is overwritten when it is enlarged, or an offset that is not advanced."
}

func checkShape(t *testing.T, what string, got, want *tensor.Tensor) {
	t.Helper()
	if got == nil || !slices.Equal(got.Shape(), want.Shape()) {
		var shape []int
		if got != nil {
			shape = got.Shape()
		}
		t.Fatalf("%s: logits of shape %v, want %v (B x L x vocab for Forward, B x 1 x vocab for ForwardLast)", what, shape, want.Shape())
	}
}

// Chunked checks Task 3's Forward on a prompt fed in two pieces, 3 tokens at
// offset 0 and then 4 at offset 3: their log-probs must be those of Hugging
// Face's one-shot 7-token forward pass.
func Chunked[M llm.CachedModel](t *testing.T, newModel func(ck *checkpoint.Checkpoint) (M, error)) {
	const task = "W2D1 Task 3 Qwen2ModelWeek2.Forward, chunked prefill"
	grade.Cases(t, task, day, "chunked", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		m, cfg := loadCase(t, what, c, newModel)
		caches := newCaches(t, what, m, cfg)
		tokens := grade.MustTokenRows(t, c, "tokens")
		want := grade.MustTensor(t, c, "logprobs")
		var parts []*tensor.Tensor
		offset := 0
		var pieces []string
		for _, n := range intList(t, c, "chunks") {
			piece := make([][]int, len(tokens))
			for b := range tokens {
				piece[b] = tokens[b][offset : offset+n]
			}
			pieces = append(pieces, fmt.Sprintf("%d at offset %d", n, offset))
			got := m.Forward(piece, offset, caches)
			checkShape(t, fmt.Sprintf("%s, the piece of %d tokens at offset %d", what, n, offset), got, tensor.Slice(want, 1, offset, offset+n))
			parts = append(parts, got)
			offset += n
		}
		worst := compareWithHint(t, fmt.Sprintf("%s (tokens %v, against one call with all %d)", what, pieces, offset),
			grade.LogSoftmax(tensor.Concat(1, parts...)), want, grade.LogProbs,
			"A piece after the first has L new queries and S = offset + L keys: it needs the bottom-right causal mask CausalMask(L, offset+L), not CausalMask(L, L) and not none.")
		checkOffsets(t, what, caches, offset)
		t.Logf("%s: max |Δ log-prob| = %.3g", what, worst)
	})
}

// intList reads a list of integers from a case's parameters.
func intList(t *testing.T, c *fixture.Case, name string) []int {
	t.Helper()
	raw, ok := c.Params[name].([]any)
	if !ok {
		t.Fatalf("case %s: parameter %q is not a list", c.Name, name)
	}
	out := make([]int, len(raw))
	for i, r := range raw {
		f, ok := r.(float64)
		if !ok || f != math.Trunc(f) {
			t.Fatalf("case %s: parameter %q holds %v, not an integer", c.Name, name, r)
		}
		out[i] = int(f)
	}
	return out
}
