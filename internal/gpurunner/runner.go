// Package gpurunner is the Week 3 engine's model runner on a GPU: the same
// job as Week 3 Day 4's Runner (compute a scheduled batch of prefill chunks
// and decodes, keep every sequence's keys and values in the pages of the
// pool, return the next tokens), with the weights, the pages and the
// activations in device memory. It is assembled from the reference
// kernels: Week 2 Day 4's matrix products, Day 5's fused norms, Day 7's
// embedding and SwiGLU, Week 3 Day 4's batch checks and block tables, and
// kernels of its own (runner.cu, and runner.metal with a scalar attention
// kernel): the q/k/v epilogue that writes keys and
// values into each row's page slot, paged attention over pages of bf16
// (half the bytes of Day 4's float32 pages, and a kernel that reads them at
// a higher rate), a row gather, and a greedy choice per row.
//
// A step copies its metadata in (token ids, positions, page slots, block
// tables) and one int32 per sampled sequence out. A sequence with a
// sampler of its own draws on the device too when the sampler tells its
// settings (devsample.Settings: Week 1's filters and random stream); only
// one whose sampler does not copies its logits row back.
package gpurunner

import (
	_ "embed"
	"errors"
	"fmt"
	"math"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devsample"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/solutions/week2/day4"
	"github.com/tinyllm-go/tinyllm/solutions/week2/day5"
	"github.com/tinyllm-go/tinyllm/solutions/week2/day7"
	w3day3 "github.com/tinyllm-go/tinyllm/solutions/week3/day3"
	w3day4 "github.com/tinyllm-go/tinyllm/solutions/week3/day4"
)

//go:embed runner.cu
var runnerCUDA string

//go:embed runner.metal
var runnerMetal string

// source is the runner's own kernels for a backend (kernels.CUDA or
// kernels.Metal), or "".
func source(backend string) string {
	switch backend {
	case kernels.CUDA:
		return runnerCUDA
	case kernels.Metal:
		return runnerMetal
	}
	return ""
}

// Options size a Model: the most a step may hold, and the page pool.
type Options struct {
	// MaxTokens is the most tokens one step computes: the engine's
	// MaxNumBatchedTokens. The activation buffers are sized for it once.
	MaxTokens int
	// MaxSeqs is the most sequences one step computes: the engine's
	// MaxNumSeqs.
	MaxSeqs int
	// NumPages and PageSize shape the pool of KV cache pages that Load
	// allocates on the device (bf16 keys and values of every layer).
	NumPages, PageSize int
}

// layer is one decoder layer's weights and pages on the device.
type layer struct {
	ln1, ln2  *devtensor.Vector
	qkv       *devtensor.Weight // q, k, v rows stacked: (Hq+2H)·D x E
	qkvBias   *devtensor.Vector
	o, gateUp *devtensor.Weight // gateUp: gate rows, then up rows, 2I x E
	down      *devtensor.Weight
	k, v      *kernels.Buffer // NumPages·PageSize x H x D bf16 each
}

// Model is a checkpoint resident on one device with a page pool's storage
// and the buffers of the largest step. Runner binds it to the page pool
// whose free list and counts say which pages hold what. Not safe for
// concurrent use.
type Model struct {
	dev   *kernels.Device
	cfg   checkpoint.Config
	opts  Options
	shape w3day4.PageShape

	mm    *day4.Matmul
	fused *day5.Fused
	mods  []*kernels.Module
	k     map[string]*kernels.Kernel

	embed, head *devtensor.Weight // the same Weight when the embeddings are tied
	finalNorm   *devtensor.Vector
	rope        *day5.DeviceRoPE
	layers      []*layer

	// Activations for MaxTokens rows (last and logits: MaxSeqs rows).
	h, xn, qkv, q, attn, o, gu, act, mlp, last, logits *devtensor.Activations
	// int32 metadata of a step.
	tokens, pos, slot, tables, info, rowSeq, sampleRows, next *kernels.Buffer
	maxWidth                                                  int             // block table entries per sequence
	part                                                      *kernels.Buffer // split attention's partial results, grown as needed
	draw                                                      draws           // sequences that draw on the device
}

// attentionBlock is paged_attention_bf16's block: TILE in runner.cu.
const attentionBlock = 128

// attentionLaunch is paged_attention_bf16's launch for t rows over h
// key/value heads in splits ranges: on CUDA with ATT_SMEM (runner.cu)
// bytes of dynamic shared memory; the Metal kernel's is static.
func (m *Model) attentionLaunch(t, h, splits int) kernels.LaunchConfig {
	cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: t, Y: h, Z: splits}, Block: kernels.D1(attentionBlock)}
	if m.dev.Backend() == kernels.CUDA {
		cfg.SharedMem = 4 * 2 * 32 * (m.cfg.HeadDim() + 8) * 2
	}
	return cfg
}

// storage is how a checkpoint's matrices are stored on the device: bits 16
// (bf16) or 4 with a group size.
func storage(cfg checkpoint.Config) (bits, group int) {
	if q := cfg.Quantization; q != nil {
		return q.Bits, q.GroupSize
	}
	return 16, 0
}

// check says what is wrong with opts for a model of cfg, or nil.
func (o Options) check(cfg checkpoint.Config) error {
	switch {
	case o.MaxTokens < 1 || o.MaxSeqs < 1 || o.MaxSeqs > o.MaxTokens:
		return fmt.Errorf("gpu runner: need 1 <= MaxSeqs <= MaxTokens, got %d and %d", o.MaxSeqs, o.MaxTokens)
	case o.NumPages < 1 || o.PageSize < 1:
		return fmt.Errorf("gpu runner: the pool needs at least one page of at least one position, got %d pages of %d", o.NumPages, o.PageSize)
	case cfg.HeadDim() > w3day4.MaxHeadDim || cfg.HeadDim()%16 != 0 || cfg.NumAttentionHeads/cfg.NumKeyValueHeads > w3day4.MaxGroup:
		return fmt.Errorf("gpu runner: head dimension %d with %d query heads per key/value head: the kernels take a head dimension that is a multiple of 16 up to %d, and up to %d heads per group",
			cfg.HeadDim(), cfg.NumAttentionHeads/cfg.NumKeyValueHeads, w3day4.MaxHeadDim, w3day4.MaxGroup)
	}
	if bits, group := storage(cfg); bits != 16 && (bits != 4 || (group != 64 && group != 128)) {
		return fmt.Errorf("gpu runner: weights quantized to %d bits with groups of %d; the GPU kernels take bf16 or 4-bit with groups of 64 or 128", bits, group)
	}
	if int64(o.NumPages)*int64(o.PageSize) > math.MaxInt32 {
		return fmt.Errorf("gpu runner: %d pages of %d positions is more slots than an int32 names", o.NumPages, o.PageSize)
	}
	return nil
}

// PoolConfig is the shape of the page pool a Model's pages mirror: the
// pool the engine's block manager hands pages out of (w3day3.NewPagePool;
// its own float storage is never made).
func PoolConfig(cfg checkpoint.Config, o Options) w3day3.PoolConfig {
	return w3day3.PoolConfig{NumPages: o.NumPages, PageSize: o.PageSize, Layers: cfg.NumHiddenLayers,
		KVHeads: cfg.NumKeyValueHeads, HeadDim: cfg.HeadDim()}
}

// DeviceBytesPerPage is the device memory of one page: bf16 keys and
// values of PageSize positions in every layer, half of what the CPU pool's
// BytesPerPage counts for float32.
func DeviceBytesPerPage(cfg checkpoint.Config, o Options) int64 {
	return PoolConfig(cfg, o).BytesPerPage() / 2
}

// MemoryNeed is the device memory, in bytes, that Load allocates: the
// weights as stored (the small vectors as float32), the pages, the RoPE
// table, the activations of MaxTokens rows, the logits of MaxSeqs rows,
// the metadata, and the bf16 copy of a product's input that the tensor-core
// products make. Load checks it against the device's free memory first.
func MemoryNeed(cfg checkpoint.Config, o Options) (int64, error) {
	if err := o.check(cfg); err != nil {
		return 0, err
	}
	bits, group := storage(cfg)
	e, inter, v, layers := int64(cfg.HiddenSize), int64(cfg.IntermediateSize), int64(cfg.VocabSize), int64(cfg.NumHiddenLayers)
	kv := int64(cfg.NumKeyValueHeads * cfg.HeadDim())
	vectors := layers*(e+2*kv+2*e) + e
	need := devtensor.ModelWeightBytes(cfg, bits, group) + 2*vectors
	need += DeviceBytesPerPage(cfg, o) * int64(o.NumPages)
	need += 4 * int64(cfg.MaxPositionEmbeddings) * int64(cfg.HeadDim()) // cos and sin
	rows, seqs := int64(o.MaxTokens), int64(o.MaxSeqs)
	need += 4*rows*(6*e+(e+2*kv)+3*inter) + 4*seqs*(e+v)
	width := int64(llm.PagesFor(cfg.MaxPositionEmbeddings, o.PageSize))
	need += 4 * (4*rows + seqs*width + 3*seqs + 2*seqs)
	need += 2 * rows * max(e, inter) // bf16 inputs of the tensor-core products
	return need, nil
}

// Load uploads a checkpoint's weights to dev once, allocates the page
// pool's storage and the buffers of the largest step, and compiles the
// kernels. It checks MemoryNeed against the device's free memory first and
// fails with a clear error, having allocated nothing, when it does not fit.
func Load(dev *kernels.Device, ck *checkpoint.Checkpoint, o Options) (m *Model, err error) {
	cfg := ck.Config
	if source(dev.Backend()) == "" {
		return nil, fmt.Errorf("gpu runner: no kernels for %s", dev.Backend())
	}
	need, err := MemoryNeed(cfg, o)
	if err != nil {
		return nil, err
	}
	if err := devtensor.CheckFits(dev, need); err != nil {
		return nil, fmt.Errorf("gpu runner: the model with %d pages of %d positions and steps of %d tokens does not fit: %w", o.NumPages, o.PageSize, o.MaxTokens, err)
	}
	m = &Model{dev: dev, cfg: cfg, opts: o, k: map[string]*kernels.Kernel{},
		shape:    w3day4.PageShape{NumPages: o.NumPages, PageSize: o.PageSize, KVHeads: cfg.NumKeyValueHeads, HeadDim: cfg.HeadDim()},
		maxWidth: llm.PagesFor(cfg.MaxPositionEmbeddings, o.PageSize)}
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

func (m *Model) compile() error {
	var err error
	if m.mm, err = day4.NewMatmul(m.dev); err != nil {
		return err
	}
	if m.fused, err = day5.NewFused(m.dev); err != nil {
		return err
	}
	for _, src := range []struct {
		code  string
		names []string
	}{
		// Day 7's source declares its attention kernels for a head
		// dimension; the runner takes only the embedding and SwiGLU.
		{fmt.Sprintf("#define HEAD_DIM %d\n", m.cfg.HeadDim()) + day7.Source(m.dev.Backend()), []string{"embed_bf16", "embed_q4", "swiglu_pair"}},
		{fmt.Sprintf("#define GROUP %d\n#define HEAD_DIM %d\n", m.cfg.NumAttentionHeads/m.cfg.NumKeyValueHeads, m.cfg.HeadDim()) + source(m.dev.Backend()),
			[]string{"paged_qkv", "paged_attention_bf16", "paged_attention_merge", "gather_rows", "argmax_rows"}},
	} {
		mod, err := m.dev.Compile(src.code)
		if err != nil {
			return fmt.Errorf("compiling the GPU runner's kernels for %s: %w", m.dev.Backend(), err)
		}
		m.mods = append(m.mods, mod)
		for _, name := range src.names {
			if m.k[name], err = mod.Kernel(name); err != nil {
				return err
			}
		}
	}
	return nil
}

// upload copies every weight to the device, q/k/v and gate/up stacked so
// that each is one matrix product, and allocates each layer's pages.
func (m *Model) upload(ck *checkpoint.Checkpoint) error {
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
	table, err := day5.NewRoPETable(c.HeadDim(), c.MaxPositionEmbeddings, c.RopeTheta)
	if err != nil {
		return err
	}
	if m.rope, err = day5.UploadRoPE(m.dev, table); err != nil {
		return err
	}
	pageBytes := 2 * m.shape.LayerFloats()
	for i := range c.NumHiddenLayers {
		p := fmt.Sprintf("model.layers.%d.", i)
		l := &layer{}
		m.layers = append(m.layers, l)
		attn, mlp := p+"self_attn.", p+"mlp."
		steps := []func() error{
			func() (err error) {
				l.ln1, err = devtensor.UploadVectors(m.dev, ck, []string{p + "input_layernorm.weight"}, []int{e})
				return err
			},
			func() (err error) {
				l.ln2, err = devtensor.UploadVectors(m.dev, ck, []string{p + "post_attention_layernorm.weight"}, []int{e})
				return err
			},
			func() (err error) {
				l.qkv, err = devtensor.UploadStacked(m.dev, ck, []string{attn + "q_proj.weight", attn + "k_proj.weight", attn + "v_proj.weight"}, []int{e, kv, kv}, e)
				return err
			},
			func() (err error) {
				l.qkvBias, err = devtensor.UploadVectors(m.dev, ck, []string{attn + "q_proj.bias", attn + "k_proj.bias", attn + "v_proj.bias"}, []int{e, kv, kv})
				return err
			},
			func() (err error) {
				l.o, err = devtensor.UploadStacked(m.dev, ck, []string{attn + "o_proj.weight"}, []int{e}, e)
				return err
			},
			func() (err error) {
				l.gateUp, err = devtensor.UploadStacked(m.dev, ck, []string{mlp + "gate_proj.weight", mlp + "up_proj.weight"}, []int{inter, inter}, e)
				return err
			},
			func() (err error) {
				l.down, err = devtensor.UploadStacked(m.dev, ck, []string{mlp + "down_proj.weight"}, []int{e}, inter)
				return err
			},
			func() (err error) { l.k, err = m.dev.Alloc(pageBytes); return err },
			func() (err error) { l.v, err = m.dev.Alloc(pageBytes); return err },
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return fmt.Errorf("gpu runner: layer %d: %w", i, err)
			}
		}
	}
	return nil
}

// allocate makes the activation buffers and the metadata buffers.
func (m *Model) allocate() error {
	c := m.cfg
	r, s, e, inter := m.opts.MaxTokens, m.opts.MaxSeqs, c.HiddenSize, c.IntermediateSize
	kv := c.NumKeyValueHeads * c.HeadDim()
	var err error
	for _, a := range []struct {
		dst        **devtensor.Activations
		rows, cols int
	}{
		{&m.h, r, e}, {&m.xn, r, e}, {&m.qkv, r, e + 2*kv}, {&m.q, r, e}, {&m.attn, r, e}, {&m.o, r, e},
		{&m.gu, r, 2 * inter}, {&m.act, r, inter}, {&m.mlp, r, e}, {&m.last, s, e}, {&m.logits, s, c.VocabSize},
	} {
		if *a.dst, err = devtensor.NewActivations(m.dev, a.rows, a.cols); err != nil {
			return err
		}
	}
	for _, b := range []struct {
		dst **kernels.Buffer
		n   int
	}{
		{&m.tokens, r}, {&m.pos, r}, {&m.slot, r}, {&m.rowSeq, r},
		{&m.tables, s * m.maxWidth}, {&m.info, 3 * s}, {&m.sampleRows, s}, {&m.next, s},
	} {
		if *b.dst, err = m.dev.Alloc(4 * b.n); err != nil {
			return err
		}
	}
	return nil
}

// Close frees everything the model holds on the device.
func (m *Model) Close() error {
	var errs []error
	keep := func(err error) { errs = append(errs, err) }
	keep(m.draw.close())
	for _, b := range []*kernels.Buffer{m.tokens, m.pos, m.slot, m.tables, m.info, m.rowSeq, m.sampleRows, m.next, m.part} {
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
		for _, b := range []*kernels.Buffer{l.k, l.v} {
			if b != nil {
				keep(b.Free())
			}
		}
	}
	if m.head != nil && m.head != m.embed {
		keep(m.head.Free())
	}
	for _, w := range []*devtensor.Weight{m.embed} {
		if w != nil {
			keep(w.Free())
		}
	}
	if m.finalNorm != nil {
		keep(m.finalNorm.Free())
	}
	if m.rope != nil {
		keep(m.rope.Free())
	}
	if m.fused != nil {
		keep(m.fused.Close())
	}
	if m.mm != nil {
		keep(m.mm.Close())
	}
	for _, mod := range m.mods {
		keep(mod.Close())
	}
	*m = Model{}
	return errors.Join(errs...)
}

// Shape is the model's dimensions and limits, as the engine sees them.
func (m *Model) Shape() llm.ModelShape { return llm.ShapeOf(m.cfg) }

// Runner is the model bound to the page pool whose block manager the engine
// uses: the pool's free list and reference counts say which pages hold
// what, the model's device buffers hold the keys and values. It implements
// llm.ModelRunner. One runner of a model runs at a time.
type Runner struct {
	m    *Model
	pool *w3day3.PagePool
	// Sampler picks the token of every sampling sequence without a
	// Sampler of its own (llm.Sequence.Sampler comes first); nil is
	// greedy, chosen on the device.
	Sampler llm.Sampler
}

var _ llm.ModelRunner = (*Runner)(nil)

// Runner binds m to pool, which must have the shape PoolConfig gives for
// m's options: its pages are the model's device pages.
func (m *Model) Runner(pool *w3day3.PagePool) (*Runner, error) {
	if pool == nil {
		return nil, errors.New("gpu runner: no page pool")
	}
	if got, want := pool.Config(), PoolConfig(m.cfg, m.opts); got != want {
		return nil, fmt.Errorf("gpu runner: the pool is %+v, the model's device pages are %+v", got, want)
	}
	return &Runner{m: m, pool: pool}, nil
}

// Run computes one step: every chunk's tokens through the model at once
// (each weight matrix multiplies all the step's tokens), each chunk's keys
// and values written into its sequence's pages, its queries attending
// through the block table. It returns, per chunk, the next token of a chunk
// that samples and -1 for one that does not. A batch that Week 3 Day 4's
// PrepareBatch refuses, or one larger than the model's Options, is an error
// and nothing is written.
func (r *Runner) Run(batch llm.Batch) ([]int, error) {
	m := r.m
	seqs, tokens, err := w3day4.PrepareBatch(batch, m.Shape(), m.shape, r.pool.RefCount)
	if err != nil {
		return nil, err
	}
	t := len(tokens)
	if t > m.opts.MaxTokens || len(batch) > m.opts.MaxSeqs {
		return nil, fmt.Errorf("gpu runner: a step of %d tokens of %d sequences; the model was loaded for at most %d and %d", t, len(batch), m.opts.MaxTokens, m.opts.MaxSeqs)
	}
	tables, width := w3day4.PadTables(seqs)
	if width > m.maxWidth {
		return nil, fmt.Errorf("gpu runner: a block table of %d pages, more than the %d a context of %d positions needs", width, m.maxWidth, m.cfg.MaxPositionEmbeddings)
	}
	ps := m.opts.PageSize
	tok, pos, slot, rowSeq := make([]int32, t), make([]int32, t), make([]int32, t), make([]int32, t)
	info := make([]int32, 0, 3*len(batch))
	var sample []int32 // the last row of each chunk that samples
	row := 0
	for i, c := range batch {
		info = append(info, int32(c.Start), int32(c.Len), int32(row))
		for j := range c.Len {
			p := c.Start + j
			tok[row], pos[row], rowSeq[row] = int32(tokens[row]), int32(p), int32(i)
			slot[row] = int32(c.Seq.BlockTable[p/ps]*ps + p%ps)
			row++
		}
		if c.Samples() {
			sample = append(sample, int32(row-1))
		}
	}
	for _, w := range []struct {
		dst *kernels.Buffer
		src []int32
	}{{m.tokens, tok}, {m.pos, pos}, {m.slot, slot}, {m.rowSeq, rowSeq}, {m.tables, tables}, {m.info, info}, {m.sampleRows, sample}} {
		if err := kernels.Write(w.dst, 0, w.src); err != nil {
			return nil, err
		}
	}
	longest := 0
	for _, c := range batch {
		longest = max(longest, c.Start+c.Len)
	}
	if err := m.forward(t, width, longest); err != nil {
		return nil, err
	}
	next := make([]int, len(batch))
	for i := range next {
		next[i] = -1
	}
	if len(sample) == 0 {
		return next, nil
	}
	if err := m.head1(len(sample)); err != nil {
		return nil, err
	}
	return next, r.choose(batch, next, len(sample))
}

// attentionSplits is how many ranges of keys paged_attention_bf16 splits
// each query row's into (grid Z) for a step of t rows over h key/value
// heads whose longest row sees longest keys: enough blocks for two per
// multiprocessor, never more ranges than tiles of keys, at most 16. (More
// blocks than that measured slower: 256 decodes of 1,024 positions over 2
// heads read the pages at 2.3 TB/s in one range, 2.0 in three.)
func attentionSplits(t, h, longest, sms int) int {
	blocks := t * h
	want := (2*max(sms, 1) + blocks - 1) / blocks
	tiles := (longest + attentionBlock - 1) / attentionBlock
	return max(1, min(want, tiles, 16))
}

// forward queues every layer over the step's t rows, whose block tables
// are width pages wide and whose longest sequence holds longest positions
// at the end of the step; the final norm's input is left in h + mlp.
func (m *Model) forward(t, width, longest int) error {
	c := m.cfg
	e, inter, d := c.HiddenSize, c.IntermediateSize, c.HeadDim()
	hq, h := c.NumAttentionHeads, c.NumKeyValueHeads
	eps := float32(c.RMSNormEps)
	for _, a := range []*devtensor.Activations{m.h, m.xn, m.qkv, m.q, m.attn, m.o, m.gu, m.act, m.mlp} {
		if err := a.SetRows(t); err != nil {
			return err
		}
	}
	const block = 256
	grid := kernels.Dim3{X: kernels.Blocks(e, block), Y: t, Z: 1}
	var err error
	if m.embed.Quantized() {
		err = m.dev.Launch(m.k["embed_q4"], kernels.LaunchConfig{Grid: grid, Block: kernels.D1(block)},
			m.h.Buf, m.embed.W, m.embed.Scales, m.embed.Biases, m.tokens, int32(t), int32(e), int32(m.embed.GroupSize))
	} else {
		err = m.dev.Launch(m.k["embed_bf16"], kernels.LaunchConfig{Grid: grid, Block: kernels.D1(block)},
			m.h.Buf, m.embed.W, m.tokens, int32(t), int32(e))
	}
	if err != nil {
		return err
	}
	pairs := t * (hq + 2*h) * d / 2
	scale := float32(1 / math.Sqrt(float64(d)))
	splits := attentionSplits(t, h, longest, m.dev.Info().Multiprocessors)
	if splits > 1 {
		need := 4 * t * hq * splits * (d + 2)
		if m.part == nil || m.part.Size() < need {
			if m.part != nil {
				m.part.Free()
				m.part = nil
			}
			if m.part, err = m.dev.Alloc(need); err != nil {
				return err
			}
		}
	}
	part := m.part
	if part == nil {
		part = m.attn.Buf // not read with one split
	}
	slots := m.opts.NumPages * m.opts.PageSize
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
		if err := m.mm.Linear(m.qkv, m.xn, l.qkv); err != nil {
			return err
		}
		if err := m.dev.Launch(m.k["paged_qkv"], kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(pairs, block)), Block: kernels.D1(block)},
			m.q.Buf, l.k, l.v, m.qkv.Buf, l.qkvBias.Buf, m.rope.Cos, m.rope.Sin, m.pos, m.slot,
			int32(t), int32(hq), int32(h), int32(d), int32(m.rope.MaxPos), int32(slots)); err != nil {
			return err
		}
		if err := m.dev.Launch(m.k["paged_attention_bf16"], m.attentionLaunch(t, h, splits),
			m.attn.Buf, part, m.q.Buf, l.k, l.v, m.tables, m.info, m.rowSeq, int32(width), int32(m.opts.PageSize), scale); err != nil {
			return err
		}
		if splits > 1 {
			if err := m.dev.Launch(m.k["paged_attention_merge"], kernels.LaunchConfig{Grid: kernels.Dim3{X: t, Y: hq, Z: 1}, Block: kernels.D1(d)},
				m.attn.Buf, part, int32(splits)); err != nil {
				return err
			}
		}
		if err := m.mm.Linear(m.o, m.attn, l.o); err != nil {
			return err
		}
		if err := m.fused.AddRMSNorm(m.xn, m.h, m.o, l.ln2, eps); err != nil {
			return err
		}
		if err := m.mm.Linear(m.gu, m.xn, l.gateUp); err != nil {
			return err
		}
		if err := m.dev.Launch(m.k["swiglu_pair"], kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(t*inter, block)), Block: kernels.D1(block)},
			m.act.Buf, m.gu.Buf, int32(t), int32(inter)); err != nil {
			return err
		}
		if err := m.mm.Linear(m.mlp, m.act, l.down); err != nil {
			return err
		}
	}
	return nil
}

// head1 computes the logits of the n sampled rows (sampleRows): the last
// residual add and final norm over the step's rows, those rows gathered,
// the head on them alone.
func (m *Model) head1(n int) error {
	e := m.cfg.HiddenSize
	if err := m.fused.AddRMSNorm(m.xn, m.h, m.mlp, m.finalNorm, float32(m.cfg.RMSNormEps)); err != nil {
		return err
	}
	if err := m.last.SetRows(n); err != nil {
		return err
	}
	const block = 256
	if err := m.dev.Launch(m.k["gather_rows"], kernels.LaunchConfig{Grid: kernels.Dim3{X: kernels.Blocks(e, block), Y: n, Z: 1}, Block: kernels.D1(block)},
		m.last.Buf, m.xn.Buf, m.sampleRows, int32(n), int32(e)); err != nil {
		return err
	}
	return m.mm.Linear(m.logits, m.last, m.head)
}

// choose fills next for the n sampling chunks: greedy ones from the
// device's argmax; a sequence whose own sampler tells its settings
// (devsample.Settings) by a draw on the device, with its own random stream;
// any other by its sampler over its logits row, copied back.
func (r *Runner) choose(batch llm.Batch, next []int, n int) error {
	m := r.m
	vocab := m.cfg.VocabSize
	argBlock := 1024
	for argBlock > m.k["argmax_rows"].MaxThreadsPerBlock() {
		argBlock /= 2 // the reduction halves a power of two
	}
	if err := m.dev.Launch(m.k["argmax_rows"], kernels.LaunchConfig{Grid: kernels.D1(n), Block: kernels.D1(argBlock)},
		m.next, m.logits.Buf, int32(vocab)); err != nil {
		return err
	}
	var lrow, prow []int
	onDevice := make([]bool, n)
	j := 0
	for _, c := range batch {
		if !c.Samples() {
			continue
		}
		if ds, ok := c.Seq.Sampler.(devsample.Settings); ok {
			row, err := m.rowFor(c.Seq, ds.DeviceParams())
			if err != nil {
				return err
			}
			if row >= 0 {
				lrow, prow = append(lrow, j), append(prow, row)
				onDevice[j] = true
			}
		}
		j++
	}
	if len(lrow) > 0 {
		if err := m.draw.s.LaunchPicked(m.next, m.logits.Buf, vocab, lrow, prow); err != nil {
			return err
		}
	}
	chosen := make([]int32, n)
	if err := kernels.Read(chosen, m.next, 0); err != nil {
		return err
	}
	j = 0
	for i, c := range batch {
		if !c.Samples() {
			continue
		}
		s := r.Sampler
		if c.Seq.Sampler != nil {
			s = c.Seq.Sampler
		}
		if s == nil || onDevice[j] {
			next[i] = int(chosen[j])
		} else {
			row := make([]float32, vocab)
			if err := kernels.Read(row, m.logits.Buf, j*vocab); err != nil {
				return err
			}
			next[i] = s.Sample(llm.LogProbs(tensor.New(row, vocab)))
		}
		j++
	}
	return nil
}
