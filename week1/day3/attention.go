// Package day3 is Week 1 Day 3 of the course: grouped-query attention, the
// causal mask, and Qwen2's attention layer. The guide's chapter "Week 1 Day 3"
// explains the tasks; grade your work with `make check-w1d3`.
package day3

import (
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/week1/day2"
)

// ScaledDotProductAttentionGrouped is attention where several query heads
// share one key/value head. q is N.. x H_q x L x D, k and v are N.. x H x S x
// D with H_q a multiple of H; the result is N.. x H_q x L x D. scale 0 means
// 1/sqrt(D); mask is nil or additive, broadcastable to N.. x H_q x L x S. k
// and v are never copied once per query head.
func ScaledDotProductAttentionGrouped(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor) *tensor.Tensor {
	// Your code here (W1D3).
	// Reshape so that the matrix product broadcasts k and v: N.. x H x G x L x D
	// against N.. x H x 1 x S x D, with tensor.Unflatten and tensor.ExpandDims.
	panic("TODO(W1D3): implement ScaledDotProductAttentionGrouped")
}

// CausalMask returns the L x S additive mask of causal attention, aligned to
// the bottom right: query row i (the (S-L+i)-th token) sees key columns j <= i
// + S - L. Visible entries are 0, hidden ones -Inf.
func CausalMask(l, s int) *tensor.Tensor {
	// Your code here (W1D3).
	// tensor.Triu of a tensor full of -Inf builds it in one call, given the right
	// diagonal.
	panic("TODO(W1D3): implement CausalMask")
}

// Qwen2Attention is the attention layer of Qwen2: q/k/v projections with
// biases, RoPE (non-traditional) on queries and keys, grouped-query attention
// and an output projection without bias.
type Qwen2Attention struct {
	HiddenSize, NumHeads, NumKVHeads, HeadDim int
	WQ, BQ, WK, BK, WV, BV, WO                *tensor.Tensor
	RoPE                                      *day2.RoPE
}

// NewQwen2Attention builds the layer from its weights (PyTorch [out, in]
// layout): wq is NumHeads·HeadDim x HiddenSize, wk and wv NumKVHeads·HeadDim x
// HiddenSize, wo HiddenSize x NumHeads·HeadDim. maxSeqLen bounds the RoPE table.
func NewQwen2Attention(hiddenSize, numHeads, numKVHeads int, wq, bq, wk, bk, wv, bv, wo *tensor.Tensor, maxSeqLen int, theta float64) *Qwen2Attention {
	// Your code here (W1D3).
	panic("TODO(W1D3): implement NewQwen2Attention")
}

// Forward maps x (N x L x HiddenSize) to N x L x HiddenSize. Positions start at
// 0; mask is nil or an additive L x L mask (CausalMask for a decoder).
func (a *Qwen2Attention) Forward(x, mask *tensor.Tensor) *tensor.Tensor {
	// Your code here (W1D3).
	panic("TODO(W1D3): implement Qwen2Attention.Forward")
}
