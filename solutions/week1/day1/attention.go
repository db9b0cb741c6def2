// Package day1 is the reference solution of Week 1 Day 1: softmax, the linear
// layer, scaled dot-product attention and multi-head attention.
package day1

import (
	"fmt"
	"math"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Softmax normalises x along axis into probabilities: exp(x) / sum(exp(x)). It
// must stay finite for inputs in the hundreds (float32 exp overflows above
// about 88.7). axis may be negative, counting from the last axis.
func Softmax(x *tensor.Tensor, axis int) *tensor.Tensor {
	// Subtracting the maximum first changes nothing mathematically (the factor
	// exp(-max) cancels) but keeps exp from overflowing: float32 exp is +Inf
	// above about 88.7, and Inf/Inf is NaN.
	shifted := tensor.Sub(x, tensor.Max(x, axis, true))
	e := tensor.Exp(shifted)
	return tensor.Div(e, tensor.Sum(e, axis, true))
}

// Linear computes x·wᵀ + b for x of shape N.. x I, w of shape O x I (the
// PyTorch [out, in] layout) and an optional bias b of shape O (nil for none).
// The result has shape N.. x O.
func Linear(x, w, b *tensor.Tensor) *tensor.Tensor {
	shape := x.Shape()
	// Fold every batch dimension into rows so one matrix product does the work.
	rows := tensor.Reshape(x, -1, shape[len(shape)-1])
	y := tensor.MatmulT(rows, w)
	if b != nil {
		y = tensor.Add(y, b)
	}
	shape[len(shape)-1] = w.Dim(0) // N.. x O
	return tensor.Reshape(y, shape...)
}

// ScaledDotProductAttentionSimple computes softmax(q·kᵀ·scale + mask)·v.
//
// Shapes: q is N.. x L x D, k and v are N.. x S x D, and the result is
// N.. x L x D. A scale of 0 means the usual 1/sqrt(D). mask is nil or an
// additive mask broadcastable to N.. x L x S: 0 where a query may look at a
// key, -Inf where it may not.
func ScaledDotProductAttentionSimple(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor) *tensor.Tensor {
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(q.Dim(-1))))
	}
	// The formula, for some of the query rows: N.. x rows x D in, the same out.
	attend := func(q, mask *tensor.Tensor) *tensor.Tensor {
		scores := tensor.MatmulT(q, k) // N.. x rows x S, a new tensor of our own
		if softmaxInPlace(scores, scale, mask) {
			return tensor.Matmul(scores, v)
		}
		scores = tensor.MulScalar(scores, scale)
		if mask != nil {
			scores = tensor.Add(scores, mask)
		}
		return tensor.Matmul(Softmax(scores, -1), v)
	}
	return inQueryBlocks(q, k, mask, attend)
}

// softmaxInPlace turns raw scores (N.. x rows x S) into attention weights
// where they lie: each row is scaled, gets its mask row added, and goes
// through Softmax's steps (subtract the maximum, exponentiate, divide by the
// sum) in one visit while it is in the CPU's cache. Composing the
// whole-tensor operations instead makes five more score-sized tensors, which
// at a long context are most of what a forward pass allocates. It handles a
// mask shared by every leading index (rows x S, or one row of S) and
// reports false, changing nothing, for any other broadcast.
func softmaxInPlace(scores *tensor.Tensor, scale float32, mask *tensor.Tensor) bool {
	s := scores.Dim(-1)
	rows := scores.Size() / max(s, 1)
	var md []float32
	maskRows := 1
	if mask != nil {
		// Only the last two axes may be other than 1: a per-batch or
		// per-head mask takes the general path.
		if mask.NDim() >= 2 {
			maskRows = mask.Dim(-2)
		}
		if mask.Dim(-1) != s || mask.Size() != maskRows*s || (maskRows != 1 && maskRows != scores.Dim(-2)) {
			return false
		}
		md = mask.Data()
	}
	data := scores.Data()
	tensor.ParallelRows(rows, s, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := data[r*s : (r+1)*s]
			var m []float32
			if md != nil {
				m = md[(r%maskRows)*s : (r%maskRows+1)*s]
			}
			// Scaled, masked, less the row's maximum, exponentiated:
			tensor.ExpScaled(row, m, scale)
			var sum float64 // as tensor.Sum adds: in float64, rounded once
			for _, x := range row {
				sum += float64(x)
			}
			total := float32(sum)
			for j := range row {
				row[j] /= total
			}
		}
	})
	return true
}

// MultiHeadAttention is multi-head attention without biases, like PyTorch's
// nn.MultiheadAttention(bias=False, batch_first=True). Each weight is
// Hidden x Hidden in the [out, in] layout.
type MultiHeadAttention struct {
	Hidden, Heads  int
	WQ, WK, WV, WO *tensor.Tensor
}

// NewMultiHeadAttention keeps the weights of a layer with the given hidden
// size and number of heads; hidden must be a multiple of heads.
func NewMultiHeadAttention(hidden, heads int, wq, wk, wv, wo *tensor.Tensor) *MultiHeadAttention {
	if heads <= 0 || hidden%heads != 0 {
		panic(fmt.Sprintf("day1.NewMultiHeadAttention: hidden size %d is not a multiple of %d heads", hidden, heads))
	}
	return &MultiHeadAttention{Hidden: hidden, Heads: heads, WQ: wq, WK: wk, WV: wv, WO: wo}
}

// Forward attends query (N x L x E) over key and value (N x S x E) and returns
// N x L x E. mask is nil or an additive L x S mask shared by every head.
func (m *MultiHeadAttention) Forward(query, key, value, mask *tensor.Tensor) *tensor.Tensor {
	headDim := m.Hidden / m.Heads
	// Project, then split E into Heads x D and move heads before the sequence
	// axis so each head is an independent batch entry: N x H x L x D.
	split := func(x, w *tensor.Tensor) *tensor.Tensor {
		y := tensor.Unflatten(Linear(x, w, nil), -1, m.Heads, headDim) // N x L x H x D
		return tensor.Transpose(y, 0, 2, 1, 3)
	}
	q, k, v := split(query, m.WQ), split(key, m.WK), split(value, m.WV)
	o := ScaledDotProductAttentionSimple(q, k, v, 0, mask)      // N x H x L x D
	o = tensor.Flatten(tensor.Transpose(o, 0, 2, 1, 3), -2, -1) // N x L x E
	return Linear(o, m.WO, nil)
}
