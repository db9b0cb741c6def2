// Package w2d3 holds the checks of Week 2 Day 3 (computing on MLX
// affine-quantized weights), shared by the learner tree and the solutions.
// Every expected value comes from MLX (refgen/w2d3.py).
package w2d3

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

const day = "w2d3"

// The signatures of the day's functions.
type (
	DequantizeFunc = func(w *checkpoint.PackedWeight) *tensor.Tensor
	MatmulFunc     = func(x *tensor.Tensor, w *checkpoint.PackedWeight) *tensor.Tensor
	LinearFunc     = func(x *tensor.Tensor, w *checkpoint.PackedWeight, b *tensor.Tensor) *tensor.Tensor
)

// Embedding is what the day's Embedding offers.
type Embedding interface {
	Forward(tokens [][]int) *tensor.Tensor
	AsLinear(x *tensor.Tensor) *tensor.Tensor
}

// dequantTol: one multiply and one add per element, in float32 on both
// sides; a compiler may fuse them into one rounding, MLX may not.
var dequantTol = grade.Tol{RTol: 1e-6, ATol: 1e-6}

// productTol reads the case's atol: refgen scales it with the largest sum
// of |x_j·w_j| of the case, because the rounding of a float32 sum grows
// with the magnitudes summed and MLX adds in another order than Go.
func productTol(t *testing.T, c *fixture.Case) grade.Tol {
	return grade.Tol{RTol: 1e-5, ATol: grade.MustFloat(t, c, "atol")}
}

// Dequantize checks Task 1 against mx.dequantize: random weights quantized
// by mx.quantize (bits 4 and 8, groups of 64 and 128, some negative
// scales), 45 x 256.
func Dequantize(t *testing.T, dequantize DequantizeFunc) {
	const task = "W2D3 Task 1 Dequantize"
	grade.Cases(t, task, day, "dequantize", func(t *testing.T, c *fixture.Case) {
		p := fixtureWeight(t, c)
		what := fmt.Sprintf("%s, case %s (%s)", task, c.Name, describe(p))
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return dequantize(p) }, grade.In("scales", p.Scales), grade.In("biases", p.Biases))
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), dequantTol, grade.Suspects(dequantizeSuspects(p)...))
	})
}

// DequantizeReal checks Task 1 on the projections of Qwen2-0.5B (generated
// weights, see gen.go): four rows of the result against mx.dequantize.
func DequantizeReal(t *testing.T, dequantize DequantizeFunc) {
	const task = "W2D3 Task 1 Dequantize, Qwen2-0.5B shapes"
	grade.Cases(t, task, day, "dequantize_real", func(t *testing.T, c *fixture.Case) {
		p := realWeight(t, c)
		what := fmt.Sprintf("%s, case %s (%s)", task, c.Name, describe(p))
		got := dequantize(p)
		if got == nil || got.NDim() != 2 || got.Dim(0) != p.Out || got.Dim(1) != p.In {
			t.Fatalf("%s: got shape %v, want [%d %d] (Out x In)", what, shapeOf(got), p.Out, p.In)
		}
		rows := grade.MustInts(t, c, "rows")
		grade.AllClose(t, what+fmt.Sprintf(", rows %v", rows), tensor.Take(got, rows, 0), grade.MustTensor(t, c, "out_rows"), dequantTol,
			grade.Suspects(dequantizeSuspects(p)...))
	})
}

// Matmul checks Task 2 against mx.quantized_matmul(x, w, scales, biases,
// transpose=True): 1, 3 and 17 rows of x (the 17 with a batch axis in
// front), for each format.
func Matmul(t *testing.T, matmul MatmulFunc) {
	const task = "W2D3 Task 2 QuantizedMatmul"
	grade.Cases(t, task, day, "matmul", func(t *testing.T, c *fixture.Case) {
		p := fixtureWeight(t, c)
		x := grade.MustTensor(t, c, "x")
		what := fmt.Sprintf("%s, case %s (x %v, w %s)", task, c.Name, x.Shape(), describe(p))
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return matmul(x, p) }, grade.In("x", x))
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), productTol(t, c), grade.Suspects(matmulSuspects(x, p)...))
	})
}

// MatmulReal checks Task 2 on the projections of Qwen2-0.5B, with 1 and 3
// rows of x.
func MatmulReal(t *testing.T, matmul MatmulFunc) {
	const task = "W2D3 Task 2 QuantizedMatmul, Qwen2-0.5B shapes"
	grade.Cases(t, task, day, "matmul_real", func(t *testing.T, c *fixture.Case) {
		p := realWeight(t, c)
		x := grade.MustTensor(t, c, "x")
		what := fmt.Sprintf("%s, case %s (x %v, w %s)", task, c.Name, x.Shape(), describe(p))
		got := matmul(x, p)
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), productTol(t, c), grade.Suspects(matmulSuspects(x, p)...))
	})
}

// allocated returns the bytes fn allocates on the heap (all goroutines).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// MatmulStaysPacked checks that Task 2 never builds the float weights: one
// decode step's product with a 4864 x 896 4-bit projection (17 MB as
// float32) may allocate at most a quarter of that. Decoding one group, or
// one row into a reused buffer, costs a few KB.
func MatmulStaysPacked(t *testing.T, matmul MatmulFunc) {
	const task = "W2D3 Task 2 QuantizedMatmul never materialises the weights"
	grade.PointToChapter(t, task)
	p := generatedWeight(7, 4864, 896, 4, 64)
	x := tensor.Ones(1, 896)
	var got *tensor.Tensor
	var bytes uint64
	if grade.Run(t, task, func() { bytes = allocated(func() { got = matmul(x, p) }) }) {
		return
	}
	if t.Failed() {
		return
	}
	if got == nil || got.Size() != 4864 {
		t.Fatalf("%s: 1 x 896 times a 4864 x 896 weight gave shape %v, want [1 4864]", task, shapeOf(got))
	}
	float := uint64(4 * p.Out * p.In)
	if bytes > float/4 {
		t.Fatalf("%s: one 1 x 896 product with a 4864 x 896 4-bit weight allocated %.1f MB; the weight as float32 is %.1f MB. "+
			"Decode one group (or one row into a buffer you reuse) at a time, multiply it into x, and move on: "+
			"a decode step must read the 4-bit words, not a float copy of them.", task, float64(bytes)/1e6, float64(float)/1e6)
	}
	t.Logf("%s: %.0f KB allocated for a 1 x 896 by 4864 x 896 product (the float weight would be %.1f MB)", task, float64(bytes)/1e3, float64(float)/1e6)
}

// MatmulRefusesBadShapes checks that Task 2 refuses an x whose last axis is
// not the weight's In, naming both sizes.
func MatmulRefusesBadShapes(t *testing.T, matmul MatmulFunc) {
	const task = "W2D3 Task 2 QuantizedMatmul refuses bad shapes"
	p := generatedWeight(9, 8, 128, 4, 64)
	grade.Misuses(t, task, grade.Misuse{
		Name: "wrong_in", What: "QuantizedMatmul(x of 2 x 96, w of 8 x 128)", Why: "x's last axis must be the weight's In",
		Own: true, Mentions: []string{"96", "128"},
		Call: func() { matmul(tensor.Ones(2, 96), p) },
	})
}

// Linear checks Task 3 against mx.quantized_matmul + bias, and without a
// bias against the plain product.
func Linear(t *testing.T, linear LinearFunc) {
	const task = "W2D3 Task 3 QuantizedLinear"
	grade.Cases(t, task, day, "linear", func(t *testing.T, c *fixture.Case) {
		p := fixtureWeight(t, c)
		x, b := grade.MustTensor(t, c, "x"), grade.MustTensor(t, c, "bias")
		what := fmt.Sprintf("%s, case %s (x %v, w %s, with a bias)", task, c.Name, x.Shape(), describe(p))
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return linear(x, p, b) }, grade.In("x", x), grade.In("bias", b))
		want := grade.MustTensor(t, c, "out")
		grade.AllClose(t, what, got, want, productTol(t, c), grade.Suspects(
			grade.Suspect{Cause: "the bias was not added", Output: func() *tensor.Tensor { return tensor.Sub(want, b) }},
		))
		what = fmt.Sprintf("%s, case %s (x %v, w %s, no bias)", task, c.Name, x.Shape(), describe(p))
		grade.AllClose(t, what, linear(x, p, nil), tensor.Sub(want, b), productTol(t, c))
	})
}

// EmbeddingCheck checks Task 4 against nn.QuantizedEmbedding: Forward
// (rows for 2 x 3 token ids) and AsLinear (the tied head).
func EmbeddingCheck[E Embedding](t *testing.T, newEmbedding func(table *checkpoint.PackedWeight) E) {
	const task = "W2D3 Task 4 Embedding"
	grade.Cases(t, task, day, "embedding", func(t *testing.T, c *fixture.Case) {
		p := fixtureWeight(t, c)
		e := newEmbedding(p)
		tokens := grade.MustTokenRows(t, c, "tokens")
		what := fmt.Sprintf("%s, case %s, Forward(%v) on a %s table", task, c.Name, tokens, describe(p))
		rows := make([]int, 0, 6)
		for _, r := range tokens {
			rows = append(rows, r...)
		}
		grade.AllClose(t, what, e.Forward(tokens), grade.MustTensor(t, c, "out"), dequantTol, grade.Suspects(
			grade.Suspect{Cause: causes[highFirst], Output: func() *tensor.Tensor {
				return tensor.Reshape(tensor.Take(wrongDequantize(p, highFirst), rows, 0), len(tokens), len(tokens[0]), p.In)
			}},
			grade.Suspect{Cause: causes[noBias], Output: func() *tensor.Tensor {
				return tensor.Reshape(tensor.Take(wrongDequantize(p, noBias), rows, 0), len(tokens), len(tokens[0]), p.In)
			}},
		))
		x := grade.MustTensor(t, c, "x")
		what = fmt.Sprintf("%s, case %s, AsLinear(x %v) on a %s table", task, c.Name, x.Shape(), describe(p))
		grade.AllClose(t, what, e.AsLinear(x), grade.MustTensor(t, c, "logits"), productTol(t, c),
			grade.Suspects(matmulSuspects(x, p)...))
	})
}

// EmbeddingStaysPacked checks that Task 4's Forward dequantizes only the
// rows it gathers: 6 tokens from a 32768 x 896 4-bit table (117 MB as
// float32) may allocate at most 1 MB.
func EmbeddingStaysPacked[E Embedding](t *testing.T, newEmbedding func(table *checkpoint.PackedWeight) E) {
	const task = "W2D3 Task 4 Embedding dequantizes only the rows it gathers"
	grade.PointToChapter(t, task)
	p := generatedWeight(11, 32768, 896, 4, 64)
	var got *tensor.Tensor
	var bytes uint64
	if grade.Run(t, task, func() {
		e := newEmbedding(p)
		bytes = allocated(func() { got = e.Forward([][]int{{5, 70, 32767}, {0, 1, 2}}) })
	}) || t.Failed() {
		return
	}
	if got == nil || got.Size() != 6*896 {
		t.Fatalf("%s: Forward of 2 x 3 tokens gave shape %v, want [2 3 896]", task, shapeOf(got))
	}
	if bytes > 1<<20 {
		t.Fatalf("%s: Forward of 6 tokens from a 32768 x 896 4-bit table allocated %.1f MB (the whole table as float32 is %.0f MB): "+
			"dequantize the 6 rows you gather, not the table", task, float64(bytes)/1e6, float64(4*p.Out*p.In)/1e6)
	}
}

func shapeOf(x *tensor.Tensor) []int {
	if x == nil {
		return nil
	}
	return x.Shape()
}
