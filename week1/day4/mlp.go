// Package day4 is Week 1 Day 4 of the course: RMSNorm, SiLU and Qwen2's
// SwiGLU MLP. The guide's chapter "Week 1 Day 4" explains the tasks; grade
// your work with `make check-w1d4`.
package day4

import (
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// RMSNorm scales each row of the last axis to unit root-mean-square, then by
// a learned weight: y = x / sqrt(mean(x²) + Eps) · Weight.
type RMSNorm struct {
	Dim    int
	Weight *tensor.Tensor
	Eps    float32
}

// NewRMSNorm keeps the layer's weight (shape Dim) and epsilon.
func NewRMSNorm(dim int, weight *tensor.Tensor, eps float32) *RMSNorm {
	// Provided: nothing to write here.
	return &RMSNorm{Dim: dim, Weight: weight, Eps: eps}
}

// Forward normalises x of shape N.. x Dim, accumulating the mean of squares in
// at least float32.
func (n *RMSNorm) Forward(x *tensor.Tensor) *tensor.Tensor {
	// Your code here (W1D4).
	panic("TODO(W1D4): implement RMSNorm.Forward")
}

// SiLU is x·sigmoid(x), computed without overflow for any finite x (inputs of
// ±1000 must give finite results).
func SiLU(x *tensor.Tensor) *tensor.Tensor {
	// Your code here (W1D4).
	panic("TODO(W1D4): implement SiLU")
}

// Qwen2MLP is the SwiGLU feed-forward block: down(silu(gate(x)) · up(x)),
// with no biases. WGate and WUp are HiddenDim x Dim, WDown is Dim x HiddenDim.
type Qwen2MLP struct {
	Dim, HiddenDim    int
	WGate, WUp, WDown *tensor.Tensor
}

// NewQwen2MLP keeps the three projection weights.
func NewQwen2MLP(dim, hiddenDim int, wGate, wUp, wDown *tensor.Tensor) *Qwen2MLP {
	// Provided: nothing to write here.
	return &Qwen2MLP{Dim: dim, HiddenDim: hiddenDim, WGate: wGate, WUp: wUp, WDown: wDown}
}

// Forward maps x of shape N.. x Dim to N.. x Dim.
func (m *Qwen2MLP) Forward(x *tensor.Tensor) *tensor.Tensor {
	// Your code here (W1D4).
	panic("TODO(W1D4): implement Qwen2MLP.Forward")
}
