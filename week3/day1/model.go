// Package day1 is Week 3 Day 1: continuous batching. The Week 2 model (your
// W2D3 model, float or 4-bit) gains a forward pass over several requests at
// once, each with its own caches and offset: the linear layers run on every
// new token of the step together, attention runs per request. Graded by
// `make check-w3d1`.
package day1

import (
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/week1/day4"
	w2day3 "github.com/tinyllm-go/tinyllm/week2/day3"
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
	// Your code here (W3D1).
	// a.Q.Forward(x) … project all T rows at once. Then, for sequence i,
	// tensor.Slice its rows (they start at the sum of the earlier
	// sequences' lengths) and do what your W2D3 attention does with one
	// sequence of L tokens at offset seqs[i].Offset, with
	// seqs[i].Caches[layer] as the cache. For CausalMask and
	// ScaledDotProductAttentionGrouped import
	// w1day3 "github.com/tinyllm-go/tinyllm/week1/day3".
	panic("TODO(W3D1): implement Qwen2AttentionWeek3.ForwardBatch")
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
	// Your code here (W3D1).
	panic("TODO(W3D1): implement Qwen2TransformerBlockWeek3.ForwardBatch")
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
	// Provided: it wraps your W2D3 model's layers.
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
	// Provided.
	return llm.ShapeOf(m.Config)
}

// ForwardBatch runs one step of continuous batching: the new tokens of
// every sequence through the model, each sequence's caches growing by its
// tokens, and returns the logits of each sequence's last new position,
// len(seqs) x VocabSize. It panics with llm.CheckBatch's message on a
// malformed batch.
func (m *Qwen2ModelWeek3) ForwardBatch(seqs []BatchSeq) *tensor.Tensor {
	// Your code here (W3D1).
	// First llm.CheckBatch(seqs, len(m.Blocks), m.Shape().MaxContext,
	// m.Shape().VocabSize): panic with its error, prefixed by where it
	// happened. Then embed all the tokens as one row, run the blocks, and
	// apply the final norm and the head (m.LMHead, or
	// m.Embedding.AsLinear when tied) to each sequence's last row only.
	panic("TODO(W3D1): implement Qwen2ModelWeek3.ForwardBatch")
}
