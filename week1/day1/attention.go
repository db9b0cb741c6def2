// Package day1 is Week 1 Day 1 of the course: softmax, the linear layer,
// scaled dot-product attention and multi-head attention. The guide's chapter
// "Week 1 Day 1: attention" explains each task; grade your work with
// `make check-w1d1`.
package day1

import (
	"fmt"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Softmax normalises x along axis into probabilities: exp(x) / sum(exp(x)). It
// must stay finite for inputs in the hundreds (float32 exp overflows above
// about 88.7). axis may be negative, counting from the last axis.
func Softmax(x *tensor.Tensor, axis int) *tensor.Tensor {
	// Your code here (W1D1).
	panic("TODO(W1D1): implement Softmax")
}

// Linear computes x·wᵀ + b for x of shape N.. x I, w of shape O x I (the
// PyTorch [out, in] layout) and an optional bias b of shape O (nil for none).
// The result has shape N.. x O.
func Linear(x, w, b *tensor.Tensor) *tensor.Tensor {
	// Your code here (W1D1).
	panic("TODO(W1D1): implement Linear")
}

// ScaledDotProductAttentionSimple computes softmax(q·kᵀ·scale + mask)·v.
//
// Shapes: q is N.. x L x D, k and v are N.. x S x D, and the result is
// N.. x L x D. A scale of 0 means the usual 1/sqrt(D). mask is nil or an
// additive mask broadcastable to N.. x L x S: 0 where a query may look at a
// key, -Inf where it may not.
func ScaledDotProductAttentionSimple(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor) *tensor.Tensor {
	// Your code here (W1D1).
	panic("TODO(W1D1): implement ScaledDotProductAttentionSimple")
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
	// Provided: nothing to write here.
	if heads <= 0 || hidden%heads != 0 {
		panic(fmt.Sprintf("day1.NewMultiHeadAttention: hidden size %d is not a multiple of %d heads", hidden, heads))
	}
	return &MultiHeadAttention{Hidden: hidden, Heads: heads, WQ: wq, WK: wk, WV: wv, WO: wo}
}

// Forward attends query (N x L x E) over key and value (N x S x E) and returns
// N x L x E. mask is nil or an additive L x S mask shared by every head.
func (m *MultiHeadAttention) Forward(query, key, value, mask *tensor.Tensor) *tensor.Tensor {
	// Your code here (W1D1).
	// Project with Linear, split E into Heads x D (tensor.Unflatten), move the
	// head axis before the sequence axis, attend, and undo the split
	// (tensor.Flatten) before the output projection.
	panic("TODO(W1D1): implement MultiHeadAttention.Forward")
}
