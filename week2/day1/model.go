package day1

import (
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/week1/day3"
	"github.com/tinyllm-go/tinyllm/week1/day4"
	"github.com/tinyllm-go/tinyllm/week1/day5"
)

// CachedModel is a model with a KV cache: Forward(tokens, offset, caches),
// ForwardLast and NewCaches. It is declared once, in internal/llm, for every
// day and the command-line program.
type CachedModel = llm.CachedModel

// Qwen2AttentionWeek2 is Week 1's Qwen2Attention (the same weights and RoPE
// tables, embedded) with a forward pass that continues a sequence from a
// cache instead of starting it at position 0.
type Qwen2AttentionWeek2 struct {
	*day3.Qwen2Attention
}

// Forward maps x (B x L x HiddenSize), the tokens at positions offset …
// offset+L-1, to B x L x HiddenSize. It rotates this step's queries and keys
// for their positions, appends the keys and values to cache (which must
// hold offset positions), and lets every query attend to all offset+L
// cached positions. mask is nil (a single new token sees everything) or an
// additive L x (offset+L) mask, such as day3.CausalMask(L, offset+L).
func (a *Qwen2AttentionWeek2) Forward(x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	// Your code here (W2D1).
	// Start from your Week 1 day3 Qwen2Attention.Forward: a.WQ, a.RoPE,
	// a.HeadDim and the other fields are those of the embedded layer. For
	// day1.Linear, import "github.com/tinyllm-go/tinyllm/week1/day1" under
	// another name (this package is also called day1), for example
	// w1day1 "github.com/tinyllm-go/tinyllm/week1/day1".
	panic("TODO(W2D1): implement Qwen2AttentionWeek2.Forward")
}

// Qwen2TransformerBlockWeek2 is Week 1's decoder layer with the cached
// attention: the same norms and MLP, the same two residuals.
type Qwen2TransformerBlockWeek2 struct {
	InputNorm, PostAttentionNorm *day4.RMSNorm
	Attention                    *Qwen2AttentionWeek2
	MLP                          *day4.Qwen2MLP
}

// Forward maps x (B x L x HiddenSize) at positions offset … offset+L-1 to
// the same shape; cache and mask as in Qwen2AttentionWeek2.Forward.
func (b *Qwen2TransformerBlockWeek2) Forward(x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	// Your code here (W2D1).
	panic("TODO(W2D1): implement Qwen2TransformerBlockWeek2.Forward")
}

// Qwen2ModelWeek2 is the whole model with a KV cache: the weights of the
// Week 1 model, and a forward pass that takes only the new tokens, the
// position of the first of them, and one cache per layer.
type Qwen2ModelWeek2 struct {
	Config    checkpoint.Config
	Embedding *day5.Embedding
	Layers    []*Qwen2TransformerBlockWeek2
	Norm      *day4.RMSNorm
	LMHead    *tensor.Tensor // nil when the embeddings are tied
}

// NewQwen2ModelWeek2 builds the model from an open checkpoint, with the same
// tensors, shapes and errors as day5.NewQwen2ModelWeek1.
func NewQwen2ModelWeek2(ck *checkpoint.Checkpoint) (*Qwen2ModelWeek2, error) {
	// Your code here (W2D1).
	// Your day5.NewQwen2ModelWeek1 already loads and checks every weight:
	// build the Week 1 model and wrap its parts.
	panic("TODO(W2D1): implement NewQwen2ModelWeek2")
}

// NewCaches returns one empty FullCache per layer, for one batch of
// sequences.
func (m *Qwen2ModelWeek2) NewCaches() []KVCache {
	// Your code here (W2D1).
	panic("TODO(W2D1): implement Qwen2ModelWeek2.NewCaches")
}

// Forward runs B x L new token ids, at positions offset … offset+L-1 of
// every sequence, through the model and returns their logits,
// B x L x VocabSize. caches holds one cache per layer, each with offset
// positions; each grows by L. Prefill is a call with offset 0 and the whole
// prompt; a decode step is a call with one token.
func (m *Qwen2ModelWeek2) Forward(tokens [][]int, offset int, caches []KVCache) *tensor.Tensor {
	// Your code here (W2D1).
	panic("TODO(W2D1): implement Qwen2ModelWeek2.Forward")
}

// ForwardLast is Forward for the last position alone: B x 1 x VocabSize
// logits. The caches still grow by all L positions.
func (m *Qwen2ModelWeek2) ForwardLast(tokens [][]int, offset int, caches []KVCache) *tensor.Tensor {
	// Your code here (W2D1).
	panic("TODO(W2D1): implement Qwen2ModelWeek2.ForwardLast")
}
