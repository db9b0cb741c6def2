package checkpoint

import (
	"encoding/json"
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
		var c Config
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.validate(); err != nil {
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
