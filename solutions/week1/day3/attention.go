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
// share one key/value head. q is N.. x H_q x L x D, k and v are N.. x H x S x D
// with H_q a multiple of H; the result is N.. x H_q x L x D. scale 0 means
// 1/sqrt(D); mask is nil or additive, broadcastable to N.. x H_q x L x S.
//
// Query heads are grouped as N.. x H x G x L x D and keys viewed as
// N.. x H x 1 x S x D, so the matrix product broadcasts each key head over its
// G query heads instead of copying it G times.
func ScaledDotProductAttentionGrouped(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor) *tensor.Tensor {
	qs, ks := q.Shape(), k.Shape()
	nd := len(qs)
	hq, l, d := qs[nd-3], qs[nd-2], qs[nd-1]
	h, s := ks[nd-3], ks[nd-2]
	if hq%h != 0 {
		panic(fmt.Sprintf("day3.ScaledDotProductAttentionGrouped: %d query heads are not a multiple of %d key/value heads", hq, h))
	}
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(d)))
	}
	batch := qs[:nd-3]
	// withBatch prepends the batch dims to the trailing dims of a new shape.
	withBatch := func(dims ...int) []int { return append(append([]int{}, batch...), dims...) }
	g := hq / h
	qg := tensor.Reshape(q, withBatch(h, g, l, d)...)
	kg := tensor.Reshape(k, withBatch(h, 1, s, d)...)
	vg := tensor.Reshape(v, withBatch(h, 1, s, d)...)
	scores := tensor.MatmulT(qg, kg) // N.. x H x G x L x S
	scores = tensor.MulScalar(tensor.Reshape(scores, withBatch(hq, l, s)...), scale)
	if mask != nil {
		scores = tensor.Add(scores, mask)
	}
	probs := tensor.Reshape(day1.Softmax(scores, -1), withBatch(h, g, l, s)...)
	out := tensor.Matmul(probs, vg) // N.. x H x G x L x D
	return tensor.Reshape(out, qs...)
}

// CausalMask returns the L x S additive mask of causal attention, aligned to
// the bottom right: query row i (the (S-L+i)-th token) sees key columns
// j <= i + S - L. Visible entries are 0, hidden ones -Inf.
func CausalMask(l, s int) *tensor.Tensor {
	m := tensor.Zeros(l, s)
	data := m.Data()
	inf := float32(math.Inf(-1))
	for i := 0; i < l; i++ {
		for j := i + s - l + 1; j < s; j++ {
			data[i*s+j] = inf
		}
	}
	return m
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
	n, l := x.Dim(0), x.Dim(1)
	// Project and split heads: N x L x heads x D, the layout RoPE expects.
	project := func(w, b *tensor.Tensor, heads int) *tensor.Tensor {
		return tensor.Reshape(day1.Linear(x, w, b), n, l, heads, a.HeadDim)
	}
	q := a.RoPE.Forward(project(a.WQ, a.BQ, a.NumHeads), nil)
	k := a.RoPE.Forward(project(a.WK, a.BK, a.NumKVHeads), nil)
	v := project(a.WV, a.BV, a.NumKVHeads)
	// Heads before positions: N x heads x L x D.
	q, k, v = tensor.Transpose(q, 0, 2, 1, 3), tensor.Transpose(k, 0, 2, 1, 3), tensor.Transpose(v, 0, 2, 1, 3)
	o := ScaledDotProductAttentionGrouped(q, k, v, 0, mask)
	o = tensor.Reshape(tensor.Transpose(o, 0, 2, 1, 3), n, l, a.NumHeads*a.HeadDim)
	return day1.Linear(o, a.WO, nil)
}
