package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

func tiedDir(t testing.TB) string {
	t.Helper()
	root, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "w1d5", "checkpoints", "tied")
}

// copyCheckpoint copies a checkpoint folder, letting edit change config.json.
func copyCheckpoint(t *testing.T, src string, edit func(cfg map[string]any)) string {
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
	if edit != nil {
		edit(cfg)
	}
	raw, _ = json.Marshal(cfg)
	write(t, filepath.Join(dst, "config.json"), raw)
	weights, err := os.ReadFile(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dst, "model.safetensors"), weights)
	return dst
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenHuggingFaceCheckpoint(t *testing.T) {
	ck, err := Open(tiedDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	c := ck.Config
	if c.HiddenSize != 64 || c.NumHiddenLayers != 2 || c.NumKeyValueHeads != 2 || !c.TieWordEmbeddings || c.RopeTheta != 10000 {
		t.Errorf("config read wrong: %+v", c)
	}
	emb, err := ck.Tensor("model.embed_tokens.weight", c.VocabSize, c.HiddenSize)
	if err != nil {
		t.Fatal(err)
	}
	if emb.DType() != tensor.BFloat16 {
		t.Errorf("embedding dtype %v, want the stored bfloat16", emb.DType())
	}
	if ck.Has("lm_head.weight") {
		t.Error("a tied checkpoint should have no lm_head.weight")
	}
	if _, err := ck.Tensor("model.norm.weight", 65); err == nil || !strings.Contains(err.Error(), "model.norm.weight") {
		t.Errorf("wrong shape: err = %v, want one naming the tensor", err)
	}
	if _, err := ck.Tensor("model.layers.7.mlp.up_proj.weight"); err == nil || !strings.Contains(err.Error(), "missing tensor") {
		t.Errorf("missing tensor: err = %v", err)
	}
}

func TestOpenRejectsBadFolders(t *testing.T) {
	src := tiedDir(t)
	tests := []struct {
		name string
		dir  func(t *testing.T) string
		want string
	}{
		{"no folder", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, "config.json"},
		{"a file of the folder", func(t *testing.T) string {
			return filepath.Join(copyCheckpoint(t, src, nil), "config.json")
		}, "config.json is a file, not a model folder"},
		{"bad json", func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			write(t, filepath.Join(d, "config.json"), []byte("{"))
			return d
		}, "config.json"},
		{"heads do not divide", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["num_key_value_heads"] = 3 })
		}, "num_key_value_heads"},
		{"zero layers", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["num_hidden_layers"] = 0 })
		}, "num_hidden_layers"},
		{"an activation the engine does not compute", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["hidden_act"] = "gelu_pytorch_tanh" })
		}, `config.json: hidden_act "gelu_pytorch_tanh" is not supported`},
		{"not qwen2", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["model_type"] = "llama" })
		}, "llama"},
		{"no weights", func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			os.Remove(filepath.Join(d, "model.safetensors"))
			return d
		}, "neither model.safetensors"},
		{"truncated weights", func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			p := filepath.Join(d, "model.safetensors")
			data, _ := os.ReadFile(p)
			write(t, p, data[:len(data)/2])
			return d
		}, "model.safetensors"},
		{"index names a missing shard", func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			write(t, filepath.Join(d, "model.safetensors.index.json"), []byte(`{"weight_map": {"a": "model-00002-of-00002.safetensors"}}`))
			return d
		}, "model-00002-of-00002.safetensors"},
		{"index escapes the folder", func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			write(t, filepath.Join(d, "model.safetensors.index.json"), []byte(`{"weight_map": {"a": "../x.safetensors"}}`))
			return d
		}, "plain file name"},
		// A config that demands more than the weights hold fails in Open,
		// before a model could allocate from its numbers, with the first
		// missing tensor named.
		{"a billion layers", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["num_hidden_layers"] = 1_000_000_000 })
		}, "config says 1000000000 layers but model.layers.2.self_attn.q_proj.weight is missing"},
		{"one layer too many", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["num_hidden_layers"] = 3 })
		}, "config says 3 layers but model.layers.2.self_attn.q_proj.weight is missing"},
		{"a tensor missing inside a layer", func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			editWeights(t, d, without("model.layers.1.mlp.up_proj.weight"))
			return d
		}, "config says 2 layers but model.layers.1.mlp.up_proj.weight is missing"},
		{"no embedding", func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			editWeights(t, d, without("model.embed_tokens.weight"))
			return d
		}, "model.embed_tokens.weight is missing"},
		{"no final norm", func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			editWeights(t, d, without("model.norm.weight"))
			return d
		}, "model.norm.weight is missing"},
		{"untied without lm_head", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["tie_word_embeddings"] = false })
		}, "config says tie_word_embeddings is false but lm_head.weight is missing"},
		{"huge vocabulary", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["vocab_size"] = 1 << 40 })
		}, "model.embed_tokens.weight has shape [256 64], but config.json's vocab_size and hidden_size imply [1099511627776 64]"},
		{"huge hidden size", func(t *testing.T) string {
			// Heads of the real size, so that only the weights can refuse it.
			return copyCheckpoint(t, src, func(c map[string]any) { c["hidden_size"] = 1 << 40; c["num_attention_heads"] = 1 << 34 })
		}, "model.embed_tokens.weight has shape [256 64], but config.json's vocab_size and hidden_size imply [256 1099511627776]"},
		{"huge context", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["max_position_embeddings"] = 1 << 28 })
		}, "max_position_embeddings 268435456 is more than the 2097152 this engine accepts"},
		{"more heads than hidden units", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["num_attention_heads"] = 128 })
		}, "hidden_size 64 is not a multiple of num_attention_heads 128"},
		{"odd head size", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["num_attention_heads"] = 64; c["num_key_value_heads"] = 64 })
		}, "head size 1 (hidden_size / num_attention_heads) is odd"},
		{"head_dim disagrees", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["head_dim"] = 128 })
		}, "head_dim 128 times num_attention_heads 4 is not hidden_size 64"},
		{"negative intermediate size", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["intermediate_size"] = -160 })
		}, "intermediate_size must be positive, got -160"},
		{"layer count beyond int64", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["num_hidden_layers"] = 1e30 })
		}, "num_hidden_layers"},
		{"negative rope_theta", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["rope_theta"] = -1 })
		}, "rope_theta must be a positive number, got -1"},
		{"negative rms_norm_eps", func(t *testing.T) string {
			return copyCheckpoint(t, src, func(c map[string]any) { c["rms_norm_eps"] = -1e-6 })
		}, "rms_norm_eps must be a positive number"},
		{"packed weight without a quantization block", func(t *testing.T) string {
			d := copyCheckpoint(t, q4Dir(t), func(c map[string]any) { delete(c, "quantization") })
			return d
		}, "model.embed_tokens.weight is packed (U32) but config.json has no quantization block"},
		{"packed weight without its scales", func(t *testing.T) string {
			d := copyCheckpoint(t, q4Dir(t), nil)
			editWeights(t, d, without("model.layers.1.self_attn.o_proj.scales"))
			return d
		}, "model.layers.1.self_attn.o_proj.weight is packed (U32) but model.layers.1.self_attn.o_proj.scales is missing"},
		{"packed embedding of the wrong width", func(t *testing.T) string {
			return copyCheckpoint(t, q4Dir(t), func(c map[string]any) { c["hidden_size"] = 128 })
		}, "model.embed_tokens.weight has shape [256 64], but config.json's vocab_size and hidden_size imply [256 128]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ck, err := Open(tc.dir(t))
			if err == nil {
				ck.Close()
				t.Fatal("opened without error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestOpenShardedCheckpoint(t *testing.T) {
	d := copyCheckpoint(t, tiedDir(t), nil)
	// One real shard under a sharded name, listed by an index.
	if err := os.Rename(filepath.Join(d, "model.safetensors"), filepath.Join(d, "model-00001-of-00001.safetensors")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(d, "model.safetensors.index.json"),
		[]byte(`{"metadata": {}, "weight_map": {"model.norm.weight": "model-00001-of-00001.safetensors"}}`))
	ck, err := Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if !ck.Has("model.layers.1.mlp.down_proj.weight") {
		t.Error("tensors of the shard are not visible")
	}
}

func TestGenerationConfig(t *testing.T) {
	d := copyCheckpoint(t, tiedDir(t), nil)
	ck, err := Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for _, tc := range []struct {
		body string
		want []int
		err  string // a part of the error; "" for none
	}{
		{`{"eos_token_id": 7, "temperature": 0.7}`, []int{7}, ""},
		{`{"eos_token_id": [151645, 151643], "top_p": 0.8}`, []int{151645, 151643}, ""},
		{`{"eos_token_id": 7, "temperature": 0, "top_p": 1, "top_k": 0}`, []int{7}, ""},
		{`{"eos_token_id": "x"}`, nil, "want a token id or a list of ids"},
		{`{`, nil, "generation_config.json"},
		// Sampling defaults the sampler would refuse as flags.
		{`{"eos_token_id": 7, "temperature": -0.5}`, nil, "temperature must be a number >= 0, got -0.5"},
		{`{"eos_token_id": 7, "top_p": 0}`, nil, "top_p must be in (0, 1], got 0"},
		{`{"eos_token_id": 7, "top_p": 1.5}`, nil, "top_p must be in (0, 1], got 1.5"},
		{`{"eos_token_id": 7, "top_k": -3}`, nil, "top_k must be >= 0, got -3"},
		{`{"eos_token_id": -1}`, nil, "eos_token_id -1 is negative"},
		// JSON has no NaN or infinity: these fail as JSON, still with the file named.
		{`{"eos_token_id": 7, "temperature": 1e999}`, nil, "generation_config.json"},
		{`{"eos_token_id": 7, "temperature": NaN}`, nil, "generation_config.json"},
	} {
		write(t, filepath.Join(d, "generation_config.json"), []byte(tc.body))
		g, err := ck.ReadGenerationConfig()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.body, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "generation_config.json")):
			t.Errorf("%s: err = %v, want it to name the file and say %q", tc.body, err, tc.err)
		case err == nil && fmt.Sprint(g.EOSTokenIDs) != fmt.Sprint(tc.want):
			t.Errorf("%s: eos %v, want %v", tc.body, g.EOSTokenIDs, tc.want)
		}
	}
}

// TestDequantizeMatchesMLX reads an MLX 4-bit checkpoint (written by
// refgen/loader.py) and compares a dequantized weight with mx.dequantize.
func TestDequantizeMatchesMLX(t *testing.T) {
	cases, err := fixture.Load("loader", "dequantize")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := fixture.Dir()
	for _, c := range cases {
		ck, err := Open(filepath.Join(root, c.Params["checkpoint"].(string)))
		if err != nil {
			t.Fatal(err)
		}
		defer ck.Close()
		if q := ck.Config.Quantization; q == nil || q.Bits != 4 || q.GroupSize != 32 {
			t.Fatalf("quantization config read as %+v", q)
		}
		got, err := ck.Tensor(c.Params["tensor"].(string), 256, 64)
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.Tensor("out")
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range want.Data() {
			if d := got.Data()[i] - w; d > 1e-6 || d < -1e-6 {
				t.Fatalf("element %d: got %g, MLX dequantize gives %g", i, got.Data()[i], w)
			}
		}
	}
}

func TestQuantizedCheckpointErrors(t *testing.T) {
	root, _ := fixture.Dir()
	src := filepath.Join(root, "loader", "checkpoints", "q4")
	d := copyCheckpoint(t, src, func(c map[string]any) { c["quantization"] = map[string]any{"group_size": 32, "bits": 3} })
	if _, err := Open(d); err == nil || !strings.Contains(err.Error(), "bits 3") {
		t.Errorf("3-bit config: err = %v", err)
	}
	// The embedding is checked in Open, so a wrong group size fails there.
	d = copyCheckpoint(t, src, func(c map[string]any) { c["quantization"] = map[string]any{"group_size": 16, "bits": 4} })
	if _, err := Open(d); err == nil || !strings.Contains(err.Error(), "group size 16") {
		t.Errorf("wrong group size: err = %v", err)
	}
}
