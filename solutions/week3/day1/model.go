// Package day1 is the reference solution of Week 3 Day 1: continuous
// batching. The Week 2 model (W2D3's, float or 4-bit) gains a forward pass
// over several requests at once, each with its own caches and offset: the
// linear layers run on every new token of the step together, attention runs
// per request. Graded by `make check-w3d1`.
package day1

import (
	"fmt"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	w1day3 "github.com/tinyllm-go/tinyllm/solutions/week1/day3"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day4"
	w2day3 "github.com/tinyllm-go/tinyllm/solutions/week2/day3"
)

// BatchSeq is one request's share of a step: its new tokens, their first
// position and its own per-layer caches (see internal/llm).
type BatchSeq = llm.BatchSeq

// BatchModel is a model with ForwardBatch, NewCaches and Shape (see
// internal/llm).
type BatchModel = llm.BatchModel

// KVCache is one layer's key/value cache of one request (see internal/llm).
type KVCache = llm.KVCache

// ModelShape is what an engine needs to know of a model (see internal/llm).
type ModelShape = llm.ModelShape

// Qwen2AttentionWeek3 is W2D3's attention layer (the same projections,
// float or packed, and RoPE tables, embedded) with a forward pass over the
// new tokens of several requests at once.
type Qwen2AttentionWeek3 struct {
	*w2day3.Qwen2AttentionWeek2
}

// ForwardBatch maps x, T x HiddenSize, to T x HiddenSize. The rows of x are
// the new tokens of seqs one after the other (seqs[0]'s first, T the sum of
// their lengths); layer picks each sequence's cache, seqs[i].Caches[layer].
// The four projections run on all T rows at once. Then each sequence's rows
// of q, k and v are rotated for its positions Offset … Offset+L-1, its keys
// and values appended to its own cache, and its queries attend to that
// cache alone, under the bottom-right causal mask CausalMask(L, Offset+L)
// when L > 1.
func (a *Qwen2AttentionWeek3) ForwardBatch(x *tensor.Tensor, seqs []BatchSeq, layer int) *tensor.Tensor {
	if t := llm.BatchTokens(seqs); x.NDim() != 2 || x.Dim(0) != t {
		panic(fmt.Sprintf("day1.Qwen2AttentionWeek3.ForwardBatch: x is %v, want %d rows (the batch's new tokens) x hidden size", x.Shape(), t))
	}
	// One product per weight matrix for the whole step: this is what
	// batching buys, each matrix read once for T rows instead of T times.
	q, k, v := a.Q.Forward(x), a.K.Forward(x), a.V.Forward(x)
	hq, hkv, d := a.NumHeads, a.NumKVHeads, a.HeadDim
	type part struct{ q, keys, values, mask *tensor.Tensor }
	parts := make([]part, len(seqs))
	start := 0
	// The caches are appended to one sequence after the other, on this
	// goroutine: a cache implementation may share state between requests
	// (Day 3's page pool) and need not be safe for concurrent use.
	for i, s := range seqs {
		l := len(s.Tokens)
		rows := func(t *tensor.Tensor, heads int) *tensor.Tensor {
			return tensor.Reshape(tensor.Slice(t, 0, start, start+l), 1, l, heads, d)
		}
		at := []int{s.Offset}
		p := part{q: tensor.Transpose(a.RoPE.Forward(rows(q, hq), at), 0, 2, 1, 3)}
		ki := tensor.Transpose(a.RoPE.Forward(rows(k, hkv), at), 0, 2, 1, 3)
		vi := tensor.Transpose(rows(v, hkv), 0, 2, 1, 3)
		p.keys, p.values = s.Caches[layer].UpdateAndFetch(ki, vi)
		if l > 1 {
			p.mask = w1day3.CausalMask(l, s.Offset+l)
		}
		parts[i] = p
		start += l
	}
	// Attention itself reads only what each sequence was handed, so the
	// sequences attend on different cores.
	outs := make([]*tensor.Tensor, len(seqs))
	tensor.ParallelFor(len(seqs), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			p := parts[i]
			o := w1day3.ScaledDotProductAttentionGrouped(p.q, p.keys, p.values, 0, p.mask)
			outs[i] = tensor.Reshape(tensor.Transpose(o, 0, 2, 1, 3), o.Dim(2), hq*d)
		}
	})
	return a.O.Forward(tensor.Concat(0, outs...))
}

// Qwen2TransformerBlockWeek3 is the decoder layer with the batched
// attention: W2D3's norms and MLP, the same two residuals.
type Qwen2TransformerBlockWeek3 struct {
	InputNorm, PostAttentionNorm *day4.RMSNorm
	Attention                    *Qwen2AttentionWeek3
	MLP                          *w2day3.Qwen2MLPWeek2
}

// ForwardBatch maps x (T x HiddenSize, the batch's new tokens) to the same
// shape; seqs and layer as in Qwen2AttentionWeek3.ForwardBatch. The norms
// and the MLP work row by row, so they run on all T rows at once.
func (b *Qwen2TransformerBlockWeek3) ForwardBatch(x *tensor.Tensor, seqs []BatchSeq, layer int) *tensor.Tensor {
	h := tensor.Add(x, b.Attention.ForwardBatch(b.InputNorm.Forward(x), seqs, layer))
	return tensor.Add(h, b.MLP.Forward(b.PostAttentionNorm.Forward(h)))
}

// Qwen2ModelWeek3 is the Week 2 model of W2D3 (float or 4-bit weights,
// kept as the checkpoint stores them) with a batched forward pass. It
// embeds the Week 2 model, so Forward, ForwardLast and NewCaches for one
// request are still there; Blocks are its layers with batched attention,
// sharing their weights.
type Qwen2ModelWeek3 struct {
	*w2day3.Qwen2ModelWeek2
	Blocks []*Qwen2TransformerBlockWeek3
}

// NewQwen2ModelWeek3 builds the model from an open checkpoint, float or
// MLX quantized, with the tensors, shapes and errors of W2D3's
// NewQwen2ModelWeek2.
func NewQwen2ModelWeek3(ck *checkpoint.Checkpoint) (*Qwen2ModelWeek3, error) {
	w2, err := w2day3.NewQwen2ModelWeek2(ck)
	if err != nil {
		return nil, err
	}
	m := &Qwen2ModelWeek3{Qwen2ModelWeek2: w2}
	for _, l := range w2.Layers {
		m.Blocks = append(m.Blocks, &Qwen2TransformerBlockWeek3{
			InputNorm: l.InputNorm, PostAttentionNorm: l.PostAttentionNorm,
			Attention: &Qwen2AttentionWeek3{l.Attention}, MLP: l.MLP,
		})
	}
	return m, nil
}

// Shape returns the model's layers, key/value heads, head dimension,
// context limit and vocabulary size, read off its configuration.
func (m *Qwen2ModelWeek3) Shape() ModelShape {
	return llm.ShapeOf(m.Config)
}

// ForwardBatch runs one step of continuous batching: the new tokens of
// every sequence through the model, each sequence's caches growing by its
// tokens, and returns the logits of each sequence's last new position,
// len(seqs) x VocabSize. It panics with llm.CheckBatch's message on a
// malformed batch.
func (m *Qwen2ModelWeek3) ForwardBatch(seqs []BatchSeq) *tensor.Tensor {
	sh := m.Shape()
	if err := llm.CheckBatch(seqs, len(m.Blocks), sh.MaxContext, sh.VocabSize); err != nil {
		panic("day1.Qwen2ModelWeek3.ForwardBatch: " + err.Error())
	}
	all := make([]int, 0, llm.BatchTokens(seqs))
	last := make([]int, len(seqs)) // the row of each sequence's last new token
	for i, s := range seqs {
		all = append(all, s.Tokens...)
		last[i] = len(all) - 1
	}
	h := m.Embedding.Forward([][]int{all})
	h = tensor.Reshape(h, len(all), h.Dim(-1))
	for i, b := range m.Blocks {
		h = b.ForwardBatch(h, seqs, i)
	}
	// Only the last position of each sequence is sampled from: the norm
	// and the head (the largest matrix of a small model) run on those rows
	// alone.
	h = m.Norm.Forward(tensor.Take(h, last, 0))
	if m.LMHead == nil {
		return m.Embedding.AsLinear(h)
	}
	return m.LMHead.Forward(h)
}
