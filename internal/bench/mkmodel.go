package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/tinyllm-go/tinyllm/internal/modelfolder"
	"github.com/tinyllm-go/tinyllm/internal/safetensors"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// Shape is the architecture of a Qwen2 model: the fields of config.json
// that decide the sizes of its tensors.
type Shape struct {
	Name                  string
	VocabSize             int
	HiddenSize            int
	IntermediateSize      int
	NumHiddenLayers       int
	NumAttentionHeads     int
	NumKeyValueHeads      int
	MaxPositionEmbeddings int
	RopeTheta             float64
	RMSNormEps            float64
	TieWordEmbeddings     bool
}

// Shapes are the public Qwen2 instruct models, as in their config.json on
// Hugging Face (Qwen/Qwen2-0.5B-Instruct, -1.5B-Instruct, -7B-Instruct).
var Shapes = map[string]Shape{
	"qwen2-0.5b": {"qwen2-0.5b", 151936, 896, 4864, 24, 14, 2, 32768, 1e6, 1e-6, true},
	"qwen2-1.5b": {"qwen2-1.5b", 151936, 1536, 8960, 28, 12, 2, 32768, 1e6, 1e-6, true},
	"qwen2-7b":   {"qwen2-7b", 152064, 3584, 18944, 28, 28, 4, 32768, 1e6, 1e-6, false},
}

// ShapeNames lists the keys of Shapes, sorted.
func ShapeNames() []string {
	names := make([]string, 0, len(Shapes))
	for n := range Shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// tensorSpec is one weight of the model and how it is initialised.
type tensorSpec struct {
	safetensors.Spec
	std  float64 // spread of the random values; 0 with ones: a norm weight
	ones bool
}

// Tensors lists the weights of a Qwen2 model of this shape, under their
// Hugging Face names, all bfloat16.
func (s Shape) tensors() []tensorSpec {
	hd := s.HiddenSize / s.NumAttentionHeads
	q, kv := s.NumAttentionHeads*hd, s.NumKeyValueHeads*hd
	const std = 0.02 // Qwen2Config.initializer_range
	w := func(name string, std float64, shape ...int) tensorSpec {
		return tensorSpec{Spec: safetensors.Spec{Name: name, DType: "BF16", Shape: shape}, std: std}
	}
	norm := func(name string) tensorSpec {
		return tensorSpec{Spec: safetensors.Spec{Name: name, DType: "BF16", Shape: []int{s.HiddenSize}}, ones: true}
	}
	out := []tensorSpec{w("model.embed_tokens.weight", std, s.VocabSize, s.HiddenSize)}
	for i := range s.NumHiddenLayers {
		p := fmt.Sprintf("model.layers.%d.", i)
		out = append(out,
			norm(p+"input_layernorm.weight"),
			w(p+"self_attn.q_proj.weight", std, q, s.HiddenSize), w(p+"self_attn.q_proj.bias", std, q),
			w(p+"self_attn.k_proj.weight", std, kv, s.HiddenSize), w(p+"self_attn.k_proj.bias", std, kv),
			w(p+"self_attn.v_proj.weight", std, kv, s.HiddenSize), w(p+"self_attn.v_proj.bias", std, kv),
			w(p+"self_attn.o_proj.weight", std, s.HiddenSize, q),
			norm(p+"post_attention_layernorm.weight"),
			w(p+"mlp.gate_proj.weight", std, s.IntermediateSize, s.HiddenSize),
			w(p+"mlp.up_proj.weight", std, s.IntermediateSize, s.HiddenSize),
			w(p+"mlp.down_proj.weight", std, s.HiddenSize, s.IntermediateSize),
		)
	}
	out = append(out, norm("model.norm.weight"))
	if !s.TieWordEmbeddings {
		out = append(out, w("lm_head.weight", std, s.VocabSize, s.HiddenSize))
	}
	return out
}

// Params returns the number of parameters of the model.
func (s Shape) Params() int64 {
	var n int64
	for _, t := range s.tensors() {
		m := int64(1)
		for _, d := range t.Shape {
			m *= int64(d)
		}
		n += m
	}
	return n
}

// MaxShardBytes is the largest safetensors file WriteRandomModel writes;
// bigger models are sharded with a model.safetensors.index.json, as
// Hugging Face does.
var MaxShardBytes int64 = 4 << 30

// RandomModelOptions are the choices of WriteRandomModel.
type RandomModelOptions struct {
	Seed uint64
	// TokenizerFrom is a model folder whose tokenizer is copied: anything
	// tokenizer.LoadDir reads (tokenizer.json or tokenizer.json.gz, and
	// tokenizer_config.json if present). Its config.json, if any, gives the
	// bos and eos token ids.
	TokenizerFrom string
	// Overwrite replaces a model already in the folder: every file that
	// belongs to a model (see IsModelFile) is removed once the new one is
	// written; other files stay. Without it, a folder holding any model
	// file is refused (ErrModelExists) and nothing in it is touched.
	Overwrite bool
	// Progress, if not nil, is called as the weights are written.
	Progress func(done, total int64)
	// Note, if not nil, receives remarks for the user: leftovers of an
	// interrupted run found in the folder.
	Note func(string)
}

// ErrTokenizer matches (errors.Is) the errors of WriteRandomModel about
// RandomModelOptions.TokenizerFrom; ErrModelExists those refusing to
// overwrite a model.
var (
	ErrTokenizer   = errors.New("unusable tokenizer folder")
	ErrModelExists = errors.New("folder already holds a model")
)

// kindError is an error whose message stands alone but which matches one
// of the sentinel errors above.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

// IsModelFile reports whether a file of this name in a model folder belongs
// to the model (and so is replaced by WriteRandomModel with Overwrite):
// the configs, the tokenizer files, the weights and their index.
func IsModelFile(name string) bool { return modelfolder.IsModelFile(name) }

// partialPrefix names the folder, inside the target, where a model is
// written before its files are moved into place. A run killed half-way
// leaves only this folder, which no loader takes for a model.
const partialPrefix = ".mkmodel-partial-"

// staleAfter is how long a partial folder must have been left untouched
// before a later run removes it.
const staleAfter = modelfolder.StaleAfter

// WriteRandomModel writes a randomly initialised bfloat16 Qwen2 checkpoint
// of the given shape into dir, in Hugging Face format: config.json,
// generation_config.json, model.safetensors (or shards and an index) and
// the tokenizer of opts.TokenizerFrom. The weights are uniform random
// values with the standard deviation of the Hugging Face initialisation
// (0.02); norm weights are 1. Such a model produces nonsense, but it has
// the real model's size and speed.
//
// Weights are generated in parallel and streamed to disk, so even qwen2-7b
// (15 GB) needs little memory; the result is the same for a given seed
// whatever the number of cores.
//
// Everything is written into a hidden folder inside dir and moved into
// place at the end, config.json last, so an interrupted run (ctx cancelled,
// a crash) never leaves files that count as a model, nor disturbs the model
// that Overwrite would have replaced.
func WriteRandomModel(ctx context.Context, dir string, s Shape, opts RandomModelOptions) error {
	src := opts.TokenizerFrom
	tokJSON, err := checkTokenizer(src, s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mkmodel: %w", err)
	}
	modelfolder.RemoveStalePartials(dir, partialPrefix, "mkmodel", opts.Note)
	if err := modelfolder.CheckFree(dir, opts.Overwrite); err != nil {
		return installError(err)
	}
	tmp, err := os.MkdirTemp(dir, partialPrefix)
	if err != nil {
		return fmt.Errorf("mkmodel: %w", err)
	}
	defer os.RemoveAll(tmp)

	if err := os.WriteFile(filepath.Join(tmp, "tokenizer.json"), tokJSON, 0o644); err != nil {
		return fmt.Errorf("mkmodel: %w", err)
	}
	for _, name := range modelfolder.TokenizerFiles {
		if err := copyFile(filepath.Join(src, name), filepath.Join(tmp, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mkmodel: %w", err)
		}
	}
	bos, eos := tokenIDs(src)
	gen := map[string]any{"bos_token_id": bos, "eos_token_id": eos, "do_sample": false}
	if err := writeJSONFile(filepath.Join(tmp, "generation_config.json"), gen); err != nil {
		return err
	}
	if err := writeShards(ctx, tmp, s, opts); err != nil {
		return err
	}
	if err := writeJSONFile(filepath.Join(tmp, "config.json"), s.config(bos, eos)); err != nil {
		return err
	}
	return installError(modelfolder.Install(tmp, dir, opts.Overwrite))
}

// installError gives a refusal to overwrite the ErrModelExists kind of this
// package, and any other error of writing the folder mkmodel's prefix.
func installError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, modelfolder.ErrModelExists):
		return &kindError{ErrModelExists, err.Error()}
	}
	return fmt.Errorf("mkmodel: %w", err)
}

// checkTokenizer loads the tokenizer of src as the engine will, checks that
// its ids fit the shape's vocabulary, and returns its tokenizer.json,
// uncompressed (tokenizer.json.gz is read by tinyllm but not by transformers).
func checkTokenizer(src string, s Shape) ([]byte, error) {
	path := filepath.Join(src, "tokenizer.json")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		path += ".gz"
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, &kindError{ErrTokenizer, fmt.Sprintf("%s has no tokenizer.json (nor tokenizer.json.gz)", src)}
		}
	}
	tok, err := tokenizer.LoadDir(src)
	if err != nil {
		return nil, &kindError{ErrTokenizer, fmt.Sprintf("%s holds no tokenizer that tinyllm loads: %v", src, err)}
	}
	if tok.VocabSize() > s.VocabSize {
		return nil, &kindError{ErrTokenizer, fmt.Sprintf("the tokenizer of %s has %d tokens, more than the %d of %s's vocabulary", src, tok.VocabSize(), s.VocabSize, s.Name)}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mkmodel: %w", err)
	}
	if len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			raw, err = io.ReadAll(zr)
		}
		if err != nil {
			return nil, fmt.Errorf("mkmodel: %s: %w", path, err)
		}
	}
	return raw, nil
}

// config returns the config.json of the shape, as transformers writes it.
func (s Shape) config(bos int, eos []int) map[string]any {
	return map[string]any{
		"architectures":           []string{"Qwen2ForCausalLM"},
		"attention_dropout":       0.0,
		"bos_token_id":            bos,
		"eos_token_id":            eos[0],
		"hidden_act":              "silu",
		"hidden_size":             s.HiddenSize,
		"initializer_range":       0.02,
		"intermediate_size":       s.IntermediateSize,
		"max_position_embeddings": s.MaxPositionEmbeddings,
		"max_window_layers":       s.NumHiddenLayers,
		"model_type":              "qwen2",
		"num_attention_heads":     s.NumAttentionHeads,
		"num_hidden_layers":       s.NumHiddenLayers,
		"num_key_value_heads":     s.NumKeyValueHeads,
		"rms_norm_eps":            s.RMSNormEps,
		"rope_theta":              s.RopeTheta,
		"sliding_window":          nil,
		"tie_word_embeddings":     s.TieWordEmbeddings,
		"torch_dtype":             "bfloat16",
		"use_cache":               true,
		"use_sliding_window":      false,
		"vocab_size":              s.VocabSize,
	}
}

// tokenIDs reads the bos and eos ids of the tokenizer's model folder, so
// that the random model stops where its tokenizer's turns end; without a
// config it uses Qwen2's.
func tokenIDs(dir string) (bos int, eos []int) {
	bos, eos = 151643, []int{151645, 151643}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return bos, eos
	}
	var c struct {
		BOS *int `json:"bos_token_id"`
		EOS *int `json:"eos_token_id"`
	}
	if json.Unmarshal(raw, &c) != nil || c.BOS == nil || c.EOS == nil {
		return bos, eos
	}
	return *c.BOS, []int{*c.EOS, *c.BOS}
}

// writeShards writes the weights, in shards of at most MaxShardBytes. It
// stops with ctx's error once ctx is done.
func writeShards(ctx context.Context, dir string, s Shape, opts RandomModelOptions) error {
	all := s.tensors()
	var shards [][]tensorSpec
	var size, total int64
	for _, t := range all {
		n := 2 * int64(numel(t.Shape))
		if len(shards) == 0 || (size+n > MaxShardBytes && size > 0) {
			shards = append(shards, nil)
			size = 0
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], t)
		size += n
		total += n
	}
	names := []string{"model.safetensors"}
	if len(shards) > 1 {
		names = names[:0]
		for i := range shards {
			names = append(names, fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards)))
		}
	}
	var done int64
	index := map[string]string{}
	tensorIndex := 0
	for si, shard := range shards {
		specs := make([]safetensors.Spec, len(shard))
		for i, t := range shard {
			specs[i] = t.Spec
			index[t.Name] = names[si]
		}
		base := tensorIndex
		err := safetensors.WriteFile(filepath.Join(dir, names[si]), specs, map[string]string{"format": "pt"}, func(i int, w io.Writer) error {
			return writeRandom(ctx, w, shard[i], opts.Seed, uint64(base+i), func(n int64) {
				done += n
				if opts.Progress != nil {
					opts.Progress(done, total)
				}
			})
		})
		if err != nil {
			return fmt.Errorf("mkmodel: writing the weights: %w", err)
		}
		tensorIndex += len(shard)
	}
	if len(shards) > 1 {
		doc := map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": index}
		return writeJSONFile(filepath.Join(dir, "model.safetensors.index.json"), doc)
	}
	return nil
}

// writeRandom writes one tensor's random bfloat16 values in chunks, each
// generated from its own seed (seed, tensor, chunk), in parallel.
func writeRandom(ctx context.Context, w io.Writer, t tensorSpec, seed, tensorID uint64, progress func(int64)) error {
	const chunk = 1 << 20
	n := numel(t.Shape)
	workers := runtime.GOMAXPROCS(0)
	bufs := make([][]uint16, workers)
	for i := range bufs {
		bufs[i] = make([]uint16, chunk)
	}
	raw := make([]byte, 2*chunk)
	for c0 := 0; c0 < n; c0 += chunk * workers {
		if err := ctx.Err(); err != nil {
			return err
		}
		var wg sync.WaitGroup
		for i := range workers {
			lo := c0 + i*chunk
			if lo >= n {
				break
			}
			hi := min(lo+chunk, n)
			wg.Go(func() { fillRandom(bufs[i][:hi-lo], t, seed, tensorID, uint64(lo/chunk)) })
		}
		wg.Wait()
		for i := range workers {
			lo := c0 + i*chunk
			if lo >= n {
				break
			}
			hi := min(lo+chunk, n)
			b := raw[:2*(hi-lo)]
			for j, v := range bufs[i][:hi-lo] {
				binary.LittleEndian.PutUint16(b[2*j:], v)
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			progress(int64(len(b)))
		}
	}
	return nil
}

// fillRandom fills dst with bfloat16 values: uniform on [-a, a] with
// a = std·√3 (standard deviation std), or ones for a norm weight.
func fillRandom(dst []uint16, t tensorSpec, seed, tensorID, chunkID uint64) {
	if t.ones {
		one := tensor.BF16FromFloat32(1)
		for i := range dst {
			dst[i] = one
		}
		return
	}
	rng := rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, tensorID<<32|chunkID))
	a := float32(t.std * math.Sqrt(3))
	for i := 0; i < len(dst); i += 2 {
		r := rng.Uint64()
		// Two 24-bit uniforms in [0, 1) from one draw.
		u0 := float32(r>>40) / (1 << 24)
		u1 := float32(r>>8&(1<<24-1)) / (1 << 24)
		dst[i] = tensor.BF16FromFloat32(a * (2*u0 - 1))
		if i+1 < len(dst) {
			dst[i+1] = tensor.BF16FromFloat32(a * (2*u1 - 1))
		}
	}
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func writeJSONFile(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("mkmodel: %w", err)
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("mkmodel: %w", err)
	}
	return nil
}

func copyFile(from, to string) error {
	raw, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, raw, 0o644)
}
