// Package day4 is the reference solution of Week 1 Day 4: RMSNorm, SiLU and
// Qwen2's SwiGLU MLP.
package day4

import (
	"math"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day1"
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
	return &RMSNorm{Dim: dim, Weight: weight, Eps: eps}
}

// Forward normalises x of shape N.. x Dim, accumulating the mean of squares in
// at least float32.
func (n *RMSNorm) Forward(x *tensor.Tensor) *tensor.Tensor {
	// tensor.Mean sums in float64: squares of activations in the hundreds or
	// thousands overflow float16 and lose digits in bfloat16, which is why Qwen2
	// upcasts here.
	meanSquare := tensor.Mean(tensor.Square(x), -1, true)
	inv := tensor.Rsqrt(tensor.AddScalar(meanSquare, n.Eps))
	return tensor.Mul(tensor.Mul(x, inv), n.Weight)
}

// SiLU is x·sigmoid(x), computed without overflow for any finite x (inputs of
// ±1000 must give finite results).
func SiLU(x *tensor.Tensor) *tensor.Tensor {
	// The chapter builds SiLU as a scalar function applied with tensor.Map (see
	// silu below, which the tests also grade). The reference runs the substrate's
	// Sigmoid instead: a vector kernel that computes eight values per instruction
	// and clamps its input, so its exponential never overflows by accident. At
	// Qwen2-0.5B scale the scalar version, one float64 math.Exp per activation,
	// costs about a tenth of a prefill.
	return tensor.Mul(x, tensor.Sigmoid(x))
}

// silu is the scalar form, for tensor.Map. It picks the form of sigmoid
// whose exp cannot overflow: for x < 0, exp(x)/(1+exp(x)); otherwise
// 1/(1+exp(-x)). Either way exp's argument is <= 0.
func silu(x float32) float32 {
	v := float64(x)
	if v < 0 {
		e := math.Exp(v)
		return float32(v * e / (1 + e))
	}
	return float32(v / (1 + math.Exp(-v)))
}

// Qwen2MLP is the SwiGLU feed-forward block: down(silu(gate(x)) · up(x)),
// with no biases. WGate and WUp are HiddenDim x Dim, WDown is Dim x HiddenDim.
type Qwen2MLP struct {
	Dim, HiddenDim    int
	WGate, WUp, WDown *tensor.Tensor
}

// NewQwen2MLP keeps the three projection weights.
func NewQwen2MLP(dim, hiddenDim int, wGate, wUp, wDown *tensor.Tensor) *Qwen2MLP {
	return &Qwen2MLP{Dim: dim, HiddenDim: hiddenDim, WGate: wGate, WUp: wUp, WDown: wDown}
}

// Forward maps x of shape N.. x Dim to N.. x Dim.
func (m *Qwen2MLP) Forward(x *tensor.Tensor) *tensor.Tensor {
	// Linear(x, WGate) and Linear(x, WUp) in one pass: in a decode step
	// the two products share one hand-off to the cores.
	gu := tensor.MatmulTEach(x, m.WGate, m.WUp)
	// SiLU(gate)·up is written over gate, a product this MLP just made: the
	// same values as tensor.Mul(SiLU(gate), up) without the three
	// N.. x HiddenDim tensors that composing them makes.
	return day1.Linear(tensor.SwiGLUInPlace(gu[0], gu[1]), m.WDown, nil)
}
