package day4

import (
	"fmt"

	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	w3day1 "github.com/tinyllm-go/tinyllm/solutions/week3/day1"
	w3day3 "github.com/tinyllm-go/tinyllm/solutions/week3/day3"
)

// The types the engine's parts pass between them, declared once in
// internal/llm.
type (
	// Batch is the chunks of one step.
	Batch = llm.Batch
	// ModelRunner computes a batch and returns the sampled tokens.
	ModelRunner = llm.ModelRunner
	// Sampler picks a token from a row of log-probabilities.
	Sampler = llm.Sampler
)

// Runner is the model runner of the Week 3 engine: it computes a step's
// batch with Day 1's batched model, keeping every sequence's keys and values
// in the pages of Day 3's page pool (written through its block table) and
// attending with PagedAttention. It implements llm.ModelRunner.
type Runner struct {
	model *w3day1.Qwen2ModelWeek3
	pool  *w3day3.PagePool
	shape PageShape
	// Sampler picks each sampled token from its log-probabilities, for
	// the sequences without a Sampler of their own (llm.Sequence.Sampler,
	// which comes first); nil is greedy (the largest logit). One sampler
	// serves all those requests, in batch order, so a seeded sampler's
	// draws depend on the batches; a sequence's own does not.
	Sampler Sampler
}

var _ ModelRunner = (*Runner)(nil)

// NewRunner returns a runner of model over pool, or an error if the pool's
// pages do not fit the model (layers, key/value heads, head dimension).
func NewRunner(model *w3day1.Qwen2ModelWeek3, pool *w3day3.PagePool) (*Runner, error) {
	if model == nil || pool == nil {
		return nil, fmt.Errorf("model runner: needs a model and a page pool")
	}
	ms, pc := model.Shape(), pool.Config()
	if pc.Layers != ms.NumLayers || pc.KVHeads != ms.NumKVHeads || pc.HeadDim != ms.HeadDim {
		return nil, fmt.Errorf("model runner: the pool holds %d layers x %d kv heads x %d, the model needs %d x %d x %d",
			pc.Layers, pc.KVHeads, pc.HeadDim, ms.NumLayers, ms.NumKVHeads, ms.HeadDim)
	}
	return &Runner{model: model, pool: pool,
		shape: PageShape{NumPages: pc.NumPages, PageSize: pc.PageSize, KVHeads: pc.KVHeads, HeadDim: pc.HeadDim}}, nil
}

// Run computes one step: every chunk's tokens go through the model in one
// pass (each weight matrix multiplies all T tokens of the step at once);
// in every layer, each chunk's new keys and values are written into its
// sequence's pages, and its queries attend through the block table. It
// returns, for each chunk, the next token of a chunk that samples and -1
// for one that does not. A batch whose metadata is wrong (a chunk that does
// not start at its sequence's cached positions, a token outside the
// vocabulary, a chunk past the context, a block table that CheckPaged
// refuses) is an error, and nothing is written.
func (r *Runner) Run(batch Batch) ([]int, error) {
	seqs, tokens, err := r.prepare(batch)
	if err != nil {
		return nil, err
	}
	m := r.model
	t := len(tokens)
	pos := make([]int, t) // each token's position in its sequence
	rows := 0
	for _, c := range batch {
		for i := range c.Len {
			pos[rows+i] = c.Start + i
		}
		rows += c.Len
	}
	h := m.Embedding.Forward([][]int{tokens})
	h = tensor.Reshape(h, t, h.Dim(-1))
	for l, b := range m.Blocks {
		a := b.Attention
		x := b.InputNorm.Forward(h)
		q, k, v := a.Q.Forward(x), a.K.Forward(x), a.V.Forward(x)
		// Every token is its own row of RoPE, at its own position: one
		// call rotates the whole step.
		q = a.RoPE.Forward(tensor.Reshape(q, t, 1, a.NumHeads, a.HeadDim), pos)
		k = a.RoPE.Forward(tensor.Reshape(k, t, 1, a.NumKVHeads, a.HeadDim), pos)
		kl, vl, err := r.pool.Layer(l)
		if err != nil {
			return nil, err
		}
		r.write(kl, vl, batch, k.Data(), v.Data())
		o := pagedAttention(tensor.Reshape(q, t, a.NumHeads, a.HeadDim), kl, vl, r.shape, seqs, 0)
		h = tensor.Add(h, a.O.Forward(tensor.Reshape(o, t, a.NumHeads*a.HeadDim)))
		h = tensor.Add(h, b.MLP.Forward(b.PostAttentionNorm.Forward(h)))
	}
	// Only the chunks that sample need logits: the norm and the head run on
	// their last rows alone.
	var last []int
	rows = 0
	for _, c := range batch {
		rows += c.Len
		if c.Samples() {
			last = append(last, rows-1)
		}
	}
	next := make([]int, len(batch))
	for i := range next {
		next[i] = -1
	}
	if len(last) == 0 {
		return next, nil
	}
	hl := m.Norm.Forward(tensor.Take(h, last, 0))
	var logits *tensor.Tensor
	if m.LMHead == nil {
		logits = m.Embedding.AsLinear(hl)
	} else {
		logits = m.LMHead.Forward(hl)
	}
	vocab := logits.Dim(-1)
	j := 0
	for i, c := range batch {
		if !c.Samples() {
			continue
		}
		row := tensor.New(logits.Data()[j*vocab:(j+1)*vocab], vocab)
		j++
		s := r.Sampler
		if c.Seq.Sampler != nil {
			s = c.Seq.Sampler
		}
		if s == nil {
			next[i] = tensor.ArgMax(row, 0)[0]
		} else {
			next[i] = s.Sample(llm.LogProbs(row))
		}
	}
	return next, nil
}

// prepare checks the batch and returns its paged attention metadata and
// all its tokens in order.
func (r *Runner) prepare(batch Batch) ([]PagedSeq, []int, error) {
	return PrepareBatch(batch, r.model.Shape(), r.shape, r.pool.RefCount)
}

// PrepareBatch checks a step's batch for a model of shape sh whose keys and
// values live in pages of shape ps (refs counting their holders), and
// returns its paged attention metadata and all its tokens in order: every
// chunk within its sequence and starting at its cached positions, no chunk
// past the context, every token in the vocabulary, and block tables that
// CheckPaged accepts. A runner calls it before anything is written.
// (Provided.)
func PrepareBatch(batch Batch, sh llm.ModelShape, ps PageShape, refs RefCounter) ([]PagedSeq, []int, error) {
	if len(batch) == 0 {
		return nil, nil, fmt.Errorf("model runner: an empty batch")
	}
	seqs := make([]PagedSeq, len(batch))
	var tokens []int
	for i, c := range batch {
		if c.Seq == nil {
			return nil, nil, fmt.Errorf("model runner: chunk %d has no sequence", i)
		}
		if c.Start < 0 || c.Len < 1 || c.Start+c.Len > c.Seq.Len() {
			return nil, nil, fmt.Errorf("model runner: sequence %d: chunk [%d, %d) is not within its %d tokens", c.Seq.ID, c.Start, c.Start+c.Len, c.Seq.Len())
		}
		if c.Start != c.Seq.NumCached {
			// Positions before Start must be in the pages already, and
			// none after: anything else reads keys nobody wrote.
			return nil, nil, fmt.Errorf("model runner: sequence %d: chunk starts at position %d, but %d positions are cached", c.Seq.ID, c.Start, c.Seq.NumCached)
		}
		if c.Start+c.Len > sh.MaxContext {
			return nil, nil, fmt.Errorf("model runner: sequence %d would hold %d positions, more than the model's %d", c.Seq.ID, c.Start+c.Len, sh.MaxContext)
		}
		for _, id := range c.Tokens() {
			if id < 0 || id >= sh.VocabSize {
				return nil, nil, fmt.Errorf("model runner: sequence %d: token id %d outside the vocabulary of %d", c.Seq.ID, id, sh.VocabSize)
			}
		}
		seqs[i] = PagedSeq{Context: c.Start, Len: c.Len, BlockTable: c.Seq.BlockTable}
		tokens = append(tokens, c.Tokens()...)
	}
	if err := CheckPaged(ps, seqs, refs); err != nil {
		return nil, nil, fmt.Errorf("model runner: %w", err)
	}
	return seqs, tokens, nil
}

// write stores the step's keys and values (T x KVHeads x HeadDim each,
// token-major) of one layer in the slots their sequences' block tables
// name. A position's keys are KVHeads·HeadDim contiguous floats in a page,
// as in a row of k, so each is one copy.
func (r *Runner) write(kl, vl []float32, batch Batch, k, v []float32) {
	ps, w := r.shape.PageSize, r.shape.KVHeads*r.shape.HeadDim
	row := 0
	for _, c := range batch {
		for i := range c.Len {
			p := c.Start + i
			at := (c.Seq.BlockTable[p/ps]*ps + p%ps) * w
			copy(kl[at:at+w], k[row*w:(row+1)*w])
			copy(vl[at:at+w], v[row*w:(row+1)*w])
			row++
		}
	}
}
