// Package quantize turns a Hugging Face Qwen2 checkpoint (bf16, f16 or f32)
// into an MLX affine-quantized one, the format mlx-lm writes and
// internal/checkpoint reads: each Linear and Embedding weight becomes
// uint32 words of Bits-bit codes with a scale and a bias per group of
// GroupSize inputs.
package quantize

import (
	"fmt"
	"math"
)

// Supported reports whether bits and groupSize are a quantization this
// package writes (and the engine reads): 4 or 8 bits, groups of 32, 64 or
// 128 inputs, MLX's own choices for the affine mode.
func Supported(bits, groupSize int) bool {
	return (bits == 4 || bits == 8) && (groupSize == 32 || groupSize == 64 || groupSize == 128)
}

// Affine quantizes w, a row-major matrix whose rows are a multiple of
// groupSize long, group by group as MLX's affine quantization does, and
// returns the packed codes (32/bits to a word, lowest bits first), and each
// group's scale and bias in float32. MLX stores the scale and bias in the
// weight's dtype: the caller rounds them to it; the codes are computed from
// the float32 values, as MLX computes them.
//
// All arithmetic is float32, in MLX's order, so that the result is MLX's
// to the bit. For a group with minimum lo and maximum hi:
//
//   - the scale is (hi − lo)/(2^bits − 1), at least 1e-7, and its sign is
//     chosen so that the value of larger magnitude (the "edge") is code 0:
//     positive when |lo| > |hi|, negative otherwise;
//   - the edge is rounded to a whole number q0 of scales and the scale is
//     set to edge/q0, so that the edge itself is represented exactly (the
//     bias is the edge); when q0 rounds to 0 the bias is 0 and the scale
//     stays;
//   - each value's code is round((w − bias)/scale), ties to even, clamped
//     to 0 … 2^bits − 1.
//
// The one error is a value that makes a code undefined: NaN, ±Inf, or a
// group of one value so large that edge/1e-7 overflows float32; it names
// the index of the first such value.
func Affine(w []float32, groupSize, bits int) (words []uint32, scales, biases []float32, err error) {
	if len(w)%groupSize != 0 {
		return nil, nil, nil, fmt.Errorf("quantize: %d values are not whole groups of %d", len(w), groupSize)
	}
	groups := len(w) / groupSize
	words = make([]uint32, len(w)*bits/32)
	scales = make([]float32, groups)
	biases = make([]float32, groups)
	if at, err := affineInto(w, groupSize, bits, words, scales, biases); err != nil {
		return nil, nil, nil, fmt.Errorf("value %d: %w", at, err)
	}
	return words, scales, biases, nil
}

// affineInto is Affine writing into slices of the right sizes. An error
// comes with the index of the value it is about.
func affineInto(w []float32, groupSize, bits int, words []uint32, scales, biases []float32) (int, error) {
	nBins := float32(int(1)<<bits - 1)
	const eps = float32(1e-7)
	perWord := 32 / bits
	for g := range scales {
		group := w[g*groupSize : (g+1)*groupSize]
		lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
		for j, v := range group {
			if v != v || math.IsInf(float64(v), 0) {
				return g*groupSize + j, fmt.Errorf("%v has no quantized code", v)
			}
			// As C++'s std::max and std::min: the first of two equal values
			// (0 and -0) is kept.
			if hi < v {
				hi = v
			}
			if v < lo {
				lo = v
			}
		}
		positive := abs32(lo) > abs32(hi)
		scale := (hi - lo) / nBins
		if scale < eps {
			scale = eps
		}
		edge := hi
		if positive {
			edge = lo
		} else {
			scale = -scale
		}
		q0 := roundEven(edge / scale)
		var bias float32
		if q0 != 0 {
			scale = edge / q0
			bias = edge
		}
		if scale == 0 || math.IsInf(float64(q0), 0) {
			return g * groupSize, fmt.Errorf("a group of %d values all %v, too large in magnitude to quantize", groupSize, edge)
		}
		scales[g], biases[g] = scale, bias
		out := words[g*groupSize/perWord : (g+1)*groupSize/perWord]
		for i := range out {
			var word uint32
			for k, v := range group[i*perWord : (i+1)*perWord] {
				code := roundEven((v - bias) / scale)
				code = min(max(code, 0), nBins)
				word |= uint32(code) << (k * bits)
			}
			out[i] = word
		}
	}
	return 0, nil
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// roundEven rounds to the nearest whole number, ties to even, as C's rint
// does in the default rounding mode. Exact: a float32 is a float64.
func roundEven(x float32) float32 { return float32(math.RoundToEven(float64(x))) }
