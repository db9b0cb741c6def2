// Package day3 is Week 2 Day 3: computing on MLX affine-quantized weights
// without widening them, and the Week 2 model on a quantized checkpoint.
// Graded by `make check-w2d3`.
package day3

import (
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// PackedWeight is an Out x In weight as an MLX affine checkpoint stores it:
// Bits-bit codes packed into uint32 words, low bits first, and a scale and a
// bias per GroupSize inputs of each row. It is declared in
// internal/checkpoint, which reads it from the file.
type PackedWeight = checkpoint.PackedWeight

// Dequantize returns w as a new float32 Out x In tensor: element (r, j) is
// q·scale + bias, q the code of input j of row r, scale and bias those of
// its group, j/GroupSize. The scales are used as stored (they may be
// negative).
func Dequantize(w *PackedWeight) *tensor.Tensor {
	// Your code here (W2D3).
	// w.Words holds Out rows of In·Bits/32 words; value k of a word is
	// (word >> (Bits·k)) & (2^Bits - 1). w.Scales.Data() and
	// w.Biases.Data() are Out x In/GroupSize, row-major.
	panic("TODO(W2D3): implement Dequantize")
}

// QuantizedMatmul returns x·wᵀ for x of shape N.. x In: N.. x Out. It reads
// the packed words directly, one group at a time, and never builds the float
// weights. It panics if x's last axis is not w.In.
func QuantizedMatmul(x *tensor.Tensor, w *PackedWeight) *tensor.Tensor {
	// Your code here (W2D3).
	// Per output row and group: decode the group's codes, sum q·x over it,
	// then add scale·(that sum) + bias·(the group's sum of x).
	panic("TODO(W2D3): implement QuantizedMatmul")
}

// QuantizedLinear is Week 1's Linear with a packed weight: x·wᵀ + b for x
// of shape N.. x In, giving N.. x Out. b (Out values) may be nil.
func QuantizedLinear(x *tensor.Tensor, w *PackedWeight, b *tensor.Tensor) *tensor.Tensor {
	// Your code here (W2D3).
	panic("TODO(W2D3): implement QuantizedLinear")
}
