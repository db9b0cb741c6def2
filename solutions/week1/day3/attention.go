// Package day3 is the reference solution of Week 1 Day 3: grouped-query
// attention, the causal mask, and Qwen2's attention layer.
package day3

import (
	"fmt"
	"math"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day1"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day2"
)

// ScaledDotProductAttentionGrouped is attention where several query heads
// share one key/value head. q is N.. x H_q x L x D, k and v are N.. x H x S x
// D with H_q a multiple of H; the result is N.. x H_q x L x D. scale 0 means
// 1/sqrt(D); mask is nil or additive, broadcastable to N.. x H_q x L x S. k
// and v are never copied once per query head.
func ScaledDotProductAttentionGrouped(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor) *tensor.Tensor {
	// Query heads are grouped as N.. x H x G x L x D and keys viewed as N.. x H x
	// 1 x S x D, so the matrix product broadcasts each key head over its G query
	// heads. In that layout it is Day 1's attention, which the reference reuses
	// (with its blocks of query rows).
	hq, h := q.Dim(-3), k.Dim(-3)
	if hq%h != 0 {
		panic(fmt.Sprintf("day3.ScaledDotProductAttentionGrouped: %d query heads are not a multiple of %d key/value heads", hq, h))
	}
	g := hq / h
	qg := tensor.Unflatten(q, -3, h, g) // N.. x H x G x L x D
	kg := tensor.ExpandDims(k, -3)      // N.. x H x 1 x S x D
	vg := tensor.ExpandDims(v, -3)
	// A mask with a head axis splits it the same way: H_q heads become
	// H x G, and a single broadcast head becomes 1 x 1.
	if mask != nil && mask.NDim() >= 3 {
		if mask.Dim(-3) == 1 {
			mask = tensor.ExpandDims(mask, -3)
		} else {
			mask = tensor.Unflatten(mask, -3, h, g)
		}
	}
	out := day1.ScaledDotProductAttentionSimple(qg, kg, vg, scale, mask) // N.. x H x G x L x D
	return tensor.Flatten(out, -4, -3)
}

// CausalMask returns the L x S additive mask of causal attention, aligned to
// the bottom right: query row i (the (S-L+i)-th token) sees key columns j <= i
// + S - L. Visible entries are 0, hidden ones -Inf.
func CausalMask(l, s int) *tensor.Tensor {
	// Row i hides columns from i + S - L + 1 on: the diagonals above S - L.
	return tensor.Triu(tensor.Full(float32(math.Inf(-1)), l, s), s-l+1)
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
	if numHeads%numKVHeads != 0 || hiddenSize%numHeads != 0 {
		panic(fmt.Sprintf("day3.NewQwen2Attention: hidden %d, %d heads, %d kv heads do not divide", hiddenSize, numHeads, numKVHeads))
	}
	headDim := hiddenSize / numHeads
	return &Qwen2Attention{
		HiddenSize: hiddenSize, NumHeads: numHeads, NumKVHeads: numKVHeads, HeadDim: headDim,
		WQ: wq, BQ: bq, WK: wk, BK: bk, WV: wv, BV: bv, WO: wo,
		RoPE: day2.NewRoPE(headDim, maxSeqLen, theta, false),
	}
}

// Forward maps x (N x L x HiddenSize) to N x L x HiddenSize. Positions start at
// 0; mask is nil or an additive L x L mask (CausalMask for a decoder).
func (a *Qwen2Attention) Forward(x, mask *tensor.Tensor) *tensor.Tensor {
	// Project and split heads: N x L x heads x D, the layout RoPE expects.
	project := func(w, b *tensor.Tensor, heads int) *tensor.Tensor {
		return tensor.Unflatten(day1.Linear(x, w, b), -1, heads, a.HeadDim)
	}
	q := a.RoPE.Forward(project(a.WQ, a.BQ, a.NumHeads), nil)
	k := a.RoPE.Forward(project(a.WK, a.BK, a.NumKVHeads), nil)
	v := project(a.WV, a.BV, a.NumKVHeads)
	// Heads before positions: N x heads x L x D.
	q, k, v = tensor.Transpose(q, 0, 2, 1, 3), tensor.Transpose(k, 0, 2, 1, 3), tensor.Transpose(v, 0, 2, 1, 3)
	o := ScaledDotProductAttentionGrouped(q, k, v, 0, mask)
	o = tensor.Flatten(tensor.Transpose(o, 0, 2, 1, 3), -2, -1) // N x L x E
	return day1.Linear(o, a.WO, nil)
}
