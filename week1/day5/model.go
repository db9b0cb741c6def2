// Package day5 is Week 1 Day 5 of the course: the Qwen2 transformer block, the
// embedding, and the whole Week 1 model loaded from a Hugging Face checkpoint.
// The guide's chapter "Week 1 Day 5" explains the tasks; grade your work with
// `make check-w1d5`.
package day5

import (
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/week1/day3"
	"github.com/tinyllm-go/tinyllm/week1/day4"
)

// Qwen2TransformerBlock is one decoder layer of Qwen2, in pre-norm form:
//
//	h   = x + Attention(InputNorm(x))
//	out = h + MLP(PostAttentionNorm(h))
type Qwen2TransformerBlock struct {
	InputNorm, PostAttentionNorm *day4.RMSNorm
	Attention                    *day3.Qwen2Attention
	MLP                          *day4.Qwen2MLP
}

// NewQwen2TransformerBlock assembles a layer from its weights; see
// day3.NewQwen2Attention and day4.NewQwen2MLP for their shapes.
func NewQwen2TransformerBlock(numHeads, numKVHeads, hiddenSize, intermediateSize int, rmsNormEps float32,
	wq, bq, wk, bk, wv, bv, wo, wGate, wUp, wDown, wInputNorm, wPostAttentionNorm *tensor.Tensor,
	maxSeqLen int, theta float64) *Qwen2TransformerBlock {
	// Your code here (W1D5).
	panic("TODO(W1D5): implement NewQwen2TransformerBlock")
}

// Forward maps x (N x L x HiddenSize) to the same shape; mask as in
// day3.Qwen2Attention.Forward.
func (b *Qwen2TransformerBlock) Forward(x, mask *tensor.Tensor) *tensor.Tensor {
	// Your code here (W1D5).
	panic("TODO(W1D5): implement Qwen2TransformerBlock.Forward")
}

// Embedding maps token ids to vectors: row t of Weight (VocabSize x Dim) is
// token t. With tied embeddings the same matrix is the output head.
type Embedding struct {
	VocabSize, Dim int
	Weight         *tensor.Tensor
}

// NewEmbedding keeps the table, in whatever dtype it is stored.
func NewEmbedding(vocabSize, dim int, weight *tensor.Tensor) *Embedding {
	// Provided: nothing to write here.
	return &Embedding{VocabSize: vocabSize, Dim: dim, Weight: weight}
}

// Forward gathers the rows of a batch of equally long token sequences: B x L
// ids give B x L x Dim float32 vectors.
func (e *Embedding) Forward(tokens [][]int) *tensor.Tensor {
	// Your code here (W1D5).
	// The table may be bf16: widen it with tensor.AsType after gathering, not
	// before.
	panic("TODO(W1D5): implement Embedding.Forward")
}

// AsLinear uses the table as an output projection: N.. x Dim vectors give
// N.. x VocabSize scores, one dot product with each token's row.
func (e *Embedding) AsLinear(x *tensor.Tensor) *tensor.Tensor {
	// Your code here (W1D5).
	panic("TODO(W1D5): implement Embedding.AsLinear")
}

// Qwen2ModelWeek1 is the whole model: embedding, the decoder layers, a final
// RMSNorm and the output head (the embedding itself when tied).
type Qwen2ModelWeek1 struct {
	Config    checkpoint.Config
	Embedding *Embedding
	Layers    []*Qwen2TransformerBlock
	Norm      *day4.RMSNorm
	LMHead    *tensor.Tensor // nil when the embeddings are tied
}

// NewQwen2ModelWeek1 builds the model from an open checkpoint, using the
// Hugging Face tensor names (model.embed_tokens.weight,
// model.layers.N.self_attn.q_proj.weight, …, model.norm.weight,
// lm_head.weight). Weights keep their stored dtype; every shape is checked
// against the config, so a checkpoint that disagrees with its config fails by
// name.
func NewQwen2ModelWeek1(ck *checkpoint.Checkpoint) (*Qwen2ModelWeek1, error) {
	// Your code here (W1D5).
	// Pass each weight's expected shape to ck.Tensor: it checks the shape and
	// names the tensor when it disagrees.
	panic("TODO(W1D5): implement NewQwen2ModelWeek1")
}

// Forward runs B x L token ids through the model and returns the logits,
// B x L x VocabSize: the scores of every possible next token at every position.
func (m *Qwen2ModelWeek1) Forward(tokens [][]int) *tensor.Tensor {
	// Your code here (W1D5).
	panic("TODO(W1D5): implement Qwen2ModelWeek1.Forward")
}

// ForwardLast is Forward for the last position alone: B x L token ids give B x
// 1 x VocabSize logits, equal to the last position of Forward's. The decoder
// layers still see every token; only the final norm and the output head are
// skipped for the other positions.
func (m *Qwen2ModelWeek1) ForwardLast(tokens [][]int) *tensor.Tensor {
	// Your code here (W1D5).
	panic("TODO(W1D5): implement Qwen2ModelWeek1.ForwardLast")
}
