// Package w1d1 holds the checks of Week 1 Day 1 (attention). Each function takes
// the day's implementation as arguments, so week1/day1 and solutions/week1/day1
// are graded by the same code.
package w1d1

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

const day = "w1d1"

// Softmax checks Task 1 against torch.softmax, including inputs large enough to
// overflow exp in float32 and axes other than the last.
func Softmax(t *testing.T, softmax func(x *tensor.Tensor, axis int) *tensor.Tensor) {
	const task = "W1D1 Task 1 Softmax"
	grade.Cases(t, task, day, "softmax", func(t *testing.T, c *fixture.Case) {
		x := grade.MustTensor(t, c, "x")
		axis := grade.MustInt(t, c, "axis")
		got := unchanged(t, task, x, func() *tensor.Tensor { return softmax(x, axis) })
		grade.AllClose(t, task+", case "+c.Name, got, grade.MustTensor(t, c, "out"), grade.Elementwise)
	})
}

// Linear checks Task 2 against torch.nn.functional.linear, with and without bias.
func Linear(t *testing.T, linear func(x, w, b *tensor.Tensor) *tensor.Tensor) {
	const task = "W1D1 Task 2 Linear"
	grade.Cases(t, task, day, "linear", func(t *testing.T, c *fixture.Case) {
		x := grade.MustTensor(t, c, "x")
		w := grade.MustTensor(t, c, "w")
		b := grade.OptionalTensor(t, c, "b")
		got := unchanged(t, task, x, func() *tensor.Tensor { return linear(x, w, b) })
		grade.AllClose(t, task+", case "+c.Name, got, grade.MustTensor(t, c, "out"), grade.Products)
	})
}

// ScaledDotProductAttention checks Task 3 against
// torch.nn.functional.scaled_dot_product_attention: batch dims none, one and
// two, no mask, a broadcast L x S mask, a causal mask and a full-shape mask, the
// default and an explicit scale.
func ScaledDotProductAttention(t *testing.T, sdpa func(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor) *tensor.Tensor) {
	const task = "W1D1 Task 3 ScaledDotProductAttentionSimple"
	grade.Cases(t, task, day, "sdpa", func(t *testing.T, c *fixture.Case) {
		q := grade.MustTensor(t, c, "q")
		k := grade.MustTensor(t, c, "k")
		v := grade.MustTensor(t, c, "v")
		mask := grade.OptionalTensor(t, c, "mask")
		scale := float32(grade.MustFloat(t, c, "scale"))
		got := unchanged(t, task, q, func() *tensor.Tensor { return sdpa(q, k, v, scale, mask) })
		grade.AllClose(t, task+", case "+c.Name, got, grade.MustTensor(t, c, "out"), grade.Products)
	})
}

// Attention is what Task 4's constructor returns.
type Attention interface {
	Forward(query, key, value, mask *tensor.Tensor) *tensor.Tensor
}

// MultiHeadAttention checks Task 4 against torch.nn.MultiheadAttention
// (batch_first, no bias): self-attention with and without a causal mask,
// cross-attention with S != L and a float mask, and a single head.
func MultiHeadAttention[A Attention](t *testing.T, newMHA func(hidden, heads int, wq, wk, wv, wo *tensor.Tensor) A) {
	const task = "W1D1 Task 4 MultiHeadAttention"
	grade.Cases(t, task, day, "mha", func(t *testing.T, c *fixture.Case) {
		query := grade.MustTensor(t, c, "query")
		key := grade.MustTensor(t, c, "key")
		value := grade.MustTensor(t, c, "value")
		mask := grade.OptionalTensor(t, c, "mask")
		wq, wk := grade.MustTensor(t, c, "wq"), grade.MustTensor(t, c, "wk")
		wv, wo := grade.MustTensor(t, c, "wv"), grade.MustTensor(t, c, "wo")
		heads := grade.MustInt(t, c, "heads")
		hidden := query.Dim(-1)
		mha := newMHA(hidden, heads, wq, wk, wv, wo)
		got := unchanged(t, task, query, func() *tensor.Tensor { return mha.Forward(query, key, value, mask) })
		grade.AllClose(t, task+", case "+c.Name, got, grade.MustTensor(t, c, "out"), grade.Products)
	})
}

// unchanged runs f and fails the test if f wrote into its input x: tensors
// share their data slices, so an in-place edit would corrupt the caller's copy.
func unchanged(t *testing.T, task string, x *tensor.Tensor, f func() *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	before := x.Clone()
	out := f()
	if report := grade.Compare(x, before, grade.Tol{}); report != "" {
		t.Fatalf("%s: the input was modified in place; return a new tensor instead\n%s", task, report)
	}
	return out
}
