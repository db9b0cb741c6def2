// Package checkpoint opens a Hugging Face model folder: config.json and the
// weights in model.safetensors, or in shards listed by
// model.safetensors.index.json. Tensors stay in their stored dtype (bf16, f16
// or f32) and in the memory-mapped file until a layer widens them.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/tinyllm-go/tinyllm/internal/boundedfile"
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
	// Quantization is set for MLX quantized checkpoints: Packed returns
	// their quantized weights as stored, Tensor dequantizes them.
	Quantization *Quantization `json:"quantization"`
}

// ropeCfg is where newer transformers releases write rope_theta, and the
// rope_type that older ones wrote in rope_scaling.
type ropeCfg struct {
	RopeTheta float64 `json:"rope_theta"`
	RopeType  string  `json:"rope_type"`
}

// IDs is eos_token_id, which configs write either as one id or as a list.
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
		return fmt.Errorf("eos_token_id: want a token id or a list of ids, got %s", data)
	}
	*ids = many
	return nil
}

// HeadDim is the size of one attention head.
func (c *Config) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }

// MaxPositions bounds max_position_embeddings, and MaxRoPEValues its
// product with the head size. The Week 1 model allocates its RoPE table for
// every position the config allows, max_position_embeddings × head size
// float32 values, before it computes anything; and the head count, unlike
// the other sizes, is not fixed by any weight's shape (the query projection
// is hidden × hidden for every head count). So the numbers are trusted up
// to twice the longest Qwen2 context (Qwen2.5-1M, 1 010 000 positions) at
// head size 128: a table of 1 GiB.
const (
	MaxPositions  = 1 << 21
	MaxRoPEValues = MaxPositions * 128
)

// configFile is what config.json is decoded into.
type configFile struct {
	Config
	HeadDim *int `json:"head_dim"`
	// The fields below change what a Qwen2 model computes in ways this
	// engine does not implement; parseConfig reads them only to refuse a
	// model that needs them (see unsupported), since loading it anyway
	// would answer with wrong logits and no error.
	HiddenAct        *string         `json:"hidden_act"`
	RopeScaling      json.RawMessage `json:"rope_scaling"`
	UseSlidingWindow bool            `json:"use_sliding_window"`
	SlidingWindow    *int            `json:"sliding_window"`
	MaxWindowLayers  *int            `json:"max_window_layers"`
	LayerTypes       []string        `json:"layer_types"`
}

// parseConfig decodes and validates config.json. Besides the fields of
// Config it reads head_dim, which some configs state outright: it must
// agree with hidden_size / num_attention_heads, the only head size a Qwen2
// model has; and the fields of features the engine does not implement.
func parseConfig(raw []byte) (Config, error) {
	var c configFile
	if err := json.Unmarshal(raw, &c); err != nil {
		return Config{}, jsonError(err)
	}
	if err := c.Config.validate(); err != nil {
		return Config{}, err
	}
	if c.HeadDim != nil && *c.HeadDim != c.Config.HeadDim() {
		return Config{}, fmt.Errorf("head_dim %d times num_attention_heads %d is not hidden_size %d",
			*c.HeadDim, c.NumAttentionHeads, c.HiddenSize)
	}
	if err := c.unsupported(); err != nil {
		return Config{}, err
	}
	return c.Config, nil
}

// defaultMaxWindowLayers is Qwen2Config's max_window_layers where a config
// leaves it out.
const defaultMaxWindowLayers = 28

// unsupported refuses what the engine would compute wrongly: an activation
// other than SiLU, scaled RoPE (YaRN, linear, dynamic NTK, ...), and a
// sliding attention window that some layer would really apply, one shorter
// than the context. Published Qwen2 configs carry sliding_window with
// use_sliding_window false, or a window as long as the context; those load.
func (c *configFile) unsupported() error {
	if c.HiddenAct != nil && *c.HiddenAct != "silu" && *c.HiddenAct != "swish" {
		return fmt.Errorf("hidden_act %q is not supported: this engine's MLP computes SiLU (silu)", *c.HiddenAct)
	}
	t, err := ropeScalingType(c.RopeScaling)
	if err != nil {
		return err
	}
	if t != "" && t != "default" {
		return fmt.Errorf("rope_scaling of type %q is not supported: this engine computes plain RoPE from rope_theta", t)
	}
	if p := c.RopeParameters; p != nil && p.RopeType != "" && p.RopeType != "default" {
		return fmt.Errorf("rope_parameters.rope_type %q is not supported: this engine computes plain RoPE from rope_theta", p.RopeType)
	}
	if !c.UseSlidingWindow || c.SlidingWindow == nil || *c.SlidingWindow >= c.MaxPositionEmbeddings {
		return nil
	}
	// transformers slides the window in the layers layer_types marks
	// "sliding_attention", or where it has none, in every layer from
	// max_window_layers on.
	sliding := 0
	if c.LayerTypes != nil {
		for _, t := range c.LayerTypes {
			if t == "sliding_attention" {
				sliding++
			}
		}
	} else {
		first := defaultMaxWindowLayers
		if c.MaxWindowLayers != nil {
			first = *c.MaxWindowLayers
		}
		sliding = c.NumHiddenLayers - min(max(first, 0), c.NumHiddenLayers)
	}
	if sliding == 0 {
		return nil
	}
	return fmt.Errorf("use_sliding_window is true with a sliding_window of %d positions, shorter than max_position_embeddings %d, in %d of %d layers: this engine attends over the whole context and does not implement the window",
		*c.SlidingWindow, c.MaxPositionEmbeddings, sliding, c.NumHiddenLayers)
}

// ropeScalingType returns the type of a rope_scaling object ("" for null or
// none given). transformers names it rope_type, and type in older configs.
func ropeScalingType(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s struct {
		RopeType *string `json:"rope_type"`
		Type     *string `json:"type"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("rope_scaling must be null or an object, got %s", clip(raw))
	}
	switch {
	case s.RopeType != nil:
		return *s.RopeType, nil
	case s.Type != nil:
		return *s.Type, nil
	}
	return "", errors.New("rope_scaling names no rope_type: this engine computes plain RoPE from rope_theta and cannot tell what scaling it asks for")
}

// clip shortens a JSON value for an error message.
func clip(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}

// validate checks what the forward pass relies on, so a bad config fails at
// load time with its field named rather than as a shape panic later. Sizes
// are checked against the weights themselves in Open (see checkTensors);
// here only what the numbers must satisfy on their own.
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
		return fmt.Errorf("head size %d (hidden_size / num_attention_heads) is odd; RoPE needs pairs", c.HeadDim())
	case c.MaxPositionEmbeddings > MaxPositions:
		return fmt.Errorf("max_position_embeddings %d is more than the %d this engine accepts", c.MaxPositionEmbeddings, MaxPositions)
	case c.HeadDim() > MaxRoPEValues/c.MaxPositionEmbeddings:
		return fmt.Errorf("max_position_embeddings %d times head size %d is more than the %d RoPE values this engine accepts",
			c.MaxPositionEmbeddings, c.HeadDim(), MaxRoPEValues)
	case !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0):
		return fmt.Errorf("rope_theta must be a positive number, got %g", c.RopeTheta)
	case !(c.RMSNormEps > 0) || math.IsInf(c.RMSNormEps, 0):
		return fmt.Errorf("rms_norm_eps must be a positive number, got %g", c.RMSNormEps)
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
	paths  []string                     // of files, kept after Close
	owner  map[string]*safetensors.File // tensor name -> file holding it
}

// Open reads dir/config.json, maps the weight files that
// model.safetensors.index.json names (or model.safetensors when there is no
// index) and checks the config against the tensors they hold: every tensor a
// Qwen2 model of that config loads must be there, and the embedding must have
// the vocabulary and hidden sizes the config states. A config that promises
// more than the files hold fails here, before the model allocates anything
// from its numbers, with the first missing tensor named. Each weight's own
// shape is checked when Tensor or Packed loads it.
//
// Every JSON file is read with a limit (MaxJSONBytes) and only regular files
// are opened: a named pipe or a device in the folder is an error, not a hang.
func Open(dir string) (*Checkpoint, error) {
	// A file given for the folder would otherwise fail as
	// "<file>/config.json: not a directory", which names neither mistake.
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("checkpoint: %s is a file, not a model folder (the folder that holds config.json and the weights)", dir)
	}
	cfgPath := filepath.Join(dir, "config.json")
	raw, err := boundedfile.Read(cfgPath, MaxJSONBytes)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", cfgPath, err)
	}
	ck := &Checkpoint{Dir: dir, Config: cfg, owner: map[string]*safetensors.File{}}
	names, err := weightFileNames(dir)
	if err != nil {
		return nil, err
	}
	headers := 0
	for _, name := range names {
		f, err := safetensors.Open(filepath.Join(dir, name))
		if err != nil {
			ck.Close()
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		ck.files = append(ck.files, f)
		ck.paths = append(ck.paths, f.Path())
		// Each header is bounded by safetensors.MaxHeaderSize; so is their
		// sum, or an index listing many files could still exhaust memory.
		if headers += f.HeaderSize(); headers > safetensors.MaxHeaderSize {
			n := len(ck.files)
			ck.Close()
			return nil, fmt.Errorf("checkpoint: %s: the headers of the first %d weight files add up to more than %d bytes", dir, n, safetensors.MaxHeaderSize)
		}
		for _, t := range f.Names() {
			if prev, dup := ck.owner[t]; dup {
				ck.Close()
				return nil, fmt.Errorf("checkpoint: tensor %q is in both %s and %s", t, prev.Path(), f.Path())
			}
			ck.owner[t] = f
		}
	}
	if err := ck.checkTensors(); err != nil {
		ck.Close()
		return nil, err
	}
	return ck, nil
}

// WeightFiles returns the paths of the weight files Open mapped, in the
// order it opened them: model.safetensors, or the files the index names,
// sorted. These and no others hold the checkpoint's tensors, so a caller
// that reads or sizes the weights (to warm the page cache, to report the
// checkpoint's size) should use this list rather than look in the folder.
func (ck *Checkpoint) WeightFiles() []string { return slices.Clone(ck.paths) }

// Has reports whether the checkpoint holds the named tensor.
func (ck *Checkpoint) Has(name string) bool {
	_, ok := ck.owner[name]
	return ok
}

// Tensor returns the named tensor in its stored dtype, checking its shape when
// shape is given: a checkpoint that disagrees with its config fails here, by name.
// A weight stored MLX-quantized comes back dequantized to a new float32
// tensor of its full shape, made on this call and not kept: the Week 1 model
// computes on plain weights. Packed returns the same weight as it is stored.
func (ck *Checkpoint) Tensor(name string, shape ...int) (*tensor.Tensor, error) {
	f, ok := ck.owner[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint: %s: missing tensor %q", ck.Dir, name)
	}
	if ck.IsPacked(name) {
		p, err := ck.Packed(name, shape...)
		if err != nil {
			return nil, err
		}
		return p.Dequantize(), nil
	}
	t, err := f.Tensor(name)
	if err != nil {
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

// Names returns the names of every tensor of the checkpoint, sorted.
func (ck *Checkpoint) Names() []string {
	names := make([]string, 0, len(ck.owner))
	for name := range ck.owner {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Info returns a tensor's stored dtype and shape (for a packed weight, the
// shape of its words), and whether the checkpoint holds it.
func (ck *Checkpoint) Info(name string) (safetensors.TensorInfo, bool) {
	f, ok := ck.owner[name]
	if !ok {
		return safetensors.TensorInfo{}, false
	}
	return f.Info(name)
}
