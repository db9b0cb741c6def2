// Package day3 is the reference solution of Week 2 Day 3: computing on MLX
// affine-quantized weights without widening them, and the Week 2 model on a
// quantized checkpoint. Graded by `make check-w2d3`.
package day3

import (
	"fmt"

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
	s, b := w.Scales.Data(), w.Biases.Data()
	per := 32 / w.Bits
	groups := w.In / w.GroupSize
	out := make([]float32, w.Out*w.In)
	mask := uint32(1)<<w.Bits - 1
	for r := range w.Out {
		row := out[r*w.In : (r+1)*w.In]
		words := w.Words[r*w.In/per : (r+1)*w.In/per]
		for j := range row {
			q := float32(words[j/per] >> (w.Bits * (j % per)) & mask)
			g := r*groups + j/w.GroupSize
			row[j] = q*s[g] + b[g]
		}
	}
	return tensor.New(out, w.Out, w.In)
}

// QuantizedMatmul returns x·wᵀ for x of shape N.. x In: N.. x Out. It reads
// the packed words directly, one group at a time, and never builds the float
// weights. It panics if x's last axis is not w.In.
func QuantizedMatmul(x *tensor.Tensor, w *PackedWeight) *tensor.Tensor {
	if x.NDim() == 0 || x.Dim(-1) != w.In {
		panic(fmt.Sprintf("day3.QuantizedMatmul: x of shape %v has %d inputs on its last axis, the weight (%d x %d) takes %d",
			x.Shape(), lastDim(x), w.Out, w.In, w.In))
	}
	// The engine's kernels do the work: internal/tensor/packed.go has the
	// portable loop that this function describes (one group of codes at a
	// time, the scale applied per group and the bias through the group's
	// sum of x), and vector versions of it for amd64 and arm64 that decode
	// the codes in registers. Scales and biases are used as float32: they
	// are the stored ones when the model has widened them at load.
	return tensor.MatmulPacked(x, packedMatrix(w))
}

// packedMatrix is w as the engine's kernels take it.
func packedMatrix(w *PackedWeight) *tensor.PackedMatrix {
	return &tensor.PackedMatrix{Out: w.Out, In: w.In, Bits: w.Bits, GroupSize: w.GroupSize,
		Words: w.Words, Scales: float32s(w.Scales), Biases: float32s(w.Biases)}
}

// float32s returns t's values as float32, without a copy when they are.
func float32s(t *tensor.Tensor) []float32 { return tensor.AsFloat32(t).Data() }

func lastDim(x *tensor.Tensor) int {
	if x.NDim() == 0 {
		return 0
	}
	return x.Dim(-1)
}

// QuantizedLinear is Week 1's Linear with a packed weight: x·wᵀ + b for x
// of shape N.. x In, giving N.. x Out. b (Out values) may be nil.
func QuantizedLinear(x *tensor.Tensor, w *PackedWeight, b *tensor.Tensor) *tensor.Tensor {
	y := QuantizedMatmul(x, w)
	if b == nil {
		return y
	}
	if b.Size() != w.Out {
		panic(fmt.Sprintf("day3.QuantizedLinear: a bias of %d values for a weight of %d outputs", b.Size(), w.Out))
	}
	return tensor.Add(y, b)
}
