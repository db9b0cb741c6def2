// Package w1d5 holds the checks of Week 1 Day 5 (the transformer block, the
// embedding and the whole model), shared by week1/day5 and solutions/week1/day5.
package w1d5

import (
	"encoding/json"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

const day = "w1d5"

// Block is what NewQwen2TransformerBlock returns.
type Block interface {
	Forward(x, mask *tensor.Tensor) *tensor.Tensor
}

// BlockConstructor is the signature of NewQwen2TransformerBlock.
type BlockConstructor[B Block] func(numHeads, numKVHeads, hiddenSize, intermediateSize int, rmsNormEps float32,
	wq, bq, wk, bk, wv, bv, wo, wGate, wUp, wDown, wInputNorm, wPostAttentionNorm *tensor.Tensor,
	maxSeqLen int, theta float64) B

// TransformerBlock checks Task 1 against Hugging Face Qwen2DecoderLayer, with
// the causal mask and with none.
func TransformerBlock[B Block](t *testing.T, newBlock BlockConstructor[B]) {
	const task = "W1D5 Task 1 Qwen2TransformerBlock"
	grade.Cases(t, task, day, "block", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		w := func(name string) *tensor.Tensor { return grade.MustTensor(t, c, name) }
		x, mask := w("x"), grade.OptionalTensor(t, c, "mask")
		names := []string{"wq", "bq", "wk", "bk", "wv", "bv", "wo", "w_gate", "w_up", "w_down", "w_input_norm", "w_post_attention_norm"}
		weights := map[string]*tensor.Tensor{}
		inputs := []grade.Input{grade.In("x", x), grade.In("mask", mask)}
		for _, name := range names {
			weights[name] = w(name)
			inputs = append(inputs, grade.In(name, weights[name]))
		}
		got := grade.Unchanged(t, what, func() *tensor.Tensor {
			b := newBlock(grade.MustInt(t, c, "num_heads"), grade.MustInt(t, c, "num_kv_heads"),
				grade.MustInt(t, c, "hidden_size"), grade.MustInt(t, c, "intermediate_size"),
				float32(grade.MustFloat(t, c, "rms_norm_eps")),
				weights["wq"], weights["bq"], weights["wk"], weights["bk"], weights["wv"], weights["bv"], weights["wo"],
				weights["w_gate"], weights["w_up"], weights["w_down"], weights["w_input_norm"], weights["w_post_attention_norm"],
				x.Dim(1), grade.MustFloat(t, c, "rope_theta"))
			return b.Forward(x, mask)
		}, inputs...)
		// HF computes in float32 here (cos/sin too), not float64: allow for both
		// sides' rounding through two residual branches.
		grade.AllClose(t, what, got, w("out"), grade.Tol{RTol: 1e-4, ATol: 1e-5})
	})
}

// Embedding is what NewEmbedding returns.
type Embedding interface {
	Forward(tokens [][]int) *tensor.Tensor
	AsLinear(x *tensor.Tensor) *tensor.Tensor
}

// EmbeddingForward checks Task 2: gathering rows, from a float32 and from a
// bfloat16 table (which must come back as float32). Then the panics the
// chapter asks for: rows of different lengths, and an id outside the table.
func EmbeddingForward[E Embedding](t *testing.T, newEmbedding func(vocabSize, dim int, weight *tensor.Tensor) E) {
	const task = "W1D5 Task 2 Embedding.Forward"
	stub := grade.Cases(t, task, day, "embedding", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		weight := grade.MustTensor(t, c, "weight")
		tokens := grade.MustTokenRows(t, c, "tokens")
		want := grade.MustTensor(t, c, "out")
		vocab, dim := grade.MustInt(t, c, "vocab_size"), grade.MustInt(t, c, "dim")
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return newEmbedding(vocab, dim, weight).Forward(tokens) },
			grade.In("weight", weight))
		grade.Exact(t, what, got, want)
		// The same table stored as bfloat16: rows widen exactly to their bf16 value.
		bf := tensor.AsType(weight, tensor.BFloat16)
		got = grade.Unchanged(t, what+" (bf16 table)", func() *tensor.Tensor { return newEmbedding(vocab, dim, bf).Forward(tokens) },
			grade.In("weight", bf))
		if got.DType() != tensor.Float32 {
			t.Fatalf("%s (bf16 table): got a %v tensor, want float32", what, got.DType())
		}
		wantBF := tensor.AsType(tensor.AsType(want, tensor.BFloat16), tensor.Float32)
		grade.Exact(t, what+" (bf16 table)", got, wantBF)
	})
	if stub {
		return
	}
	table := tensor.Zeros(10, 4)
	grade.Misuses(t, task,
		// Six ids in all, as many as 3 rows of 2: a version that only counts
		// them would reshape without complaint.
		grade.Misuse{Name: "rows_of_different_lengths", What: "Forward([[1 2] [3] [4 5 6]])",
			Why: "every row of tokens must have the same length", Own: true,
			Call: func() { newEmbedding(10, 4, table).Forward([][]int{{1, 2}, {3}, {4, 5, 6}}) }},
		grade.Misuse{Name: "id_outside_the_table", What: "Forward([[3 10]]) on a table of 10 rows",
			Why:  "an id outside 0 … V-1 is a bug in the caller (tensor.Take panics on it)",
			Call: func() { newEmbedding(10, 4, table).Forward([][]int{{3, 10}}) }},
	)
}

// EmbeddingAsLinear checks Task 3: the tied output head, x·Weightᵀ.
func EmbeddingAsLinear[E Embedding](t *testing.T, newEmbedding func(vocabSize, dim int, weight *tensor.Tensor) E) {
	const task = "W1D5 Task 3 Embedding.AsLinear"
	grade.Cases(t, task, day, "as_linear", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		x, weight := grade.MustTensor(t, c, "x"), grade.MustTensor(t, c, "weight")
		got := grade.Unchanged(t, what, func() *tensor.Tensor {
			return newEmbedding(grade.MustInt(t, c, "vocab_size"), grade.MustInt(t, c, "dim"), weight).AsLinear(x)
		}, grade.In("x", x), grade.In("weight", weight))
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), grade.Products)
	})
}

// Model is what NewQwen2ModelWeek1 returns.
type Model = llm.Model

// WholeModel checks Task 4 against Hugging Face Qwen2ForCausalLM: log-probs of
// every position, on a checkpoint with tied embeddings and one with a separate
// lm_head, both stored in bfloat16. It also checks that a checkpoint whose
// config disagrees with its tensors gives an error, not a panic.
func WholeModel[M Model](t *testing.T, newModel func(ck *checkpoint.Checkpoint) (M, error)) {
	const task = "W1D5 Task 4 Qwen2ModelWeek1"
	modelCases(t, task, func(t *testing.T, what, dir string, tokens [][]int, want *tensor.Tensor) {
		CompareLogProbs(t, what, dir, tokens, want, newModel)
	})
	t.Run("config_disagrees_with_weights", func(t *testing.T) {
		grade.Run(t, task+", bad checkpoint", func() {
			root, err := fixture.Dir()
			if err != nil {
				t.Fatal(err)
			}
			dir := brokenCheckpoint(t, filepath.Join(root, day, "checkpoints", "tied"))
			ck, err := checkpoint.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			if _, err := newModel(ck); err == nil {
				t.Fatalf("%s: a config with the wrong intermediate_size loaded without error", task)
			} else if !strings.Contains(err.Error(), "mlp") {
				t.Errorf("%s: the error should name the tensor whose shape is wrong; got: %v", task, err)
			}
		})
	})
}

// LastModel is a model with the Task 5 method.
type LastModel = llm.LastModel

// LastPosition checks Task 5: ForwardLast must return B x 1 x vocab logits
// whose log-probs are Hugging Face's at the last position, on both
// checkpoints of Task 4.
func LastPosition[M LastModel](t *testing.T, newModel func(ck *checkpoint.Checkpoint) (M, error)) {
	const task = "W1D5 Task 5 Qwen2ModelWeek1.ForwardLast"
	modelCases(t, task, func(t *testing.T, what, dir string, tokens [][]int, want *tensor.Tensor) {
		want = tensor.Take(want, []int{want.Dim(1) - 1}, 1)
		got := loadModel(t, what, dir, newModel).ForwardLast(tokens)
		if !slices.Equal(got.Shape(), want.Shape()) {
			t.Fatalf("%s: logits of shape %v, want %v (B x 1 x vocab: only the last position)", what, got.Shape(), want.Shape())
		}
		grade.AllClose(t, what+" (log-probs)", grade.LogSoftmax(got), want, grade.LogProbs)
	})
}

// modelCases runs check on each whole-model case: the checkpoint folder, the
// token ids and Hugging Face's log-probs (B x L x vocab).
func modelCases(t *testing.T, task string, check func(t *testing.T, what, dir string, tokens [][]int, want *tensor.Tensor)) {
	root, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	grade.Cases(t, task, day, "model", func(t *testing.T, c *fixture.Case) {
		dir := filepath.Join(root, filepath.FromSlash(c.Params["checkpoint"].(string)))
		check(t, task+", case "+c.Name, dir, grade.MustTokenRows(t, c, "tokens"), grade.MustTensor(t, c, "logprobs"))
	})
}

// loadModel opens the checkpoint in dir for the rest of the test and builds
// the model from it.
func loadModel[M Model](t *testing.T, what, dir string, newModel func(ck *checkpoint.Checkpoint) (M, error)) M {
	t.Helper()
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	m, err := newModel(ck)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return m
}

// CompareLogProbs loads the checkpoint in dir, runs tokens through it and
// compares log_softmax of the logits with want (B x L x vocab) within
// grade.LogProbs. It is also the body of the full-size fidelity check.
func CompareLogProbs[M Model](t *testing.T, what, dir string, tokens [][]int, want *tensor.Tensor, newModel func(ck *checkpoint.Checkpoint) (M, error)) {
	t.Helper()
	got := grade.LogSoftmax(loadModel(t, what, dir, newModel).Forward(tokens))
	grade.AllClose(t, what+" (log-probs)", got, want, grade.LogProbs)
	t.Logf("%s: max |Δ log-prob| = %.3g", what, grade.MaxAbsDiff(got, want))
}

// brokenCheckpoint copies a checkpoint folder with intermediate_size doubled
// in its config.json, so the MLP weights no longer match.
func brokenCheckpoint(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["intermediate_size"] = cfg["intermediate_size"].(float64) * 2
	raw, _ = json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dst, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	weights, err := os.ReadFile(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "model.safetensors"), weights, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// QuantizedModel checks Task 4 on an MLX 4-bit checkpoint: the loader hands the
// model dequantized float32 weights, so the same code must match Hugging Face
// run on MLX's dequantized weights.
func QuantizedModel[M Model](t *testing.T, newModel func(ck *checkpoint.Checkpoint) (M, error)) {
	const task = "W1D5 Task 4 Qwen2ModelWeek1 (MLX 4-bit checkpoint)"
	root, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	grade.Cases(t, task, "loader", "quantized_model", func(t *testing.T, c *fixture.Case) {
		dir := filepath.Join(root, filepath.FromSlash(c.Params["checkpoint"].(string)))
		CompareLogProbs(t, task+", case "+c.Name, dir, grade.MustTokenRows(t, c, "tokens"), grade.MustTensor(t, c, "logprobs"), newModel)
	})
}
