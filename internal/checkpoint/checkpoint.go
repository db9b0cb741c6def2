// Package checkpoint opens a Hugging Face model folder: config.json and the
// weights in model.safetensors, or in shards listed by
// model.safetensors.index.json. Tensors stay in their stored dtype (bf16, f16
// or f32) and in the memory-mapped file until a layer widens them.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/tinyllm-go/tinyllm/internal/safetensors"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Config is the part of a Qwen2 config.json the engine reads.
type Config struct {
	ModelType             string   `json:"model_type"`
	VocabSize             int      `json:"vocab_size"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	RopeTheta             float64  `json:"rope_theta"`
	RMSNormEps            float64  `json:"rms_norm_eps"`
	TieWordEmbeddings     bool     `json:"tie_word_embeddings"`
	TorchDType            string   `json:"torch_dtype"`
	DType                 string   `json:"dtype"` // transformers 5 writes this instead of torch_dtype
	BOSTokenID            *int     `json:"bos_token_id"`
	EOSTokenID            IDs      `json:"eos_token_id"`
	RopeParameters        *ropeCfg `json:"rope_parameters"`
	// Quantization is set for MLX quantized checkpoints; their quantized
	// weights are dequantized by Tensor.
	Quantization *Quantization `json:"quantization"`
}

// ropeCfg is where newer transformers releases write rope_theta.
type ropeCfg struct {
	RopeTheta float64 `json:"rope_theta"`
}

// IDs is a token id field that configs write either as one id or as a list.
type IDs []int

// UnmarshalJSON accepts 7, [7, 8] and null.
func (ids *IDs) UnmarshalJSON(data []byte) error {
	var one int
	if json.Unmarshal(data, &one) == nil {
		*ids = IDs{one}
		return nil
	}
	var many []int
	if err := json.Unmarshal(data, &many); err != nil {
		return fmt.Errorf("want a token id or a list of ids, got %s", data)
	}
	*ids = many
	return nil
}

// HeadDim is the size of one attention head.
func (c *Config) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }

// validate checks what the forward pass relies on, so a bad config fails at
// load time with its field named rather than as a shape panic later.
func (c *Config) validate() error {
	if c.RopeTheta == 0 && c.RopeParameters != nil {
		c.RopeTheta = c.RopeParameters.RopeTheta
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000 // the Qwen2Config default
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	positive := map[string]int{
		"vocab_size": c.VocabSize, "hidden_size": c.HiddenSize, "intermediate_size": c.IntermediateSize,
		"num_hidden_layers": c.NumHiddenLayers, "num_attention_heads": c.NumAttentionHeads,
		"num_key_value_heads":     c.NumKeyValueHeads,
		"max_position_embeddings": c.MaxPositionEmbeddings,
	}
	names := make([]string, 0, len(positive))
	for k := range positive {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if positive[k] <= 0 {
			return fmt.Errorf("%s must be positive, got %d", k, positive[k])
		}
	}
	switch {
	case c.ModelType != "" && c.ModelType != "qwen2":
		return fmt.Errorf("model_type %q is not qwen2", c.ModelType)
	case c.HiddenSize%c.NumAttentionHeads != 0:
		return fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	case c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	case c.HeadDim()%2 != 0:
		return fmt.Errorf("head size %d is odd; RoPE needs pairs", c.HeadDim())
	case c.RMSNormEps <= 0:
		return fmt.Errorf("rms_norm_eps must be positive, got %g", c.RMSNormEps)
	}
	if c.Quantization != nil {
		return c.Quantization.validate()
	}
	return nil
}

// Checkpoint is an open model folder. Close it to unmap the weights.
type Checkpoint struct {
	Dir    string
	Config Config
	files  []*safetensors.File
	owner  map[string]*safetensors.File // tensor name -> file holding it
}

// Open reads dir/config.json and maps the safetensors weights.
func Open(dir string) (*Checkpoint, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	ck := &Checkpoint{Dir: dir, owner: map[string]*safetensors.File{}}
	if err := json.Unmarshal(raw, &ck.Config); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", filepath.Join(dir, "config.json"), err)
	}
	if err := ck.Config.validate(); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", filepath.Join(dir, "config.json"), err)
	}
	shards, err := shardNames(dir)
	if err != nil {
		return nil, err
	}
	for _, name := range shards {
		f, err := safetensors.Open(filepath.Join(dir, name))
		if err != nil {
			ck.Close()
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		ck.files = append(ck.files, f)
		for _, t := range f.Names() {
			if prev, dup := ck.owner[t]; dup {
				ck.Close()
				return nil, fmt.Errorf("checkpoint: tensor %q is in both %s and %s", t, prev.Path(), f.Path())
			}
			ck.owner[t] = f
		}
	}
	return ck, nil
}

// shardNames lists the weight files: those named by the index if there is
// one, else model.safetensors.
func shardNames(dir string) ([]string, error) {
	indexPath := filepath.Join(dir, "model.safetensors.index.json")
	raw, err := os.ReadFile(indexPath)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
			return nil, fmt.Errorf("checkpoint: %s has neither model.safetensors nor model.safetensors.index.json", dir)
		}
		return []string{"model.safetensors"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", indexPath, err)
	}
	seen := map[string]bool{}
	var names []string
	for _, file := range index.WeightMap {
		if file != filepath.Base(file) {
			return nil, fmt.Errorf("checkpoint: %s: shard name %q must be a plain file name", indexPath, file)
		}
		if !seen[file] {
			seen[file] = true
			names = append(names, file)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("checkpoint: %s: empty weight_map", indexPath)
	}
	sort.Strings(names)
	return names, nil
}

// Has reports whether the checkpoint holds the named tensor.
func (ck *Checkpoint) Has(name string) bool {
	_, ok := ck.owner[name]
	return ok
}

// Tensor returns the named tensor in its stored dtype, checking its shape when
// shape is given: a checkpoint that disagrees with its config fails here, by name.
// A weight stored MLX-quantized comes back dequantized to float32.
func (ck *Checkpoint) Tensor(name string, shape ...int) (*tensor.Tensor, error) {
	f, ok := ck.owner[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint: %s: missing tensor %q", ck.Dir, name)
	}
	var t *tensor.Tensor
	var err error
	if base, quantized := ck.quantizedBase(name); quantized {
		if t, err = ck.dequantize(base); err != nil {
			return nil, err
		}
	} else if t, err = f.Tensor(name); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if len(shape) > 0 && !slices.Equal(t.Shape(), shape) {
		return nil, fmt.Errorf("checkpoint: %s: tensor %q has shape %v, the config implies %v", f.Path(), name, t.Shape(), shape)
	}
	return t, nil
}

// Close unmaps every weight file. Tensors obtained earlier must not be used
// afterwards.
func (ck *Checkpoint) Close() error {
	var first error
	for _, f := range ck.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	ck.files = nil
	return first
}
