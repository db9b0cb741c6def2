package checkpoint

import (
	"encoding/json"
	"strings"
	"testing"
)

// The shape-defining fields of the published Qwen2 configs (Qwen/Qwen2-0.5B,
// -1.5B, -7B on Hugging Face); everything else in those files is ignored.
var publicConfigs = map[string]string{
	"qwen2-0.5b": `{"architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151643,
		"hidden_act": "silu", "hidden_size": 896, "intermediate_size": 4864, "max_position_embeddings": 131072,
		"max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
		"num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072,
		"tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true, "use_sliding_window": false,
		"vocab_size": 151936}`,
	"qwen2-1.5b": `{"architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151643,
		"hidden_act": "silu", "hidden_size": 1536, "intermediate_size": 8960, "max_position_embeddings": 131072,
		"model_type": "qwen2", "num_attention_heads": 12, "num_hidden_layers": 28, "num_key_value_heads": 2,
		"rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
		"vocab_size": 151936}`,
	"qwen2-7b": `{"architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151643,
		"hidden_act": "silu", "hidden_size": 3584, "intermediate_size": 18944, "max_position_embeddings": 131072,
		"model_type": "qwen2", "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
		"rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
		"vocab_size": 152064}`,
}

func TestPublicQwen2ConfigsValidate(t *testing.T) {
	want := map[string]struct {
		headDim, kvDim int
		tied           bool
		params         int64 // from the config alone; matches the published sizes
	}{
		"qwen2-0.5b": {64, 128, true, 494_032_768},
		"qwen2-1.5b": {128, 256, true, 1_543_714_304},
		"qwen2-7b":   {128, 512, false, 7_615_616_512},
	}
	for name, raw := range publicConfigs {
		c, err := parseConfig([]byte(raw))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		w := want[name]
		if c.HeadDim() != w.headDim || c.NumKeyValueHeads*c.HeadDim() != w.kvDim || c.TieWordEmbeddings != w.tied {
			t.Errorf("%s: head %d, kv width %d, tied %v", name, c.HeadDim(), c.NumKeyValueHeads*c.HeadDim(), c.TieWordEmbeddings)
		}
		if got := paramCount(&c); got != w.params {
			t.Errorf("%s: %d parameters from the config, want %d", name, got, w.params)
		}
	}
}

// paramCount adds up the tensors NewQwen2ModelWeek1 loads for a config.
func paramCount(c *Config) int64 {
	e, i, v := int64(c.HiddenSize), int64(c.IntermediateSize), int64(c.VocabSize)
	q := int64(c.NumAttentionHeads * c.HeadDim())
	kv := int64(c.NumKeyValueHeads * c.HeadDim())
	layer := e*q + q + 2*(e*kv+kv) + q*e + 3*e*i + 2*e
	n := v*e + int64(c.NumHiddenLayers)*layer + e
	if !c.TieWordEmbeddings {
		n += v * e
	}
	return n
}

// TestConfigLimits edits the published Qwen2-7B config into ones whose
// numbers alone must be refused, each with the field named.
func TestConfigLimits(t *testing.T) {
	tests := []struct {
		name string
		edit map[string]any
		want string // "" when the config is fine
	}{
		{"as published", nil, ""},
		{"a million positions", map[string]any{"max_position_embeddings": 1_010_000}, ""},
		{"2^28 positions", map[string]any{"max_position_embeddings": 1 << 28},
			"max_position_embeddings 268435456 is more than the 2097152 this engine accepts"},
		// One head of 3584: the projections keep their shapes, the RoPE
		// table grows 28-fold.
		{"one wide head at full context", map[string]any{"num_attention_heads": 1, "num_key_value_heads": 1, "max_position_embeddings": 1 << 21},
			"max_position_embeddings 2097152 times head size 3584 is more than the 268435456 RoPE values this engine accepts"},
		{"huge hidden size, one head", map[string]any{"hidden_size": int64(1) << 62, "num_attention_heads": 1, "num_key_value_heads": 1},
			"times head size 4611686018427387904 is more than"},
		{"layers written as a float", map[string]any{"num_hidden_layers": json.RawMessage("1e9")},
			"num_hidden_layers must be an integer written in digits, within 64 bits, got number 1e9"},
		{"vocabulary past int64", map[string]any{"vocab_size": 1e30},
			"vocab_size must be an integer written in digits, within 64 bits, got number 1e+30"},
		{"head_dim disagrees", map[string]any{"head_dim": 64}, "head_dim 64 times num_attention_heads 28 is not hidden_size 3584"},
		{"rope_theta a string", map[string]any{"rope_theta": "1e6"}, "rope_theta must be a finite number, got string"},
		{"tie_word_embeddings a number", map[string]any{"tie_word_embeddings": 1}, "tie_word_embeddings must be true or false, got number"},
		// What the engine does not compute is refused by name; what it
		// computes the same way loads.
		{"hidden_act silu", map[string]any{"hidden_act": "silu"}, ""},
		{"hidden_act swish, SiLU's other name", map[string]any{"hidden_act": "swish"}, ""},
		{"hidden_act gelu", map[string]any{"hidden_act": "gelu"}, `hidden_act "gelu" is not supported: this engine's MLP computes SiLU (silu)`},
		{"rope_scaling null", map[string]any{"rope_scaling": nil}, ""},
		{"rope_scaling default", map[string]any{"rope_scaling": map[string]any{"rope_type": "default"}}, ""},
		// The block Qwen's model cards add for contexts past 32k.
		{"rope_scaling yarn", map[string]any{"rope_scaling": map[string]any{"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"}},
			`rope_scaling of type "yarn" is not supported: this engine computes plain RoPE from rope_theta`},
		{"rope_scaling linear", map[string]any{"rope_scaling": map[string]any{"rope_type": "linear", "factor": 2.0}}, `rope_scaling of type "linear" is not supported`},
		{"rope_scaling without a type", map[string]any{"rope_scaling": map[string]any{"factor": 2.0}}, "rope_scaling names no rope_type"},
		{"rope_scaling a string", map[string]any{"rope_scaling": "yarn"}, `rope_scaling must be null or an object, got "yarn"`},
		{"rope_parameters default", map[string]any{"rope_parameters": map[string]any{"rope_theta": 1e6, "rope_type": "default"}}, ""},
		{"rope_parameters yarn", map[string]any{"rope_parameters": map[string]any{"rope_theta": 1e6, "rope_type": "yarn", "factor": 4.0}},
			`rope_parameters.rope_type "yarn" is not supported`},
		// Qwen2 and Qwen2.5 configs carry a window they do not use.
		{"window present, not used", map[string]any{"use_sliding_window": false, "sliding_window": 4096, "max_window_layers": 0}, ""},
		{"Qwen2.5 style window", map[string]any{"use_sliding_window": false, "sliding_window": 32768, "max_window_layers": 21, "max_position_embeddings": 32768}, ""},
		{"window used, as long as the context", map[string]any{"use_sliding_window": true, "sliding_window": 131072, "max_window_layers": 0}, ""},
		{"window used, no window size", map[string]any{"use_sliding_window": true, "sliding_window": nil, "max_window_layers": 0}, ""},
		{"window used, every layer full (max_window_layers)", map[string]any{"use_sliding_window": true, "sliding_window": 4096, "max_window_layers": 28}, ""},
		{"window used, every layer full (the default 28)", map[string]any{"use_sliding_window": true, "sliding_window": 4096}, ""},
		{"window used in the last layers", map[string]any{"use_sliding_window": true, "sliding_window": 4096, "max_window_layers": 21},
			"use_sliding_window is true with a sliding_window of 4096 positions, shorter than max_position_embeddings 131072, in 7 of 28 layers"},
		{"window used in every layer", map[string]any{"use_sliding_window": true, "sliding_window": 4096, "max_window_layers": 0}, "in 28 of 28 layers"},
		{"window used, layer_types all full", map[string]any{"use_sliding_window": true, "sliding_window": 4096, "max_window_layers": 0, "layer_types": layerTypes(28, 0)}, ""},
		{"window used, layer_types with two sliding", map[string]any{"use_sliding_window": true, "sliding_window": 4096, "layer_types": layerTypes(28, 2)}, "in 2 of 28 layers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cfg map[string]any
			if err := json.Unmarshal([]byte(publicConfigs["qwen2-7b"]), &cfg); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.edit {
				cfg[k] = v
			}
			raw, _ := json.Marshal(cfg)
			_, err := parseConfig(raw)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// layerTypes is a layer_types list of n layers, the last sliding of them
// "sliding_attention" and the others "full_attention".
func layerTypes(n, sliding int) []string {
	types := make([]string, n)
	for i := range types {
		types[i] = "full_attention"
		if i >= n-sliding {
			types[i] = "sliding_attention"
		}
	}
	return types
}
