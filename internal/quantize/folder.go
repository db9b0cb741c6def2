package quantize

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/tinyllm-go/tinyllm/internal/boundedfile"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/modelfolder"
	"github.com/tinyllm-go/tinyllm/internal/safetensors"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Options are the choices of Folder.
type Options struct {
	Bits, GroupSize int
	// Overwrite replaces a model already in the output folder: its model
	// files (see modelfolder.IsModelFile) are removed once the new one is
	// complete; other files stay. Without it such a folder is refused.
	Overwrite bool
	// Progress, if not nil, is called as the weights are quantized, with
	// the bytes of input weights done and their total.
	Progress func(done, total int64)
	// Note, if not nil, receives remarks for the user: tensors dropped as
	// mlx-lm drops them, leftovers of an interrupted run.
	Note func(string)
}

// ErrInput matches (errors.Is) Folder's refusals of its input or options
// (a model already quantized, an unsupported setting, a weight whose rows
// are not whole groups, a tensor that is not part of a Qwen2 model);
// ErrModelExists its refusal to overwrite a model without Overwrite.
var (
	ErrInput       = errors.New("cannot quantize this input")
	ErrModelExists = modelfolder.ErrModelExists
)

type inputError struct{ msg string }

func (e *inputError) Error() string        { return e.msg }
func (e *inputError) Is(target error) bool { return target == ErrInput }

func refuse(format string, args ...any) error {
	return &inputError{fmt.Sprintf(format, args...)}
}

// partialPrefix names the hidden folder, inside the output folder, where
// the model is written before its files are moved into place.
const partialPrefix = ".quantize-partial-"

// MaxShardBytes is the largest weight file Folder writes, mlx-lm's 5 GiB;
// a bigger model is split into model-0000i-of-0000n.safetensors.
var MaxShardBytes int64 = 5 << 30

// mode is the only quantization mode written: MLX's "affine".
const mode = "affine"

// Folder quantizes the Qwen2 model in folder in into folder out, as
// mlx_lm.convert --quantize does: every weight matrix (the embedding, the
// attention and MLP projections, an untied head) is stored as
// opts.Bits-bit codes with a scale and a bias per opts.GroupSize inputs,
// in the dtype config.json names (torch_dtype), every other tensor is kept
// in that dtype, and config.json gains the "quantization" block, also as
// "quantization_config". The tokenizer files and generation_config.json are
// copied.
//
// Everything is checked before anything is written, and the model is
// written into a hidden folder inside out and moved into place at the end,
// config.json last: a failed or interrupted run (ctx cancelled) leaves
// nothing that counts as a model, and the model that Overwrite would have
// replaced is untouched.
func Folder(ctx context.Context, in, out string, opts Options) error {
	if !Supported(opts.Bits, opts.GroupSize) {
		return refuse("%d bits in groups of %d is not supported: choose 4 or 8 bits and a group size of 32, 64 or 128", opts.Bits, opts.GroupSize)
	}
	cfg, err := readConfig(in)
	if err != nil {
		return err
	}
	ck, err := checkpoint.Open(in)
	if err != nil {
		return refuse("%v", err)
	}
	defer ck.Close()
	p, err := newPlan(ck, cfg, opts)
	if err != nil {
		return err
	}
	if err := checkOutput(in, out, opts.Overwrite); err != nil {
		return err
	}
	modelfolder.RemoveStalePartials(out, partialPrefix, "quantize", opts.Note)
	tmp, err := os.MkdirTemp(out, partialPrefix)
	if err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	defer os.RemoveAll(tmp)

	if err := copySideFiles(in, tmp, opts.Note); err != nil {
		return err
	}
	if err := p.write(ctx, tmp); err != nil {
		return err
	}
	if err := writeConfig(filepath.Join(tmp, "config.json"), cfg, in, opts); err != nil {
		return err
	}
	if err := ck.Close(); err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	if err := modelfolder.Install(tmp, out, opts.Overwrite); err != nil {
		if errors.Is(err, ErrModelExists) {
			return err
		}
		return fmt.Errorf("quantize: %w", err)
	}
	return nil
}

// readConfig reads in's config.json as a map, so that every field is
// written back unchanged, and refuses a model that is quantized already.
func readConfig(in string) (map[string]json.RawMessage, error) {
	raw, err := boundedfile.Read(filepath.Join(in, "config.json"), checkpoint.MaxJSONBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil, refuse("%s has no config.json: give a Hugging Face model folder", in)
	}
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, refuse("%s: not a JSON object: %v", filepath.Join(in, "config.json"), err)
	}
	for _, key := range []string{"quantization", "quantization_config"} {
		if v, ok := cfg[key]; ok && string(v) != "null" {
			return nil, refuse("%s is quantized already (its config.json has a %q block): quantize the original bf16, f16 or f32 model", in, key)
		}
	}
	return cfg, nil
}

// checkOutput refuses an output folder that is the input folder, is not a
// folder, or (without overwrite) holds a model; it creates it if need be.
func checkOutput(in, out string, overwrite bool) error {
	if fi, err := os.Stat(out); err == nil {
		if !fi.IsDir() {
			return refuse("%s exists and is not a folder", out)
		}
		if inFi, err := os.Stat(in); err == nil && os.SameFile(fi, inFi) {
			return refuse("the output folder is the input folder %s: write the quantized model to another folder", in)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	return modelfolder.CheckFree(out, overwrite)
}

// copySideFiles copies the tokenizer and generation_config.json.
func copySideFiles(in, tmp string, note func(string)) error {
	names := append([]string{"tokenizer.json", "tokenizer.json.gz", "generation_config.json"}, modelfolder.TokenizerFiles...)
	tokenizer := false
	for _, name := range names {
		raw, err := boundedfile.Read(filepath.Join(in, name), 1<<30)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("quantize: %w", err)
		}
		if err := os.WriteFile(filepath.Join(tmp, name), raw, 0o644); err != nil {
			return fmt.Errorf("quantize: %w", err)
		}
		tokenizer = tokenizer || strings.HasPrefix(name, "tokenizer.json")
	}
	if !tokenizer && note != nil {
		note(in + " has no tokenizer.json: the quantized model has none either, and needs one to chat")
	}
	return nil
}

// writeConfig writes config.json as mlx-lm saves it: the input's fields,
// sorted, without _name_or_path, with the quantization block twice, and
// with generation_config.json's eos_token_id, if it has one (not 0 nor
// empty), in place of the config's own (mlx-lm's loader merges it so).
func writeConfig(path string, cfg map[string]json.RawMessage, in string, opts Options) error {
	q, err := json.Marshal(struct {
		GroupSize int    `json:"group_size"`
		Bits      int    `json:"bits"`
		Mode      string `json:"mode"`
	}{opts.GroupSize, opts.Bits, mode})
	if err != nil {
		return err
	}
	cfg = maps(cfg)
	delete(cfg, "_name_or_path")
	cfg["quantization"], cfg["quantization_config"] = q, q
	if raw, err := boundedfile.Read(filepath.Join(in, "generation_config.json"), checkpoint.MaxJSONBytes); err == nil {
		var gen map[string]json.RawMessage
		if json.Unmarshal(raw, &gen) == nil {
			switch eos := gen["eos_token_id"]; string(eos) {
			case "", "null", "0", "[]", "false":
			default:
				cfg["eos_token_id"] = eos
			}
		}
	}
	raw, err := json.MarshalIndent(cfg, "", "    ")
	if err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}

func maps(m map[string]json.RawMessage) map[string]json.RawMessage {
	c := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// item is one tensor of the quantized model: a weight quantized into its
// three tensors (words, scales, biases), or a tensor copied in the model's
// dtype.
type item struct {
	src       string // the input tensor
	quantized bool
	shape     []int // the input shape
	dtype     tensor.DType
}

// plan is what Folder writes, decided and checked before it writes.
type plan struct {
	ck    *checkpoint.Checkpoint
	opts  Options
	items []item
}

// dtypes maps config.json's torch_dtype to the dtype mlx_lm.convert casts
// every weight to; without one of these each tensor keeps its own dtype.
var dtypes = map[string]tensor.DType{"bfloat16": tensor.BFloat16, "float16": tensor.Float16, "float32": tensor.Float32}

var storedDTypes = map[string]tensor.DType{"BF16": tensor.BFloat16, "F16": tensor.Float16, "F32": tensor.Float32}

func stName(dt tensor.DType) string {
	switch dt {
	case tensor.BFloat16:
		return "BF16"
	case tensor.Float16:
		return "F16"
	}
	return "F32"
}

// newPlan lists the tensors to write and checks that each can be: every
// tensor must belong to the Qwen2 model (those mlx-lm drops are dropped
// with a note, anything else is refused rather than lost), and every weight
// matrix must have whole groups in its rows.
func newPlan(ck *checkpoint.Checkpoint, cfg map[string]json.RawMessage, opts Options) (*plan, error) {
	c := ck.Config
	var want tensor.DType
	hasWant := false
	// Only torch_dtype, as mlx_lm.convert reads it: a config that names its
	// dtype only under transformers 5's "dtype" keeps each tensor's own.
	var s string
	if json.Unmarshal(cfg["torch_dtype"], &s) == nil {
		want, hasWant = dtypes[s]
	}
	known := map[string]bool{"model.embed_tokens.weight": true, "model.norm.weight": true, "lm_head.weight": !c.TieWordEmbeddings}
	for i := range c.NumHiddenLayers {
		for _, t := range []string{"self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight", "self_attn.k_proj.bias",
			"self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
			"mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"} {
			known[fmt.Sprintf("model.layers.%d.%s", i, t)] = true
		}
	}
	p := &plan{ck: ck, opts: opts}
	var badGroups []string
	fits := map[int]bool{32: true, 64: true, 128: true}
	for _, name := range ck.Names() {
		info, _ := ck.Info(name)
		switch {
		case name == "lm_head.weight" && c.TieWordEmbeddings:
			note(opts, "dropped lm_head.weight: tie_word_embeddings is true, so the embedding serves as the head (mlx-lm drops it too)")
			continue
		case strings.HasSuffix(name, ".rotary_emb.inv_freq"):
			note(opts, "dropped "+name+": the rotary frequencies are computed from rope_theta (mlx-lm drops them too)")
			continue
		case !known[name]:
			return nil, refuse("%s holds %s, which is not a tensor of a Qwen2 model of its config: quantizing would lose it", ck.Dir, name)
		}
		dt, ok := storedDTypes[info.DType]
		if !ok {
			return nil, refuse("%s: %s is stored as %s; quantize reads bf16, f16 and f32 models", ck.Dir, name, info.DType)
		}
		if hasWant {
			dt = want
		}
		it := item{src: name, shape: info.Shape, dtype: dt, quantized: len(info.Shape) == 2}
		if it.quantized {
			in := info.Shape[1]
			if in%opts.GroupSize != 0 {
				badGroups = append(badGroups, fmt.Sprintf("%s (%d)", name, in))
			}
			for g := range fits {
				fits[g] = fits[g] && in%g == 0
			}
		}
		p.items = append(p.items, it)
	}
	if len(badGroups) > 0 {
		hint := "no supported group size (32, 64, 128) divides them all"
		for _, g := range []int{128, 64, 32} {
			if fits[g] {
				hint = fmt.Sprintf("--group-size %d divides them all", g)
				break
			}
		}
		list := strings.Join(badGroups[:min(3, len(badGroups))], ", ")
		if len(badGroups) > 3 {
			list += fmt.Sprintf(" and %d more weights", len(badGroups)-3)
		}
		return nil, refuse("a group size of %d does not divide the inputs of %s: each row of a weight must be whole groups; %s",
			opts.GroupSize, list, hint)
	}
	// Packed words first, then float32, then 16-bit tensors, so that every
	// tensor starts aligned to its element size in the file.
	rank := func(it item) int {
		switch {
		case it.quantized:
			return 0
		case it.dtype == tensor.Float32:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(p.items, func(a, b item) int { return rank(a) - rank(b) })
	return p, nil
}

func note(opts Options, s string) {
	if opts.Note != nil {
		opts.Note(s)
	}
}

// output is one tensor of the written file, made from item src.
type output struct {
	spec safetensors.Spec
	item int
	part int // for a quantized item: 0 words, 1 scales, 2 biases
}

func (p *plan) outputs() []output {
	var outs []output
	for i, it := range p.items {
		if !it.quantized {
			outs = append(outs, output{safetensors.Spec{Name: it.src, DType: stName(it.dtype), Shape: it.shape}, i, 0})
			continue
		}
		base := strings.TrimSuffix(it.src, ".weight")
		rows, in := it.shape[0], it.shape[1]
		groups := []int{rows, in / p.opts.GroupSize}
		outs = append(outs,
			output{safetensors.Spec{Name: it.src, DType: "U32", Shape: []int{rows, in * p.opts.Bits / 32}}, i, 0},
			output{safetensors.Spec{Name: base + ".scales", DType: stName(it.dtype), Shape: groups}, i, 1},
			output{safetensors.Spec{Name: base + ".biases", DType: stName(it.dtype), Shape: groups}, i, 2})
	}
	return outs
}

func numel(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}

// write writes the weights, their index and nothing else into dir.
func (p *plan) write(ctx context.Context, dir string) error {
	outs := p.outputs()
	var shards [][]output
	var size, total, inputBytes, params int64
	for _, o := range outs {
		n := numel(o.spec.Shape) * int64(elemSize(o.spec.DType))
		if len(shards) == 0 || (size+n > MaxShardBytes && size > 0) {
			shards = append(shards, nil)
			size = 0
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], o)
		size += n
		total += n
	}
	for _, it := range p.items {
		info, _ := p.ck.Info(it.src)
		inputBytes += numel(it.shape) * int64(elemSize(info.DType))
		params += numel(it.shape)
	}
	names := []string{"model.safetensors"}
	if len(shards) > 1 {
		names = names[:0]
		for i := range shards {
			names = append(names, fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards)))
		}
	}
	weightMap := map[string]string{}
	var done int64
	progress := func(n int64) {
		done += n
		if p.opts.Progress != nil {
			p.opts.Progress(done, inputBytes)
		}
	}
	for si, shard := range shards {
		specs := make([]safetensors.Spec, len(shard))
		for i, o := range shard {
			specs[i] = o.spec
			weightMap[o.spec.Name] = names[si]
		}
		// The scales and biases of a weight are computed with its words and
		// written by the next two fills.
		var pending [2][]byte
		err := safetensors.WriteFile(filepath.Join(dir, names[si]), specs, map[string]string{"format": "mlx"}, func(i int, w io.Writer) error {
			o := shard[i]
			it := p.items[o.item]
			switch {
			case !it.quantized:
				return p.copyTensor(ctx, it, w, progress)
			case o.part == 0:
				var err error
				pending, err = p.quantizeTensor(ctx, it, w, progress)
				return err
			}
			b := pending[o.part-1]
			pending[o.part-1] = nil
			_, err := w.Write(b)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if ie := (*inputError)(nil); errors.As(err, &ie) {
				return ie
			}
			return fmt.Errorf("quantize: writing the weights: %w", err)
		}
	}
	// mlx-lm writes the index even for a single file.
	index := map[string]any{"metadata": map[string]int64{"total_size": total, "total_parameters": params}, "weight_map": weightMap}
	raw, err := json.MarshalIndent(index, "", "    ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), append(raw, '\n'), 0o644)
}

func elemSize(st string) int {
	switch st {
	case "F32", "U32":
		return 4
	}
	return 2
}

// values returns rows lo…hi of a tensor as float32, after rounding them to
// the output dtype as mlx_lm.convert's cast does.
func values(t *tensor.Tensor, cols, lo, hi int, dt tensor.DType) []float32 {
	var v []float32
	if t.DType() == tensor.Float32 {
		v = slices.Clone(t.Data()[lo*cols : hi*cols])
	} else {
		bits := t.Bits()[lo*cols : hi*cols]
		v = make([]float32, len(bits))
		for i, b := range bits {
			if t.DType() == tensor.BFloat16 {
				v[i] = tensor.BF16ToFloat32(b)
			} else {
				v[i] = tensor.F16ToFloat32(b)
			}
		}
	}
	if dt != t.DType() {
		for i, x := range v {
			v[i] = roundTo(dt, x)
		}
	}
	return v
}

// roundTo rounds x to the nearest value of dtype dt, ties to even.
func roundTo(dt tensor.DType, x float32) float32 {
	switch dt {
	case tensor.BFloat16:
		return tensor.BF16ToFloat32(tensor.BF16FromFloat32(x))
	case tensor.Float16:
		return tensor.F16ToFloat32(tensor.F16FromFloat32(x))
	}
	return x
}

// putValues appends xs to b in dtype dt, little-endian.
func putValues(b []byte, dt tensor.DType, xs []float32) []byte {
	for _, x := range xs {
		switch dt {
		case tensor.BFloat16:
			b = binary.LittleEndian.AppendUint16(b, tensor.BF16FromFloat32(x))
		case tensor.Float16:
			b = binary.LittleEndian.AppendUint16(b, tensor.F16FromFloat32(x))
		default:
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	return b
}

// chunkValues is about how many values are converted or quantized at a
// time: enough to keep every core busy, little enough that a 7B model's
// embedding never sits in memory widened to float32.
const chunkValues = 1 << 22

func (p *plan) load(it item) (*tensor.Tensor, int, int, error) {
	t, err := p.ck.Tensor(it.src)
	if err != nil {
		return nil, 0, 0, err
	}
	rows, cols := 1, 1
	if len(it.shape) > 0 {
		cols = it.shape[len(it.shape)-1]
		rows = int(numel(it.shape)) / max(cols, 1)
	}
	return t, rows, cols, nil
}

// copyTensor writes an unquantized tensor in the output dtype.
func (p *plan) copyTensor(ctx context.Context, it item, w io.Writer, progress func(int64)) error {
	t, rows, cols, err := p.load(it)
	if err != nil {
		return err
	}
	in := int64(t.DType().Size())
	step := max(1, chunkValues/max(cols, 1))
	for lo := 0; lo < rows; lo += step {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(lo+step, rows)
		if _, err := w.Write(putValues(nil, it.dtype, values(t, cols, lo, hi, it.dtype))); err != nil {
			return err
		}
		progress(int64((hi-lo)*cols) * in)
	}
	return nil
}

// quantizeTensor writes a weight's packed words and returns its scales and
// biases, encoded, for the next two tensors of the file. Rows are
// quantized in chunks, each chunk split among the cores; the result does
// not depend on how.
func (p *plan) quantizeTensor(ctx context.Context, it item, w io.Writer, progress func(int64)) ([2][]byte, error) {
	var enc [2][]byte
	t, rows, cols, err := p.load(it)
	if err != nil {
		return enc, err
	}
	bits, g := p.opts.Bits, p.opts.GroupSize
	in := int64(t.DType().Size())
	step := max(1, chunkValues/cols)
	workers := runtime.GOMAXPROCS(0)
	for lo := 0; lo < rows; lo += step {
		if err := ctx.Err(); err != nil {
			return enc, err
		}
		hi := min(lo+step, rows)
		n := hi - lo
		v := values(t, cols, lo, hi, it.dtype)
		words := make([]uint32, n*cols*bits/32)
		scales := make([]float32, n*cols/g)
		biases := make([]float32, n*cols/g)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		per := (n + workers - 1) / workers
		for k := range workers {
			a, b := k*per, min((k+1)*per, n)
			if a >= b {
				break
			}
			wg.Go(func() {
				at, err := affineInto(v[a*cols:b*cols], g, bits, words[a*cols*bits/32:b*cols*bits/32], scales[a*cols/g:b*cols/g], biases[a*cols/g:b*cols/g])
				if err != nil {
					errs[k] = fmt.Errorf("row %d, column %d: %w", lo+a+at/cols, at%cols, err)
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return enc, refuse("%s: %s: %v", p.ck.Dir, it.src, err)
			}
		}
		raw := make([]byte, 0, 4*len(words))
		for _, x := range words {
			raw = binary.LittleEndian.AppendUint32(raw, x)
		}
		if _, err := w.Write(raw); err != nil {
			return enc, err
		}
		// As MLX does: the scale and bias are rounded to the weight's dtype
		// only once the codes are computed.
		enc[0] = putValues(enc[0], it.dtype, scales)
		enc[1] = putValues(enc[1], it.dtype, biases)
		progress(int64(n*cols) * in)
	}
	return enc, nil
}
