package day7

// The Week 2 model on the GPU: weights resident on the device, activations
// in buffers allocated once, the KV cache in device memory, the greedy
// choice made on the device, and the decode step captured once as a graph.

import (
	_ "embed"
	"errors"
	"fmt"
	"math"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devsample"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/solutions/week2/day4"
	"github.com/tinyllm-go/tinyllm/solutions/week2/day5"
	"github.com/tinyllm-go/tinyllm/solutions/week2/day6"
)

//go:embed step.cu
var stepCUDA string

//go:embed step.metal
var stepMetal string

// fusedCUDA is the reference's fused decode step (CUDA only), compiled
// after Day 4's matrix-vector core.
//
//go:embed fused_step.cu
var fusedCUDA string

// Source returns the day's kernel source for a backend (kernels.CUDA or
// kernels.Metal), or "". (Provided.)
func Source(backend string) string {
	switch backend {
	case kernels.CUDA:
		return stepCUDA
	case kernels.Metal:
		return stepMetal
	}
	return ""
}

// KernelNames are the kernels the day's source declares. (Provided.)
var KernelNames = []string{"embed_bf16", "embed_q4", "qkv_post", "swiglu_pair", "argmax_advance",
	"attention_graph_split", "attention_graph_reduce", "record_token"}

// The defaults of Options. (Provided.)
const (
	// DefaultMaxContext caps the positions the device cache is allocated
	// for when Options.MaxContext is 0: Qwen2's max_position_embeddings is
	// 32768, and a float32 cache that long is 0.4 GB for Qwen2-0.5B and
	// 3.8 GB for 7B, allocated before the first token.
	DefaultMaxContext = 4096
	// DefaultPrefillRows is the longest piece of a prompt per forward pass
	// when Options.PrefillRows is 0: the activation buffers are sized for
	// it once.
	DefaultPrefillRows = 256
)

// Options shape a GPUModel. (Provided.)
type Options struct {
	// MaxContext is the most positions the cache holds (prompt and reply
	// together); 0 is the model's max_position_embeddings, at most
	// DefaultMaxContext.
	MaxContext int
	// PrefillRows is the most prompt tokens one forward pass takes; 0 is
	// DefaultPrefillRows.
	PrefillRows int
	// Graph captures the decode step once and replays it: a CUDA graph,
	// one command buffer per step on Metal.
	Graph bool
	// FloatActivations keeps every matrix product's input in float32: the
	// prompt's products run on Day 4's rung 3 instead of the tensor cores,
	// which round their input to bf16, and its attention on Day 6's
	// float32 prefill kernel (Attention.Float32Prefill). Slower prefill, and the same
	// arithmetic as the CPU's: what token-for-token equality with a
	// float32 reference needs.
	FloatActivations bool
}

// resolve fills in the defaults and checks the options against the model.
func (o Options) resolve(cfg checkpoint.Config) (Options, error) {
	if o.MaxContext < 0 || o.PrefillRows < 0 {
		return o, fmt.Errorf("day7: MaxContext %d and PrefillRows %d must not be negative", o.MaxContext, o.PrefillRows)
	}
	if o.MaxContext == 0 {
		o.MaxContext = min(cfg.MaxPositionEmbeddings, DefaultMaxContext)
	}
	if o.MaxContext > cfg.MaxPositionEmbeddings {
		return o, fmt.Errorf("day7: a context of %d positions is more than the model's max_position_embeddings %d", o.MaxContext, cfg.MaxPositionEmbeddings)
	}
	if o.PrefillRows == 0 {
		o.PrefillRows = DefaultPrefillRows
	}
	o.PrefillRows = min(o.PrefillRows, o.MaxContext)
	return o, nil
}

// storage is how a checkpoint's matrices are stored on the device: bits 16
// (bf16) or 4 with a group size.
func storage(cfg checkpoint.Config) (bits, group int) {
	if q := cfg.Quantization; q != nil {
		return q.Bits, q.GroupSize
	}
	return 16, 0
}

// graphSplits is how many ranges the captured decode attention cuts the
// keys into for hq query heads on a GPU of sms multiprocessors: about two
// blocks per multiprocessor, whatever the length, because the length is
// not known when the step is captured. (Provided.)
func graphSplits(hq, sms int) int {
	if sms <= 0 {
		sms = 8 // Metal does not say; Apple GPUs have 8 to 80 cores
	}
	return min(64, max(1, (2*sms+hq-1)/hq))
}

// MemoryNeed is the device memory, in bytes, that Load allocates for a
// model of cfg with opts: the weights as stored (bf16, or 4-bit with bf16
// scales and biases; the small vectors as float32), the float32 KV cache
// of every layer for MaxContext positions, the RoPE table, the activation
// buffers for PrefillRows rows and the attention scratch. Load checks it
// against the device's free memory before it uploads anything. (Provided.)
func MemoryNeed(cfg checkpoint.Config, opts Options) (int64, error) {
	o, err := opts.resolve(cfg)
	if err != nil {
		return 0, err
	}
	bits, group := storage(cfg)
	e, inter, v, layers := int64(cfg.HiddenSize), int64(cfg.IntermediateSize), int64(cfg.VocabSize), int64(cfg.NumHiddenLayers)
	d := int64(cfg.HeadDim())
	hq, h := int64(cfg.NumAttentionHeads), int64(cfg.NumKeyValueHeads)
	kv := h * d
	// ModelWeightBytes counts the biases and norm weights as bf16; they
	// are uploaded as float32, two bytes more per value.
	vectors := layers*(e+2*kv+2*e) + e
	need := devtensor.ModelWeightBytes(cfg, bits, group) + 2*vectors
	need += layers * devtensor.KVCacheBytes(int(h), o.MaxContext, int(d))
	need += 2 * 4 * int64(o.MaxContext) * d / 2 // cos and sin
	rows := int64(o.PrefillRows)
	// h, xn, q, attn, o, mlp (E each), qkv, gu (2I), act (I), per row;
	// the last row, the logits; token ids and the position.
	need += 4*rows*(6*e+(e+2*kv)+3*inter) + 4*(e+v) + 4*(rows+1)
	// The captured attention's partial results for up to 64 ranges, and
	// Day 6's decode scratch (grown on first use, at most 4 chunks per
	// multiprocessor of up to 256 multiprocessors).
	need += 4*hq*64*(d+2) + 4*hq*4*256*(d+2)
	// x published in int8 parts for the fused 4-bit step: h with its
	// slices' sums of squares, the attention, silu(g)·u.
	need += int64(int8xBytes(int(e))+int8xBytes(int(hq*d))+int8xBytes(int(inter))) + 4*e/32
	// Day 4's own scratch for the products of a prefill: the widest rows
	// of W are gate and up stacked (2I), the longest down's (I); a 4-bit
	// W is decoded to bf16 first, the largest being gate and up.
	var decoded int64
	if bits == 4 {
		decoded = 2 * 2 * inter * e
	}
	need += day4.ScratchBytes(o.PrefillRows, int(max(e, inter)), int(max(2*inter, (hq+2*h)*d, e)), decoded)
	return need, nil
}

// layer is one decoder layer's weights on the device.
type layer struct {
	ln1, ln2  *devtensor.Vector
	qkv       *devtensor.Weight // q, k and v projections, rows stacked: (Hq+2H)·D x E
	qkvBias   *devtensor.Vector
	o, gateUp *devtensor.Weight // gateUp: gate and up rows stacked, 2I x E
	down      *devtensor.Weight
	cache     *devtensor.KVCache
}

// GPUModel is the Week 2 model resident on one device, for one sequence at
// a time. It is not safe for concurrent use. (Provided.)
type GPUModel struct {
	dev  *kernels.Device
	cfg  checkpoint.Config
	opts Options

	mm    *day4.Matmul
	fused *day5.Fused
	att   *day6.Attention
	mod   *kernels.Module
	k     map[string]*kernels.Kernel

	embed, head *devtensor.Weight // the same Weight when the embeddings are tied
	layers      []*layer
	finalNorm   *devtensor.Vector
	rope        *day5.DeviceRoPE

	// Activations, sized once for PrefillRows rows.
	h, xn, qkv, q, attn, o, gu, act, mlp, last, logits *devtensor.Activations
	tokens, pos                                        *kernels.Buffer // int32 ids of this pass; int32 position
	hist                                               *kernels.Buffer // DecodeAhead's choices, int32 (nil until used)
	partO, partML                                      *kernels.Buffer // the captured attention's partial results
	splits                                             int             // ranges of attention_graph_split

	graph    *kernels.Graph
	graphErr error // why the step is not captured, when Graph was asked for

	sampler  *devsample.Sampler // Week 1's sampler on the device, made by the first SetSampling
	sampling bool               // choose draws with sampler instead of taking the argmax

	// The fused decode step (CUDA): its kernels, and the counters with
	// which the last block of the attention (one a query head) and of the
	// head finds out that it is last, and the head's per-block best logits.
	fmod                *kernels.Module
	fk                  map[string]*kernels.Kernel
	attCount, headCount *kernels.Buffer
	headPart            *kernels.Buffer
	// x rounded once into int8 parts by the kernel that writes it, for
	// the 4-bit kernels that read it (fused_step.cu's FS_PUB): h times a
	// norm's weights with its slices' sums of squares, the attention and
	// silu(g)·u.
	pubH, pubHSS, pubAttn, pubAct *kernels.Buffer
	// Benchmark knobs: noFuse captures the unfused step, fuseOnly (a
	// kernel's name without its suffix) launches that kernel alone,
	// floatQ4 makes the fused 4-bit kernels take float x.
	noFuse   bool
	fuseOnly string
	floatQ4  bool
	// fuseTarget and fuseCap override fusedSplit's blocks a
	// multiprocessor to split rows for and its cap on the grid;
	// q4Threads the threads a block of the 4-bit kernels (256).
	fuseTarget, fuseCap, q4Threads int
	// prefetch overrides fusedPrefetch (a negative value: none).
	prefetch      int
	graphLaunches int // launches the captured step replays

	n          int // positions cached (the device's pos[0] between passes)
	eagerSteps int // decode steps run launch by launch
	next       int // the token id in tokens[0] on the device (the last greedy choice), or -1
	launches   int // kernel launches of the last forward pass
}

// Load uploads a checkpoint's weights to dev once, allocates the KV cache
// and the activation buffers, and compiles the kernels. It first checks
// MemoryNeed against the device's free memory and fails with a clear error,
// having allocated nothing, when the model does not fit. Float checkpoints
// are stored as bf16 (a bf16 checkpoint exactly); MLX checkpoints must be
// 4-bit with groups of 64 or 128. (Provided.)
func Load(dev *kernels.Device, ck *checkpoint.Checkpoint, opts Options) (m *GPUModel, err error) {
	cfg := ck.Config
	o, err := opts.resolve(cfg)
	if err != nil {
		return nil, err
	}
	if bits, group := storage(cfg); bits != 16 && (bits != 4 || (group != 64 && group != 128)) {
		return nil, fmt.Errorf("day7: %s is quantized to %d bits with groups of %d; the GPU kernels take bf16 or 4-bit with groups of 64 or 128", ck.Dir, bits, group)
	}
	if d := cfg.HeadDim(); d > day6.MaxHeadDim || d%2 != 0 || cfg.NumAttentionHeads/cfg.NumKeyValueHeads > day6.MaxGroup {
		return nil, fmt.Errorf("day7: head dimension %d with %d query heads per key/value head: the attention kernels take an even head dimension up to %d and up to %d heads per group",
			d, cfg.NumAttentionHeads/cfg.NumKeyValueHeads, day6.MaxHeadDim, day6.MaxGroup)
	}
	need, err := MemoryNeed(cfg, o)
	if err != nil {
		return nil, err
	}
	if err := devtensor.CheckFits(dev, need); err != nil {
		return nil, fmt.Errorf("day7: the model with a %d-position cache does not fit: %w", o.MaxContext, err)
	}
	m = &GPUModel{dev: dev, cfg: cfg, opts: o, next: -1, k: map[string]*kernels.Kernel{}}
	defer func() {
		if err != nil {
			m.Close()
			m = nil
		}
	}()
	if err := m.compile(); err != nil {
		return nil, err
	}
	if err := m.upload(ck); err != nil {
		return nil, err
	}
	if err := m.allocate(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *GPUModel) compile() error {
	var err error
	if m.mm, err = day4.NewMatmul(m.dev); err != nil {
		return err
	}
	if m.fused, err = day5.NewFused(m.dev); err != nil {
		return err
	}
	if m.att, err = day6.NewAttention(m.dev); err != nil {
		return err
	}
	if m.opts.FloatActivations {
		// The tensor-core prefill kernel rounds q, k, v to bf16.
		m.att.Float32Prefill()
	}
	src := fmt.Sprintf("#define HEAD_DIM %d\n", m.cfg.HeadDim()) + Source(m.dev.Backend())
	if m.mod, err = m.dev.Compile(src); err != nil {
		return fmt.Errorf("compiling the W2D7 kernels for %s: %w", m.dev.Backend(), err)
	}
	for _, name := range KernelNames {
		if m.k[name], err = m.mod.Kernel(name); err != nil {
			return err
		}
	}
	if m.dev.Backend() != kernels.CUDA {
		return nil
	}
	m.fmod, m.fk, err = m.compileFused(fusedLevels, "")
	return err
}

// fusedLevels is the int8 parts in which the fused 4-bit kernels take x
// (Day 4's MQ_LEVELS): two, x to within about 2·10⁻⁵ of each slice's
// largest value, far below what the bf16 and 4-bit weights themselves
// round away. Day 4's own kernel takes three, float32's precision, which
// its checks against float32 results ask for; here the third part cost
// 13 µs of a two-layer 7B step of 233 (BenchmarkW2D7DecodeStep's
// _levels3 variants).
const fusedLevels = 2

// compileFused compiles fused_step.cu after Day 4's matrix-vector core,
// with x in levels int8 parts and defines first (the benchmark compares
// builds with other settings of the core's macros).
func (m *GPUModel) compileFused(levels int, defines string) (*kernels.Module, map[string]*kernels.Kernel, error) {
	src := fmt.Sprintf("#define HEAD_DIM %d\n#define MATVEC_CORE_ONLY\n#define MQ_LEVELS %d\n", m.cfg.HeadDim(), levels) + defines +
		day4.Source(kernels.CUDA, "matmul_fast") + fusedCUDA
	mod, err := m.dev.Compile(src)
	if err != nil {
		return nil, nil, fmt.Errorf("compiling the W2D7 fused decode step: %w", err)
	}
	fk := map[string]*kernels.Kernel{}
	for _, name := range fusedKernelNames {
		if fk[name], err = mod.Kernel(name); err != nil {
			mod.Close()
			return nil, nil, err
		}
	}
	return mod, fk, nil
}

// fusedKernelNames are the kernels of fused_step.cu.
var fusedKernelNames = []string{"fs_qkv_bf16", "fs_resid_bf16", "fs_gateup_bf16", "fs_head_bf16",
	"fs_qkv_q4", "fs_resid_q4", "fs_gateup_q4", "fs_head_q4",
	"fs_qkv_q4x8", "fs_resid_q4x8", "fs_gateup_q4x8", "fs_head_q4x8", "fs_attention_wide", "fs_publish"}

// upload copies every weight to the device, stacking q/k/v and gate/up so
// that each pair or triple is one matrix product.
func (m *GPUModel) upload(ck *checkpoint.Checkpoint) error {
	c := m.cfg
	e, inter := c.HiddenSize, c.IntermediateSize
	kv := c.NumKeyValueHeads * c.HeadDim()
	var err error
	if m.embed, err = devtensor.UploadStacked(m.dev, ck, []string{"model.embed_tokens.weight"}, []int{c.VocabSize}, e); err != nil {
		return err
	}
	m.head = m.embed
	if !c.TieWordEmbeddings {
		if m.head, err = devtensor.UploadStacked(m.dev, ck, []string{"lm_head.weight"}, []int{c.VocabSize}, e); err != nil {
			return err
		}
	}
	if m.finalNorm, err = devtensor.UploadVectors(m.dev, ck, []string{"model.norm.weight"}, []int{e}); err != nil {
		return err
	}
	table, err := day5.NewRoPETable(c.HeadDim(), m.opts.MaxContext, c.RopeTheta)
	if err != nil {
		return err
	}
	if m.rope, err = day5.UploadRoPE(m.dev, table); err != nil {
		return err
	}
	for i := range c.NumHiddenLayers {
		p := fmt.Sprintf("model.layers.%d.", i)
		l := &layer{}
		m.layers = append(m.layers, l)
		if l.ln1, err = devtensor.UploadVectors(m.dev, ck, []string{p + "input_layernorm.weight"}, []int{e}); err != nil {
			return err
		}
		if l.ln2, err = devtensor.UploadVectors(m.dev, ck, []string{p + "post_attention_layernorm.weight"}, []int{e}); err != nil {
			return err
		}
		attn := p + "self_attn."
		if l.qkv, err = devtensor.UploadStacked(m.dev, ck, []string{attn + "q_proj.weight", attn + "k_proj.weight", attn + "v_proj.weight"}, []int{e, kv, kv}, e); err != nil {
			return err
		}
		if l.qkvBias, err = devtensor.UploadVectors(m.dev, ck, []string{attn + "q_proj.bias", attn + "k_proj.bias", attn + "v_proj.bias"}, []int{e, kv, kv}); err != nil {
			return err
		}
		if l.o, err = devtensor.UploadStacked(m.dev, ck, []string{attn + "o_proj.weight"}, []int{e}, e); err != nil {
			return err
		}
		mlp := p + "mlp."
		if l.gateUp, err = devtensor.UploadStacked(m.dev, ck, []string{mlp + "gate_proj.weight", mlp + "up_proj.weight"}, []int{inter, inter}, e); err != nil {
			return err
		}
		if l.down, err = devtensor.UploadStacked(m.dev, ck, []string{mlp + "down_proj.weight"}, []int{e}, inter); err != nil {
			return err
		}
		if l.cache, err = devtensor.NewKVCache(m.dev, c.NumKeyValueHeads, m.opts.MaxContext, c.HeadDim()); err != nil {
			return err
		}
	}
	return nil
}

// allocate makes the activation buffers, the token and position words and
// the attention scratch.
func (m *GPUModel) allocate() error {
	c := m.cfg
	r, e, inter := m.opts.PrefillRows, c.HiddenSize, c.IntermediateSize
	kv := c.NumKeyValueHeads * c.HeadDim()
	var err error
	for _, a := range []struct {
		dst        **devtensor.Activations
		rows, cols int
	}{
		{&m.h, r, e}, {&m.xn, r, e}, {&m.qkv, r, e + 2*kv}, {&m.q, r, e}, {&m.attn, r, e}, {&m.o, r, e},
		{&m.gu, r, 2 * inter}, {&m.act, r, inter}, {&m.mlp, r, e}, {&m.last, 1, e}, {&m.logits, 1, c.VocabSize},
	} {
		if *a.dst, err = devtensor.NewActivations(m.dev, a.rows, a.cols); err != nil {
			return err
		}
	}
	if m.tokens, err = kernels.Upload(m.dev, make([]int32, r)); err != nil {
		return err
	}
	if m.pos, err = kernels.Upload(m.dev, []int32{0}); err != nil {
		return err
	}
	m.splits = graphSplits(c.NumAttentionHeads, m.dev.Info().Multiprocessors)
	if m.partO, err = m.dev.Alloc(4 * c.NumAttentionHeads * m.splits * c.HeadDim()); err != nil {
		return err
	}
	if m.partML, err = m.dev.Alloc(8 * c.NumAttentionHeads * m.splits); err != nil {
		return err
	}
	if m.fmod == nil {
		return nil
	}
	if m.attCount, err = kernels.Upload(m.dev, make([]int32, c.NumAttentionHeads)); err != nil {
		return err
	}
	if m.headCount, err = kernels.Upload(m.dev, []int32{0}); err != nil {
		return err
	}
	// A partial result per block of the head, for any grid fusedSplit
	// gives (the benchmark's caps included).
	if m.headPart, err = m.dev.Alloc(8 * fusedBlocksPerSM * max(1, m.dev.Info().Multiprocessors)); err != nil {
		return err
	}
	att := c.NumAttentionHeads * c.HeadDim()
	for _, b := range []struct {
		dst   **kernels.Buffer
		bytes int
	}{{&m.pubH, int8xBytes(e)}, {&m.pubHSS, 4 * (e / 32)}, {&m.pubAttn, int8xBytes(att)}, {&m.pubAct, int8xBytes(inter)}} {
		if *b.dst, err = m.dev.Alloc(b.bytes); err != nil {
			return err
		}
	}
	return nil
}

// Close frees everything the model holds on the device. (Provided.)
func (m *GPUModel) Close() error {
	var errs []error
	keep := func(err error) { errs = append(errs, err) }
	if m.graph != nil {
		keep(m.graph.Free())
	}
	for _, b := range []*kernels.Buffer{m.tokens, m.pos, m.partO, m.partML, m.attCount, m.headCount, m.headPart, m.hist,
		m.pubH, m.pubHSS, m.pubAttn, m.pubAct} {
		if b != nil {
			keep(b.Free())
		}
	}
	for _, a := range []*devtensor.Activations{m.h, m.xn, m.qkv, m.q, m.attn, m.o, m.gu, m.act, m.mlp, m.last, m.logits} {
		if a != nil {
			keep(a.Free())
		}
	}
	for _, l := range m.layers {
		for _, w := range []*devtensor.Weight{l.qkv, l.o, l.gateUp, l.down} {
			if w != nil {
				keep(w.Free())
			}
		}
		for _, v := range []*devtensor.Vector{l.ln1, l.ln2, l.qkvBias} {
			if v != nil {
				keep(v.Free())
			}
		}
		if l.cache != nil {
			keep(l.cache.Free())
		}
	}
	if m.head != nil && m.head != m.embed {
		keep(m.head.Free())
	}
	if m.embed != nil {
		keep(m.embed.Free())
	}
	if m.finalNorm != nil {
		keep(m.finalNorm.Free())
	}
	if m.rope != nil {
		keep(m.rope.Free())
	}
	if m.att != nil {
		keep(m.att.Close())
	}
	if m.fused != nil {
		keep(m.fused.Close())
	}
	if m.mm != nil {
		keep(m.mm.Close())
	}
	if m.mod != nil {
		keep(m.mod.Close())
	}
	if m.sampler != nil {
		keep(m.sampler.Close())
	}
	if m.fmod != nil {
		keep(m.fmod.Close())
	}
	*m = GPUModel{}
	return errors.Join(errs...)
}

// Config is the model's configuration. (Provided.)
func (m *GPUModel) Config() checkpoint.Config { return m.cfg }

// MaxContext is the number of positions the cache holds. (Provided.)
func (m *GPUModel) MaxContext() int { return m.opts.MaxContext }

// Len is the number of positions cached: the position of the next token.
// (Provided.)
func (m *GPUModel) Len() int { return m.n }

// Reset empties the cache for a new sequence; the weights, buffers and the
// captured step stay. (Provided.)
func (m *GPUModel) Reset() {
	m.n, m.next = 0, -1
	for _, l := range m.layers {
		l.cache.Len = 0
	}
}

// Launches is the number of kernel launches of the last forward pass (a
// captured step counts what it replays). (Provided.)
func (m *GPUModel) Launches() int { return m.launches }

// Graphed reports whether decode steps replay a captured graph, and if
// Options.Graph asked for one but capturing failed, why not. (Provided.)
func (m *GPUModel) Graphed() (bool, error) { return m.graph != nil, m.graphErr }

// Logits copies the logits of the last position of the last Prefill or
// Decode back from the device, 1 x 1 x vocab (the shape of Week 2's
// ForwardLast). (Provided.)
func (m *GPUModel) Logits() (*tensor.Tensor, error) {
	if m.n == 0 {
		return nil, errors.New("day7: Logits before any Prefill or Decode")
	}
	data, err := kernels.Download[float32](m.logits.Buf, m.cfg.VocabSize)
	if err != nil {
		return nil, err
	}
	return tensor.New(data, 1, 1, m.cfg.VocabSize), nil
}

// checkTokens refuses ids outside the vocabulary and a cache that would
// overflow, before anything is uploaded.
func (m *GPUModel) checkTokens(ids []int) error {
	if len(ids) == 0 {
		return errors.New("day7: no tokens")
	}
	for i, id := range ids {
		if id < 0 || id >= m.cfg.VocabSize {
			return fmt.Errorf("day7: token %d is id %d, outside the vocabulary of %d", i, id, m.cfg.VocabSize)
		}
	}
	if m.n+len(ids) > m.opts.MaxContext {
		return fmt.Errorf("day7: %d positions cached + %d new exceed the context of %d (Options.MaxContext)", m.n, len(ids), m.opts.MaxContext)
	}
	return nil
}

// Prefill feeds a prompt (at least one token) behind what the cache holds,
// in pieces of at most PrefillRows tokens, computes the last position's
// logits and chooses the next token on the device (choose: the argmax, or
// a draw after SetSampling), and returns it. Only that token id is copied
// back.
func (m *GPUModel) Prefill(ids []int) (int, error) {
	if err := m.checkTokens(ids); err != nil {
		return 0, err
	}
	m.next = -1 // tokens[0] is about to hold the prompt
	for start := 0; start < len(ids); start += m.opts.PrefillRows {
		piece := ids[start:min(start+m.opts.PrefillRows, len(ids))]
		tok := make([]int32, len(piece))
		for i, id := range piece {
			tok[i] = int32(id)
		}
		if err := kernels.Write(m.tokens, 0, tok); err != nil {
			return 0, err
		}
		if err := kernels.Write(m.pos, 0, []int32{int32(m.n)}); err != nil {
			return 0, err
		}
		last := start+len(piece) == len(ids)
		if err := m.forward(len(piece), stepEager, last); err != nil {
			return 0, err
		}
		m.n += len(piece)
	}
	return m.readNext()
}

// Decode feeds one token at the next position and returns the next token,
// chosen on the device (choose). When token is the one the device chose
// last, nothing is uploaded: the step reads it where the argmax or the
// sampler wrote it. With Options.Graph the step is captured (in the
// reference, on the second call, after one step launched kernel by kernel)
// and replayed after; if capturing fails, the step runs launch by launch
// and Graphed says why.
func (m *GPUModel) Decode(token int) (int, error) {
	if err := m.checkTokens([]int{token}); err != nil {
		return 0, err
	}
	if err := m.feed(token); err != nil {
		return 0, err
	}
	if err := m.queueStep(); err != nil {
		return 0, err
	}
	return m.readNext()
}

// feed puts token in tokens[0] on the device, unless it is there already
// (the device's own last choice).
func (m *GPUModel) feed(token int) error {
	if token == m.next {
		return nil
	}
	return kernels.Write(m.tokens, 0, []int32{int32(token)})
}

// queueStep queues one decode step of the token in tokens[0], captured or
// kernel by kernel, and returns without waiting for it.
func (m *GPUModel) queueStep() error {
	if m.opts.Graph && m.graph == nil && m.graphErr == nil && m.eagerSteps > 0 {
		// Capturing records the launches; nothing runs until the replay.
		// Not on the first step: Day 4's matrix-vector products grow
		// scratch buffers on first use, and the graph keeps the addresses
		// they have when it is captured.
		m.graph, m.graphErr = m.dev.Capture(func() error { return m.forward(1, stepGraph, true) })
		m.graphLaunches = m.launches
	}
	if m.graph != nil {
		if err := m.graph.Launch(); err != nil {
			return err
		}
		m.launches = m.graphLaunches
	} else {
		if err := m.forward(1, stepEager, true); err != nil {
			return err
		}
		m.eagerSteps++
	}
	m.n++
	return nil
}

// DecodeAhead feeds token at the next position and runs n decode steps,
// each fed the choice of the one before, and returns the n choices, as n
// calls of Decode would. Decode copies every choice back before the next
// step is queued, so the device waits for the host between steps (the
// copy, the host's turn, the next launch). The reference queues the n
// steps back to back instead, each followed by record_token (which copies
// its choice into a history on the device), reads the n choices once, and
// until the step is captured runs Decode one step at a time; the course's
// copy of this method simply calls Decode n times. (Provided.)
func (m *GPUModel) DecodeAhead(token, n int) ([]int, error) {
	if n < 1 {
		return nil, fmt.Errorf("day7: DecodeAhead needs at least one step, got %d", n)
	}
	if err := m.checkTokens([]int{token}); err != nil {
		return nil, err
	}
	if m.n+n > m.opts.MaxContext {
		return nil, fmt.Errorf("day7: %d positions cached + %d steps exceed the context of %d (Options.MaxContext)", m.n, n, m.opts.MaxContext)
	}
	out := make([]int, 0, n)
	for len(out) < n && m.opts.Graph && m.graph == nil && m.graphErr == nil {
		next, err := m.Decode(token)
		if err != nil {
			return out, err
		}
		out = append(out, next)
		token = next
	}
	rest := n - len(out)
	if rest == 0 {
		return out, nil
	}
	if m.hist == nil || m.hist.Size() < 4*rest {
		if m.hist != nil {
			m.hist.Free()
			m.hist = nil
		}
		var err error
		if m.hist, err = m.dev.Alloc(4 * max(rest, 64)); err != nil {
			return out, err
		}
	}
	if err := m.feed(token); err != nil {
		return out, err
	}
	m.next = -1 // tokens[0] changes with every step queued
	one := kernels.LaunchConfig{Grid: kernels.D1(1), Block: kernels.D1(32)}
	for i := range rest {
		if err := m.queueStep(); err != nil {
			return out, err
		}
		if err := m.dev.Launch(m.k["record_token"], one, m.hist, m.tokens, int32(i)); err != nil {
			return out, err
		}
	}
	got := make([]int32, rest)
	if err := kernels.Read(got, m.hist, 0); err != nil {
		return out, err
	}
	for _, t := range got {
		out = append(out, int(t))
	}
	m.next = out[len(out)-1]
	return out, nil
}

// linear is y = x·Wᵀ with Day 4's dispatcher, or on rung 3 (float32 x)
// with Options.FloatActivations.
func (m *GPUModel) linear(y, x *devtensor.Activations, w *devtensor.Weight) error {
	if m.opts.FloatActivations && w.K%8 == 0 {
		return m.mm.V3(y, x, w)
	}
	return m.mm.Linear(y, x, w)
}

// readNext copies the greedy choice (one int32) back.
func (m *GPUModel) readNext() (int, error) {
	var next [1]int32
	if err := kernels.Read(next[:], m.tokens, 0); err != nil {
		return 0, err
	}
	m.next = int(next[0])
	return m.next, nil
}

// stepMode says how a forward pass runs its attention.
type stepMode int

const (
	stepEager stepMode = iota // Day 6's kernels, lengths passed from the host
	stepGraph                 // the day's kernels that read the length from the device
)

// forward queues one pass over rows tokens: tokens[0:rows] at positions
// pos[0] … pos[0]+rows-1 (the host's m.n), appending them to the caches.
// With head it also computes the last row's logits and the greedy choice
// (choose, which moves pos[0] on by rows). Nothing here waits for
// the device, and with stepGraph nothing but launches happens, so that it
// can be captured.
func (m *GPUModel) forward(rows int, mode stepMode, head bool) error {
	if mode == stepGraph && head && rows == 1 && !m.noFuse && m.fusable() {
		return m.forwardFused()
	}
	c := m.cfg
	e, inter, d := c.HiddenSize, c.IntermediateSize, c.HeadDim()
	hq, h := c.NumAttentionHeads, c.NumKeyValueHeads
	eps := float32(c.RMSNormEps)
	before := m.dev.LaunchCount()
	defer func() { m.launches = int(m.dev.LaunchCount() - before) }()
	launch := func(name string, cfg kernels.LaunchConfig, args ...any) error {
		return m.dev.Launch(m.k[name], cfg, args...)
	}
	for _, a := range []*devtensor.Activations{m.h, m.xn, m.qkv, m.q, m.attn, m.o, m.gu, m.act, m.mlp} {
		if err := a.SetRows(rows); err != nil {
			return err
		}
	}
	const block = 256
	grid := kernels.Dim3{X: kernels.Blocks(e, block), Y: rows, Z: 1}
	var err error
	if m.embed.Quantized() {
		err = launch("embed_q4", kernels.LaunchConfig{Grid: grid, Block: kernels.D1(block)},
			m.h.Buf, m.embed.W, m.embed.Scales, m.embed.Biases, m.tokens, int32(rows), int32(e), int32(m.embed.GroupSize))
	} else {
		err = launch("embed_bf16", kernels.LaunchConfig{Grid: grid, Block: kernels.D1(block)},
			m.h.Buf, m.embed.W, m.tokens, int32(rows), int32(e))
	}
	if err != nil {
		return err
	}
	pairs := rows * (hq + 2*h) * d / 2
	for i, l := range m.layers {
		// The residual stream h takes the previous layer's MLP output
		// here, fused with this layer's first norm.
		if i == 0 {
			err = m.fused.RMSNorm(m.xn, m.h, l.ln1, eps)
		} else {
			err = m.fused.AddRMSNorm(m.xn, m.h, m.mlp, l.ln1, eps)
		}
		if err != nil {
			return err
		}
		if err := m.linear(m.qkv, m.xn, l.qkv); err != nil {
			return err
		}
		if err := launch("qkv_post", kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(pairs, block)), Block: kernels.D1(block)},
			m.q.Buf, l.cache.K, l.cache.V, m.qkv.Buf, l.qkvBias.Buf, m.rope.Cos, m.rope.Sin, m.pos,
			int32(rows), int32(hq), int32(h), int32(d), int32(l.cache.Capacity), int32(m.rope.MaxPos)); err != nil {
			return err
		}
		l.cache.Len = m.n + rows
		switch {
		case mode == stepGraph:
			if err := launch("attention_graph_split", kernels.LaunchConfig{Grid: kernels.Dim3{X: m.splits, Y: hq, Z: 1}, Block: kernels.D1(128)},
				m.partO, m.partML, m.q.Buf, l.cache.K, l.cache.V, m.pos, int32(l.cache.Capacity), int32(hq/h), float32(1/math.Sqrt(float64(d)))); err != nil {
				return err
			}
			if err := launch("attention_graph_reduce", kernels.LaunchConfig{Grid: kernels.D1(hq), Block: kernels.D1(128)},
				m.attn.Buf, m.partO, m.partML, int32(m.splits)); err != nil {
				return err
			}
		case rows == 1:
			if err := m.att.Decode(m.attn, m.q, l.cache, 0, nil, true); err != nil {
				return err
			}
		default:
			if err := m.att.Prefill(m.attn, m.q, l.cache, 0, nil, true); err != nil {
				return err
			}
		}
		if err := m.linear(m.o, m.attn, l.o); err != nil {
			return err
		}
		if err := m.fused.AddRMSNorm(m.xn, m.h, m.o, l.ln2, eps); err != nil {
			return err
		}
		if err := m.linear(m.gu, m.xn, l.gateUp); err != nil {
			return err
		}
		if err := launch("swiglu_pair", kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(rows*inter, block)), Block: kernels.D1(block)},
			m.act.Buf, m.gu.Buf, int32(rows), int32(inter)); err != nil {
			return err
		}
		if err := m.linear(m.mlp, m.act, l.down); err != nil {
			return err
		}
	}
	if !head {
		return nil
	}
	// The last layer's MLP output joins the residual stream with the
	// final norm; only the last row goes on to the head.
	if err := m.fused.AddRMSNorm(m.xn, m.h, m.mlp, m.finalNorm, eps); err != nil {
		return err
	}
	x := m.xn
	if rows > 1 {
		if err := kernels.Copy(m.last.Buf, 0, m.xn.Buf, 4*(rows-1)*e, 4*e); err != nil {
			return err
		}
		x = m.last
	}
	if err := m.linear(m.logits, x, m.head); err != nil {
		return err
	}
	return m.choose(rows)
}

// fusable reports whether the fused decode step applies: CUDA, and shapes
// its kernels take (4-bit rows a whole number of 64-weight pieces, bf16
// rows of 16-byte slices, pairs of rotated and of gate/up rows; on x in
// int8 parts, heads of whole slices of 32, which the attention publishes a
// head at a time).
func (m *GPUModel) fusable() bool {
	c := m.cfg
	if m.fmod == nil || c.HeadDim()%4 != 0 || c.IntermediateSize%2 != 0 {
		return false
	}
	if len(m.layers) > 0 && m.int8x(m.layers[0].o) && c.HeadDim()%32 != 0 {
		return false
	}
	for _, k := range []int{c.HiddenSize, c.IntermediateSize, c.NumAttentionHeads * c.HeadDim()} {
		if k%64 != 0 || stagedBytes(k) > 200<<10 {
			return false
		}
	}
	return true
}

// stagedBytes is the shared memory a fused kernel stages k columns of x
// in (Day 4's layout: k floats and, for 4-bit, a sum per 32).
func stagedBytes(k int) int { return 4*k + 4*(k/32) }

// int8xBytes is k columns of x in up to three int8 parts (Day 4's
// MQ_LEVELS, fusedLevels here; the benchmark builds three): a byte a
// column a part and a scale and a sum per slice of 32.
func int8xBytes(k int) int { return 3*k + 8*(k/32) }

// int8x says whether the fused kernel for w takes x in int8 parts (4-bit
// W, float activations not asked for): those read x published once.
func (m *GPUModel) int8x(w *devtensor.Weight) bool {
	return w.Quantized() && !m.opts.FloatActivations && !m.floatQ4
}

// fusedIO is where a fused matrix kernel reads x published (in, with its
// slices' sums of squares inSS where a norm is folded in) and, for
// fs_resid and fs_gateup, where it publishes what it writes (out, outSS,
// times the norm outNorm): fused_step.cu's FS_XIN and FS_PUBA. A nil
// buffer is a null pointer; bf16 and float-x kernels ignore them.
type fusedIO struct {
	in, inSS, out, outSS, outNorm *kernels.Buffer
}

// orNull is b as a kernel argument, a null pointer for nil.
func orNull(b *kernels.Buffer) any {
	if b == nil {
		return uint64(0)
	}
	return b
}

// fusedSplit picks, for units sets of 4 rows of w, how many warps of a
// block share a set (1, 2, 4 or 8: the fewest that give two blocks of 256
// threads a multiprocessor, one for 4-bit W, as long as every lane has a
// 16-byte slice of a row), the grid (a block for every warps/wk sets, at
// most fusedBlocksPerSM blocks of 256 threads a multiprocessor,
// q4BlocksPerSM for 4-bit W: each block stages x once, then takes sets in
// turn) and the threads a block.
func (m *GPUModel) fusedSplit(units int, w *devtensor.Weight) (wk, grid, threads int) {
	ns := w.K / 8
	threads = 256
	if w.Quantized() {
		ns = w.K / 32
		if m.q4Threads > 0 {
			threads = m.q4Threads
		}
	}
	warps := threads / 32
	sms := max(1, m.dev.Info().Multiprocessors)
	target, capB := 2, fusedBlocksPerSM
	if w.Quantized() {
		// As many blocks as fit at once, rows split only where a block
		// each multiprocessor would idle (BenchmarkW2D7DecodeStep).
		target, capB = 1, q4BlocksPerSM
	}
	if m.fuseTarget > 0 {
		target = m.fuseTarget
	}
	if m.fuseCap > 0 {
		capB = m.fuseCap
	}
	// target and capB count blocks of 256 threads
	target, capB = max(1, target*256/threads), max(1, capB*256/threads)
	items := func(wk int) int { return kernels.Blocks(units, warps/wk) } // a block's sets at a time
	wk = 1
	for wk < 8 && items(wk) < target*sms && 32*2*wk <= ns {
		wk *= 2
	}
	return wk, min(items(wk), capB*sms), threads
}

// fusedBlocksPerSM caps the grids of the fused kernels (the 0.5B head has
// 4,748 sets of rows); q4BlocksPerSM those of the 4-bit ones: the blocks
// that fit on the GPU at once (their registers allow 2 a multiprocessor).
const (
	fusedBlocksPerSM = 8
	q4BlocksPerSM    = 2
)

// fusedPrefetch is how many 16-byte slices of each of its first rows of W
// a lane of a fused kernel asks for before it waits for the kernel ahead
// (fused_step.cu's fs_prefetch_then_wait): the two that Day 4's core loads
// first (MV_U). The benchmark's fused_pf* time other depths.
const fusedPrefetch = 2

// fusedLaunch launches fused kernel base (bf16 or 4-bit by w) over units
// sets of rows of w with x of k columns staged: args first, then w's
// words, scales, biases, group and the split, then io's buffers.
func (m *GPUModel) fusedLaunch(base string, w *devtensor.Weight, io fusedIO, units, k int, args ...any) error {
	if m.fuseOnly != "" && m.fuseOnly != base {
		return nil
	}
	wk, grid, threads := m.fusedSplit(units, w)
	publish := io.out != nil
	if publish && !m.int8x(w) {
		// Loaded checkpoints quantize every linear layer alike, so this
		// does not happen; were it to, the kernel would refuse (__trap).
		return fmt.Errorf("day7: %s on %d-bit weights cannot publish x for a 4-bit kernel", base, w.Bits)
	}
	if publish {
		wk, grid, threads = m.publishSplit(base, units)
	}
	name := base + "_bf16"
	pf := fusedPrefetch
	if m.prefetch != 0 {
		pf = max(0, m.prefetch)
	}
	wargs := []any{w.W, w.W, w.W, int32(0), int32(wk), int32(pf)}
	smem := stagedBytes(k)
	if w.Quantized() {
		// x in fusedLevels int8 parts, as Day 4's int8 variant takes it,
		// published by the kernel that wrote it, unless the products'
		// inputs must stay float32. The shared memory holds x only in the
		// FS_PUB 0 build (and fs_head's copy of the codes); a publishing
		// kernel keeps its outputs there, 32 floats a set.
		name, smem = base+"_q4x8", int8xBytes(k)
		if publish {
			smem = max(smem, 4*32*kernels.Blocks(kernels.Blocks(units, threads/32/wk), grid))
		}
		if !m.int8x(w) {
			name, smem = base+"_q4", stagedBytes(k)
		}
		wargs = []any{w.W, w.Scales, w.Biases, int32(w.GroupSize), int32(wk), int32(pf)}
	}
	wargs = append(wargs, orNull(io.in), orNull(io.inSS))
	if base == "fs_resid" || base == "fs_gateup" {
		wargs = append(wargs, orNull(io.out), orNull(io.outSS), orNull(io.outNorm))
	}
	cfg := kernels.LaunchConfig{Grid: kernels.D1(grid), Block: kernels.D1(threads), SharedMem: smem, Overlap: true}
	return m.dev.Launch(m.fk[name], cfg, append(args, wargs...)...)
}

// publishH is where fs_resid publishes h for the kernel that reads it
// next, the matrix of w with the norm ln folded in: nothing when that
// kernel stages x itself.
func (m *GPUModel) publishH(w *devtensor.Weight, ln *kernels.Buffer) fusedIO {
	if !m.int8x(w) {
		return fusedIO{}
	}
	return fusedIO{out: m.pubH, outSS: m.pubHSS, outNorm: ln}
}

// publishSplit is the split of a publishing fs_resid or fs_gateup (units
// of 4 rows of W): blocks of 16 warps, one a multiprocessor (the
// registers allow no more), and sets of 32 outputs, whole slices of the x
// they publish: 8 units of 4 rows split over 2 warps each (fs_resid; K is
// 3,584 or 18,944 columns on a 7B), or 16 gate/up units of 2 outputs, a
// warp each.
func (m *GPUModel) publishSplit(base string, units int) (wk, grid, threads int) {
	wk = 1
	if base == "fs_resid" {
		wk = 2
	}
	threads = 512
	sms := max(1, m.dev.Info().Multiprocessors)
	return wk, min(kernels.Blocks(units, threads/32/wk), sms), threads
}

// forwardFused queues the decode step of one row as the reference
// captures it: the embedding, then per layer fs_qkv (norm, q/k/v, bias,
// RoPE, cache), fs_attention_wide, fs_resid (o_proj into h), fs_gateup (norm,
// gate/up, SwiGLU) and fs_resid (down_proj into h), and fs_head (final
// norm, logits, greedy choice, pos[0] + 1): 2 + 5 a layer launches, where
// forward takes 4 + 10 a layer. Every kernel reads the position from pos.
func (m *GPUModel) forwardFused() error {
	c := m.cfg
	e, inter, d := c.HiddenSize, c.IntermediateSize, c.HeadDim()
	hq, h := c.NumAttentionHeads, c.NumKeyValueHeads
	eps := float32(c.RMSNormEps)
	before := m.dev.LaunchCount()
	defer func() { m.launches = int(m.dev.LaunchCount() - before) }()
	for _, a := range []*devtensor.Activations{m.h, m.q, m.attn, m.act} {
		if err := a.SetRows(1); err != nil {
			return err
		}
	}
	grid := kernels.Dim3{X: kernels.Blocks(e, 256), Y: 1, Z: 1}
	var err error
	switch {
	case m.fuseOnly != "" && m.fuseOnly != "embed":
	case m.embed.Quantized():
		err = m.dev.Launch(m.k["embed_q4"], kernels.LaunchConfig{Grid: grid, Block: kernels.D1(256)},
			m.h.Buf, m.embed.W, m.embed.Scales, m.embed.Biases, m.tokens, int32(1), int32(e), int32(m.embed.GroupSize))
	default:
		err = m.dev.Launch(m.k["embed_bf16"], kernels.LaunchConfig{Grid: grid, Block: kernels.D1(256)},
			m.h.Buf, m.embed.W, m.tokens, int32(1), int32(e))
	}
	if err != nil {
		return err
	}
	// The 4-bit kernels read x rounded once where it is written; the
	// embedding is rounded by a launch of its own.
	if l0 := m.layers[0]; m.int8x(l0.qkv) && (m.fuseOnly == "" || m.fuseOnly == "embed") {
		if err := m.dev.Launch(m.fk["fs_publish"], kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(e/32, 8)), Block: kernels.D1(256), Overlap: true},
			m.pubH, m.pubHSS, m.h.Buf, l0.ln1.Buf, int32(e)); err != nil {
			return err
		}
	}
	readH := fusedIO{in: m.pubH, inSS: m.pubHSS}
	scale := float32(1 / math.Sqrt(float64(d)))
	for i, l := range m.layers {
		if err := m.fusedLaunch("fs_qkv", l.qkv, readH, (hq+2*h)*d/4, e,
			m.q.Buf, l.cache.K, l.cache.V, m.h.Buf, l.ln1.Buf, l.qkvBias.Buf, m.rope.Cos, m.rope.Sin, m.pos,
			int32(e), int32(hq), int32(h), int32(d), int32(l.cache.Capacity), int32(m.rope.MaxPos), eps); err != nil {
			return err
		}
		l.cache.Len = m.n + 1
		if m.fuseOnly == "" || m.fuseOnly == "fs_attention" {
			var pub *kernels.Buffer
			if m.int8x(l.o) {
				pub = m.pubAttn
			}
			if err := m.dev.Launch(m.fk["fs_attention_wide"], kernels.LaunchConfig{Grid: kernels.Dim3{X: m.splits, Y: hq, Z: 1}, Block: kernels.D1(1024), Overlap: true},
				m.attn.Buf, m.partO, m.partML, m.attCount, m.q.Buf, l.cache.K, l.cache.V, m.pos, int32(l.cache.Capacity), int32(hq/h), scale, orNull(pub)); err != nil {
				return err
			}
		}
		io := m.publishH(l.gateUp, l.ln2.Buf)
		io.in = m.pubAttn
		if err := m.fusedLaunch("fs_resid", l.o, io, kernels.Blocks(l.o.N, 4), l.o.K, m.h.Buf, m.attn.Buf, int32(l.o.N), int32(l.o.K)); err != nil {
			return err
		}
		io = readH
		if m.int8x(l.down) {
			io.out = m.pubAct
		}
		if err := m.fusedLaunch("fs_gateup", l.gateUp, io, inter/2, e, m.act.Buf, m.h.Buf, l.ln2.Buf, int32(inter), int32(e), eps); err != nil {
			return err
		}
		io = m.publishH(m.head, m.finalNorm.Buf)
		if i+1 < len(m.layers) {
			io = m.publishH(m.layers[i+1].qkv, m.layers[i+1].ln1.Buf)
		}
		io.in = m.pubAct
		if err := m.fusedLaunch("fs_resid", l.down, io, kernels.Blocks(l.down.N, 4), l.down.K, m.h.Buf, m.act.Buf, int32(l.down.N), int32(l.down.K)); err != nil {
			return err
		}
	}
	if err := m.fusedLaunch("fs_head", m.head, readH, kernels.Blocks(c.VocabSize, 4), e,
		m.logits.Buf, m.headPart, m.headCount, m.tokens, m.pos, m.h.Buf, m.finalNorm.Buf, int32(c.VocabSize), int32(e), eps); err != nil {
		return err
	}
	if m.sampling {
		// fs_head took the argmax and moved the position on; the draw
		// replaces the token and leaves the position.
		return m.sampler.Launch(m.tokens, nil, 0, m.logits.Buf, 1, c.VocabSize)
	}
	return nil
}
