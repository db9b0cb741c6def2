package day3

import (
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/week1/day2"
	"github.com/tinyllm-go/tinyllm/week1/day4"
	"github.com/tinyllm-go/tinyllm/week1/day5"
)

// CachedModel is a model with a KV cache (see internal/llm).
type CachedModel = llm.CachedModel

// KVCache is one layer's key/value cache (see internal/llm).
type KVCache = llm.KVCache

// Linear is one projection, x·Wᵀ + b, with its weight kept the way the
// checkpoint stores it: exactly one of Float and Packed is set.
type Linear struct {
	Float  *tensor.Tensor // Out x In, nil when the weight is packed
	Packed *PackedWeight  // nil when the weight is a float tensor
	Bias   *tensor.Tensor // Out values, nil for a projection without one
}

// Forward maps x (N.. x In) to N.. x Out, through QuantizedLinear for a
// packed weight and Week 1's Linear for a float one.
func (l *Linear) Forward(x *tensor.Tensor) *tensor.Tensor {
	// Your code here (W2D3).
	// For a float weight, your Week 1 Linear: import
	// w1day1 "github.com/tinyllm-go/tinyllm/week1/day1".
	panic("TODO(W2D3): implement Linear.Forward")
}

// Embedding is the token table, float (Week 1's Embedding) or packed
// (VocabSize x HiddenSize): exactly one of Float and Packed is set.
type Embedding struct {
	Float  *day5.Embedding
	Packed *PackedWeight
}

// Forward gathers the rows of B x L token ids: B x L x HiddenSize float32
// vectors. A packed table dequantizes only the rows it gathers.
func (e *Embedding) Forward(tokens [][]int) *tensor.Tensor {
	// Your code here (W2D3).
	// A packed row id is words id·In·Bits/32 … and groups id·In/GroupSize …:
	// a 1 x In PackedWeight of its own, for your Dequantize.
	panic("TODO(W2D3): implement Embedding.Forward")
}

// AsLinear uses the table as the output head: N.. x HiddenSize gives
// N.. x VocabSize, on the packed table when it is packed.
func (e *Embedding) AsLinear(x *tensor.Tensor) *tensor.Tensor {
	// Your code here (W2D3).
	panic("TODO(W2D3): implement Embedding.AsLinear")
}

// Qwen2AttentionWeek2 is W2D1's cached attention with its four
// projections as Linear layers, so that each can be packed or float.
type Qwen2AttentionWeek2 struct {
	NumHeads, NumKVHeads, HeadDim int
	Q, K, V, O                    *Linear // q, k and v with their biases
	RoPE                          *day2.RoPE
}

// Forward maps x (B x L x HiddenSize), the tokens at positions offset …
// offset+L-1, to B x L x HiddenSize, as W2D1's Qwen2AttentionWeek2.Forward.
func (a *Qwen2AttentionWeek2) Forward(x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	// Your code here (W2D3).
	// Your W2D1 Qwen2AttentionWeek2.Forward with a.Q … a.O instead of
	// Linear(x, a.WQ, a.BQ) …; for ScaledDotProductAttentionGrouped import
	// w1day3 "github.com/tinyllm-go/tinyllm/week1/day3".
	panic("TODO(W2D3): implement Qwen2AttentionWeek2.Forward")
}

// Qwen2MLPWeek2 is Week 1's SwiGLU MLP, down(silu(gate(x))·up(x)), with
// Linear projections.
type Qwen2MLPWeek2 struct {
	Gate, Up, Down *Linear
}

// Forward maps x of shape N.. x HiddenSize to the same shape.
func (m *Qwen2MLPWeek2) Forward(x *tensor.Tensor) *tensor.Tensor {
	// Your code here (W2D3).
	panic("TODO(W2D3): implement Qwen2MLPWeek2.Forward")
}

// Qwen2TransformerBlockWeek2 is the decoder layer: Week 1's norms and two
// residuals around this day's attention and MLP.
type Qwen2TransformerBlockWeek2 struct {
	InputNorm, PostAttentionNorm *day4.RMSNorm
	Attention                    *Qwen2AttentionWeek2
	MLP                          *Qwen2MLPWeek2
}

// Forward maps x (B x L x HiddenSize) at positions offset … offset+L-1 to
// the same shape; cache and mask as in Qwen2AttentionWeek2.Forward.
func (b *Qwen2TransformerBlockWeek2) Forward(x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	// Your code here (W2D3).
	panic("TODO(W2D3): implement Qwen2TransformerBlockWeek2.Forward")
}

// Qwen2ModelWeek2 is the Week 2 model with a KV cache whose weight
// matrices stay as the checkpoint stores them: packed for an MLX quantized
// checkpoint, float (bf16, f16, f32) otherwise.
type Qwen2ModelWeek2 struct {
	Config    checkpoint.Config
	Embedding *Embedding
	Layers    []*Qwen2TransformerBlockWeek2
	Norm      *day4.RMSNorm
	LMHead    *Linear // nil when the embeddings are tied
}

// NewQwen2ModelWeek2 builds the model from an open checkpoint, with the
// tensor names and shapes of day5.NewQwen2ModelWeek1. A weight the
// checkpoint stores packed (ck.IsPacked) is kept packed; the q/k/v biases
// and the norm weights are float tensors in every checkpoint.
func NewQwen2ModelWeek2(ck *checkpoint.Checkpoint) (*Qwen2ModelWeek2, error) {
	// Your code here (W2D3).
	// For each weight matrix: ck.IsPacked(name) ? ck.Packed(name, out, in)
	// : ck.Tensor(name, out, in). Your day5.NewQwen2ModelWeek1 lists the names
	// and shapes; do not call it here, it dequantizes everything.
	panic("TODO(W2D3): implement NewQwen2ModelWeek2")
}

// NewCaches returns one empty W2D1 FullCache per layer.
func (m *Qwen2ModelWeek2) NewCaches() []KVCache {
	// Your code here (W2D3).
	// Your W2D1 FullCache: import w2day1 "github.com/tinyllm-go/tinyllm/week2/day1".
	panic("TODO(W2D3): implement Qwen2ModelWeek2.NewCaches")
}

// Forward runs B x L new token ids at positions offset … offset+L-1
// through the model and returns their logits, B x L x VocabSize; each of
// the caches (one per layer, offset positions) grows by L.
func (m *Qwen2ModelWeek2) Forward(tokens [][]int, offset int, caches []KVCache) *tensor.Tensor {
	// Your code here (W2D3).
	// As W2D1's Forward; the head is m.LMHead, or m.Embedding.AsLinear when tied.
	panic("TODO(W2D3): implement Qwen2ModelWeek2.Forward")
}

// ForwardLast is Forward for the last position alone: B x 1 x VocabSize
// logits. The caches still grow by all L positions.
func (m *Qwen2ModelWeek2) ForwardLast(tokens [][]int, offset int, caches []KVCache) *tensor.Tensor {
	// Your code here (W2D3).
	panic("TODO(W2D3): implement Qwen2ModelWeek2.ForwardLast")
}
