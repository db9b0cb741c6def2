package day7

// The Week 2 model on the GPU: weights resident on the device, activations
// in buffers allocated once, the KV cache in device memory, the greedy
// choice made on the device, and the decode step captured once as a graph.

import (
	_ "embed"
	"errors"
	"fmt"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devsample"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/week2/day4"
	"github.com/tinyllm-go/tinyllm/week2/day5"
	"github.com/tinyllm-go/tinyllm/week2/day6"
)

//go:embed step.cu
var stepCUDA string

//go:embed step.metal
var stepMetal string

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
	partO, partML                                      *kernels.Buffer // the captured attention's partial results
	splits                                             int

	graph    *kernels.Graph
	graphErr error // why the step is not captured, when Graph was asked for

	sampler  *devsample.Sampler // Week 1's sampler on the device, made by the first SetSampling
	sampling bool               // choose draws with sampler instead of taking the argmax

	n        int // positions cached (the device's pos[0] between passes)
	next     int // the token id in tokens[0] on the device (the last greedy choice), or -1
	launches int // kernel launches of the last forward pass
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
	return nil
}

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
	m.partML, err = m.dev.Alloc(8 * c.NumAttentionHeads * m.splits)
	return err
}

// Close frees everything the model holds on the device. (Provided.)
func (m *GPUModel) Close() error {
	var errs []error
	keep := func(err error) { errs = append(errs, err) }
	if m.graph != nil {
		keep(m.graph.Free())
	}
	for _, b := range []*kernels.Buffer{m.tokens, m.pos, m.partO, m.partML} {
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
	// Your code here (W2D7).
	panic("TODO(W2D7): implement GPUModel.Prefill")
}

// Decode feeds one token at the next position and returns the next token,
// chosen on the device (choose). When token is the one the device chose
// last, nothing is uploaded: the step reads it where the argmax or the
// sampler wrote it. With Options.Graph the step is captured (in the
// reference, on the second call, after one step launched kernel by kernel)
// and replayed after; if capturing fails, the step runs launch by launch
// and Graphed says why.
func (m *GPUModel) Decode(token int) (int, error) {
	// Your code here (W2D7).
	panic("TODO(W2D7): implement GPUModel.Decode")
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
	out := make([]int, 0, n)
	for range n {
		next, err := m.Decode(token)
		if err != nil {
			return out, err
		}
		out = append(out, next)
		token = next
	}
	return out, nil
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
