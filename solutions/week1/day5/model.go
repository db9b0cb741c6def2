// Package day5 is the reference solution of Week 1 Day 5: the Qwen2
// transformer block, the embedding, and the whole Week 1 model loaded from a
// Hugging Face checkpoint.
package day5

import (
	"fmt"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day1"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day3"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day4"
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
	return &Qwen2TransformerBlock{
		InputNorm:         day4.NewRMSNorm(hiddenSize, wInputNorm, rmsNormEps),
		PostAttentionNorm: day4.NewRMSNorm(hiddenSize, wPostAttentionNorm, rmsNormEps),
		Attention:         day3.NewQwen2Attention(hiddenSize, numHeads, numKVHeads, wq, bq, wk, bk, wv, bv, wo, maxSeqLen, theta),
		MLP:               day4.NewQwen2MLP(hiddenSize, intermediateSize, wGate, wUp, wDown),
	}
}

// Forward maps x (N x L x HiddenSize) to the same shape; mask as in
// day3.Qwen2Attention.Forward.
func (b *Qwen2TransformerBlock) Forward(x, mask *tensor.Tensor) *tensor.Tensor {
	h := tensor.Add(x, b.Attention.Forward(b.InputNorm.Forward(x), mask))
	return tensor.Add(h, b.MLP.Forward(b.PostAttentionNorm.Forward(h)))
}

// Embedding maps token ids to vectors: row t of Weight (VocabSize x Dim) is
// token t. With tied embeddings the same matrix is the output head.
type Embedding struct {
	VocabSize, Dim int
	Weight         *tensor.Tensor
}

// NewEmbedding keeps the table, in whatever dtype it is stored.
func NewEmbedding(vocabSize, dim int, weight *tensor.Tensor) *Embedding {
	return &Embedding{VocabSize: vocabSize, Dim: dim, Weight: weight}
}

// Forward gathers the rows of a batch of equally long token sequences: B x L
// ids give B x L x Dim float32 vectors.
func (e *Embedding) Forward(tokens [][]int) *tensor.Tensor {
	flat, b, l := flatten(tokens)
	rows := tensor.AsType(tensor.Take(e.Weight, flat, 0), tensor.Float32)
	return tensor.Reshape(rows, b, l, e.Dim)
}

// AsLinear uses the table as an output projection: N.. x Dim vectors give
// N.. x VocabSize scores, one dot product with each token's row.
func (e *Embedding) AsLinear(x *tensor.Tensor) *tensor.Tensor {
	return day1.Linear(x, e.Weight, nil)
}

// flatten checks that every sequence has the same length and concatenates them.
func flatten(tokens [][]int) (flat []int, b, l int) {
	b = len(tokens)
	if b == 0 {
		panic("day5: empty batch of tokens")
	}
	l = len(tokens[0])
	flat = make([]int, 0, b*l)
	for i, seq := range tokens {
		if len(seq) != l {
			panic(fmt.Sprintf("day5: sequence %d has %d tokens, sequence 0 has %d", i, len(seq), l))
		}
		flat = append(flat, seq...)
	}
	return flat, b, l
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
	c := ck.Config
	hd := c.HeadDim()
	qDim, kvDim := c.NumAttentionHeads*hd, c.NumKeyValueHeads*hd
	var err error
	// get loads one tensor and remembers the first error, so the loading code
	// below reads as a list of names and shapes.
	get := func(name string, shape ...int) *tensor.Tensor {
		if err != nil {
			return nil
		}
		var t *tensor.Tensor
		t, err = ck.Tensor(name, shape...)
		return t
	}
	m := &Qwen2ModelWeek1{Config: c}
	m.Embedding = NewEmbedding(c.VocabSize, c.HiddenSize, get("model.embed_tokens.weight", c.VocabSize, c.HiddenSize))
	eps := float32(c.RMSNormEps)
	for i := 0; i < c.NumHiddenLayers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		block := NewQwen2TransformerBlock(c.NumAttentionHeads, c.NumKeyValueHeads, c.HiddenSize, c.IntermediateSize, eps,
			get(p+"self_attn.q_proj.weight", qDim, c.HiddenSize), get(p+"self_attn.q_proj.bias", qDim),
			get(p+"self_attn.k_proj.weight", kvDim, c.HiddenSize), get(p+"self_attn.k_proj.bias", kvDim),
			get(p+"self_attn.v_proj.weight", kvDim, c.HiddenSize), get(p+"self_attn.v_proj.bias", kvDim),
			get(p+"self_attn.o_proj.weight", c.HiddenSize, qDim),
			get(p+"mlp.gate_proj.weight", c.IntermediateSize, c.HiddenSize),
			get(p+"mlp.up_proj.weight", c.IntermediateSize, c.HiddenSize),
			get(p+"mlp.down_proj.weight", c.HiddenSize, c.IntermediateSize),
			get(p+"input_layernorm.weight", c.HiddenSize), get(p+"post_attention_layernorm.weight", c.HiddenSize),
			c.MaxPositionEmbeddings, c.RopeTheta)
		m.Layers = append(m.Layers, block)
	}
	m.Norm = day4.NewRMSNorm(c.HiddenSize, get("model.norm.weight", c.HiddenSize), eps)
	if !c.TieWordEmbeddings {
		m.LMHead = get("lm_head.weight", c.VocabSize, c.HiddenSize)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Forward runs B x L token ids through the model and returns the logits,
// B x L x VocabSize: the scores of every possible next token at every position.
func (m *Qwen2ModelWeek1) Forward(tokens [][]int) *tensor.Tensor {
	return m.head(m.layers(tokens))
}

// ForwardLast is Forward for the last position alone: B x L token ids give B x
// 1 x VocabSize logits, equal to the last position of Forward's. The decoder
// layers still see every token; only the final norm and the output head are
// skipped for the other positions.
func (m *Qwen2ModelWeek1) ForwardLast(tokens [][]int) *tensor.Tensor {
	// Generation only ever samples after the last token, and the output head is
	// the largest matrix of a small model (for Qwen2-0.5B, 136M of its 494M
	// weights), so skipping it for the other L-1 positions saves about a quarter
	// of the work of a prompt. Hugging Face's generate does the same (its
	// logits_to_keep argument).
	h := m.layers(tokens)
	return m.head(tensor.Take(h, []int{h.Dim(1) - 1}, 1))
}

// layers embeds the tokens and runs them through every decoder layer:
// B x L x HiddenSize.
func (m *Qwen2ModelWeek1) layers(tokens [][]int) *tensor.Tensor {
	h := m.Embedding.Forward(tokens)
	l := h.Dim(1)
	var mask *tensor.Tensor
	if l > 1 {
		mask = day3.CausalMask(l, l)
	}
	for _, layer := range m.Layers {
		h = layer.Forward(h, mask)
	}
	return h
}

// head applies the final norm and the output projection to hidden states
// B x P x HiddenSize, giving B x P x VocabSize logits.
func (m *Qwen2ModelWeek1) head(h *tensor.Tensor) *tensor.Tensor {
	h = m.Norm.Forward(h)
	if m.LMHead == nil {
		return m.Embedding.AsLinear(h)
	}
	return day1.Linear(h, m.LMHead, nil)
}
