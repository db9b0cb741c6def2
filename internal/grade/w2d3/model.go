package w2d3

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Storage says how a model holds each of its weight matrices, by checkpoint
// name: "packed", "float" or "" (not loaded). The day's test file reads it
// off the model's fields.
type Storage[M any] func(m M) map[string]string

// QuantizedModel checks Task 5 against mlx-lm on its own 4-bit checkpoints
// (random small Qwen2 configs, tied with groups of 64 and untied with
// groups of 128): the log-probs of a prefill of 2 x 5 tokens and of 4
// single-token steps with the KV cache, with Forward and with ForwardLast.
func QuantizedModel[M llm.CachedModel](t *testing.T, newModel func(ck *checkpoint.Checkpoint) (M, error)) {
	decode(t, "W2D3 Task 5 Qwen2ModelWeek2 on a 4-bit checkpoint", day, "model", newModel, grade.LogProbs,
		"The checks of Tasks 1 to 4 passed, so look at how the model uses them: every projection through your Linear, "+
			"q/k/v with their biases (they are stored as floats beside the packed weights), the embedding's rows dequantized, "+
			"and with tied embeddings the head computed on the packed table (Embedding.AsLinear).")
}

// FloatModel checks Task 5 on checkpoints that are not quantized (bf16,
// the cases of W2D1 Task 3 against Hugging Face): the same model type must
// keep running them.
func FloatModel[M llm.CachedModel](t *testing.T, newModel func(ck *checkpoint.Checkpoint) (M, error)) {
	decode(t, "W2D3 Task 5 Qwen2ModelWeek2 on a bf16 checkpoint", "w2d1", "decode", newModel, grade.LogProbs,
		"On a checkpoint without a quantization block every weight is a float tensor (ck.IsPacked is false): "+
			"your Linear and Embedding must use Week 1's path for them. If W2D1 passes, compare your new model with it.")
}

// Int8Tol is how far the reference's fast path may move the log-probs of
// QuantizedModel's cases: with 8-bit activations (one scale per 64 inputs,
// tensor.MatmulQ4Each) each input of a product moves by up to 1/254 of its
// block's largest value, which through the two layers of these random
// models reaches about 0.3. A wrong kernel is off by whole units.
var Int8Tol = grade.Tol{ATol: 0.5}

// Int8Model is QuantizedModel for a model built with 8-bit activations
// (the reference's engine fast path), to Int8Tol.
func Int8Model[M llm.CachedModel](t *testing.T, newModel func(ck *checkpoint.Checkpoint) (M, error)) {
	decode(t, "W2D3 Qwen2ModelWeek2 on a 4-bit checkpoint with 8-bit activations", day, "model", newModel, Int8Tol,
		"The float path passes QuantizedModel, so look at tensor.MatmulQ4Each and its kernels.")
}

func decode[M llm.CachedModel](t *testing.T, task, fixtureDay, fixtureTask string, newModel func(ck *checkpoint.Checkpoint) (M, error), tol grade.Tol, hint string) {
	grade.Cases(t, task, fixtureDay, fixtureTask, func(t *testing.T, c *fixture.Case) {
		m, cfg := loadCase(t, task, c, newModel)
		for _, last := range []bool{false, true} {
			name, forward := "Forward", m.Forward
			if last {
				name, forward = "ForwardLast", m.ForwardLast
			}
			what := fmt.Sprintf("%s, case %s, %s", task, c.Name, name)
			caches := m.NewCaches()
			if len(caches) != cfg.NumHiddenLayers {
				t.Fatalf("%s: NewCaches returned %d caches for %d layers", what, len(caches), cfg.NumHiddenLayers)
			}
			prompt := grade.MustTokenRows(t, c, "prompt")
			p := len(prompt[0])
			want := grade.MustTensor(t, c, "logprobs_prefill")
			if last {
				want = tensor.Take(want, []int{p - 1}, 1)
			}
			worst := compare(t, fmt.Sprintf("%s, prefill (%d x %d tokens)", what, len(prompt), p), forward(prompt, 0, caches), want, tol, hint)
			steps := grade.MustTokenRows(t, c, "decode_tokens")
			wantSteps := grade.MustTensor(t, c, "logprobs_decode")
			for i := range steps[0] {
				col := make([][]int, len(steps))
				for b := range steps {
					col[b] = []int{steps[b][i]}
				}
				at := fmt.Sprintf("%s, decode step %d (1 token at offset %d)", what, i+1, p+i)
				worst = math.Max(worst, compare(t, at, forward(col, p+i, caches), tensor.Take(wantSteps, []int{i}, 1), tol,
					"The prefill matched, so the weights are read right; a wrong step means the cache or the offsets (W2D1) are used differently here."))
			}
			t.Logf("%s: max |Δ log-prob| over the prefill and %d steps = %.3g", what, len(steps[0]), worst)
		}
	})
}

func compare(t *testing.T, what string, got, want *tensor.Tensor, tol grade.Tol, hint string) float64 {
	t.Helper()
	if got == nil || !slices.Equal(got.Shape(), want.Shape()) {
		t.Fatalf("%s: logits of shape %v, want %v", what, shapeOf(got), want.Shape())
	}
	lp := grade.LogSoftmax(got)
	if report := grade.Compare(lp, want, tol); report != "" {
		t.Fatalf("%s (log-probs): output does not match the reference\n%s\n    %s", what, report, hint)
	}
	return grade.MaxAbsDiff(lp, want)
}

// loadCase opens the case's model_dir for the rest of the test and builds
// the model from it.
func loadCase[M llm.CachedModel](t *testing.T, what string, c *fixture.Case, newModel func(ck *checkpoint.Checkpoint) (M, error)) (M, checkpoint.Config) {
	t.Helper()
	ck := openCase(t, c)
	m, err := newModel(ck)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return m, ck.Config
}

func openCase(t *testing.T, c *fixture.Case) *checkpoint.Checkpoint {
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
	return ck
}

// StaysPacked checks that Task 5's constructor keeps every weight the
// checkpoint stores packed in packed form (and the others as floats): a
// model that dequantizes at load time computes the right numbers with four
// to eight times the memory, and reads that much for every token.
func StaysPacked[M llm.CachedModel](t *testing.T, newModel func(ck *checkpoint.Checkpoint) (M, error), storage Storage[M]) {
	const task = "W2D3 Task 5 NewQwen2ModelWeek2 keeps quantized weights packed"
	grade.Cases(t, task, day, "model", func(t *testing.T, c *fixture.Case) {
		ck := openCase(t, c)
		m, err := newModel(ck)
		if err != nil {
			t.Fatalf("%s: %v", task, err)
		}
		got := storage(m)
		var wrong []string
		for _, name := range matrices(ck.Config) {
			want := "float"
			if ck.IsPacked(name) {
				want = "packed"
			}
			if got[name] != want {
				have := got[name]
				if have == "" {
					have = "not loaded"
				}
				wrong = append(wrong, fmt.Sprintf("%s is %s, want %s", name, have, want))
			}
		}
		sort.Strings(wrong)
		if len(wrong) > 0 {
			if len(wrong) > 4 {
				wrong = append(wrong[:4], fmt.Sprintf("and %d more", len(wrong)-4))
			}
			t.Fatalf("%s, case %s: %s. Read a weight that ck.IsPacked reports with ck.Packed and keep it packed; "+
				"read the others with ck.Tensor", task, c.Name, strings.Join(wrong, "; "))
		}
	})
}

// matrices names a Qwen2 checkpoint's weight matrices.
func matrices(cfg checkpoint.Config) []string {
	names := []string{"model.embed_tokens.weight"}
	for i := range cfg.NumHiddenLayers {
		for _, n := range []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"} {
			names = append(names, fmt.Sprintf("model.layers.%d.%s.weight", i, n))
		}
	}
	if !cfg.TieWordEmbeddings {
		names = append(names, "lm_head.weight")
	}
	return names
}
