// Package w1d1 holds the checks of Week 1 Day 1 (attention). Each function takes
// the day's implementation as arguments, so week1/day1 and solutions/week1/day1
// are graded by the same code.
package w1d1

import (
	"fmt"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/suspect"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

const day = "w1d1"

// Softmax checks Task 1 against torch.softmax, including inputs large enough to
// overflow exp in float32 and axes other than the last.
func Softmax(t *testing.T, softmax func(x *tensor.Tensor, axis int) *tensor.Tensor) {
	const task = "W1D1 Task 1 Softmax"
	grade.Cases(t, task, day, "softmax", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		x := grade.MustTensor(t, c, "x")
		axis := grade.MustInt(t, c, "axis")
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return softmax(x, axis) }, grade.In("x", x))
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), grade.Elementwise)
	})
}

// Linear checks Task 2 against torch.nn.functional.linear, with and without bias.
func Linear(t *testing.T, linear func(x, w, b *tensor.Tensor) *tensor.Tensor) {
	const task = "W1D1 Task 2 Linear"
	grade.Cases(t, task, day, "linear", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		x := grade.MustTensor(t, c, "x")
		w := grade.MustTensor(t, c, "w")
		b := grade.OptionalTensor(t, c, "b")
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return linear(x, w, b) },
			grade.In("x", x), grade.In("w", w), grade.In("b", b))
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), grade.Products)
	})
}

// ScaledDotProductAttention checks Task 3 against
// torch.nn.functional.scaled_dot_product_attention: batch dims none, one and
// two, no mask, a broadcast L x S mask, a causal mask and a full-shape mask, the
// default and an explicit scale, and a single key (where any scale gives the
// same answer but a softmax over the wrong axis does not).
func ScaledDotProductAttention(t *testing.T, sdpa func(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor) *tensor.Tensor) {
	const task = "W1D1 Task 3 ScaledDotProductAttentionSimple"
	grade.Cases(t, task, day, "sdpa", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		q := grade.MustTensor(t, c, "q")
		k := grade.MustTensor(t, c, "k")
		v := grade.MustTensor(t, c, "v")
		mask := grade.OptionalTensor(t, c, "mask")
		scale := float32(grade.MustFloat(t, c, "scale"))
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return sdpa(q, k, v, scale, mask) },
			grade.In("q", q), grade.In("k", k), grade.In("v", v), grade.In("mask", mask))
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), grade.Products,
			grade.ByHead(-3), grade.Suspects(attentionSuspects(q, k, v, scale, mask)...))
	})
}

// attentionSuspects are the mistakes Task 3's chapter warns about, each
// computed from the case's inputs.
func attentionSuspects(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor) []grade.Suspect {
	d := q.Dim(-1)
	right := scale
	if right == 0 {
		right = suspect.DefaultScale(d)
	}
	s := []grade.Suspect{
		{Cause: "the softmax runs over the queries (axis -2) instead of over the keys (axis -1)",
			Output: func() *tensor.Tensor { return suspect.Attention(q, k, v, right, mask, -2) }},
		{Cause: fmt.Sprintf("the scores are not scaled: your output is what a scale of 1 gives, and this case's scale is %.4g", right),
			Output: func() *tensor.Tensor { return suspect.Attention(q, k, v, 1, mask, -1) }},
	}
	if scale == 0 {
		s = append(s,
			grade.Suspect{Cause: fmt.Sprintf("the scale is inverted: sqrt(D) = %.4g instead of 1/sqrt(D)", 1/right),
				Output: func() *tensor.Tensor { return suspect.Attention(q, k, v, 1/right, mask, -1) }},
			grade.Suspect{Cause: "a scale of 0 is used as it is; 0 means the default 1/sqrt(D)",
				Output: func() *tensor.Tensor { return suspect.Attention(q, k, v, 0, mask, -1) }})
	}
	if mask != nil {
		s = append(s,
			grade.Suspect{Cause: "the mask is not applied",
				Output: func() *tensor.Tensor { return suspect.Attention(q, k, v, right, nil, -1) }},
			grade.Suspect{Cause: "the mask is added after the softmax instead of to the scores before it",
				Output: func() *tensor.Tensor { return suspect.AttentionMaskAfter(q, k, v, right, mask) }})
	}
	return s
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
		what := task + ", case " + c.Name
		query := grade.MustTensor(t, c, "query")
		key := grade.MustTensor(t, c, "key")
		value := grade.MustTensor(t, c, "value")
		mask := grade.OptionalTensor(t, c, "mask")
		wq, wk := grade.MustTensor(t, c, "wq"), grade.MustTensor(t, c, "wk")
		wv, wo := grade.MustTensor(t, c, "wv"), grade.MustTensor(t, c, "wo")
		heads := grade.MustInt(t, c, "heads")
		hidden := query.Dim(-1)
		got := grade.Unchanged(t, what, func() *tensor.Tensor {
			return newMHA(hidden, heads, wq, wk, wv, wo).Forward(query, key, value, mask)
		}, grade.In("query", query), grade.In("key", key), grade.In("value", value), grade.In("mask", mask),
			grade.In("wq", wq), grade.In("wk", wk), grade.In("wv", wv), grade.In("wo", wo))
		mistake := func(m suspect.MHAMistake) func() *tensor.Tensor {
			return func() *tensor.Tensor {
				return suspect.MultiHeadAttention(query, key, value, mask, wq, wk, wv, wo, heads, m)
			}
		}
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), grade.Products, grade.Suspects(
			grade.Suspect{Cause: "the scale uses the hidden size E instead of the head dimension D = E / heads",
				Output: mistake(suspect.MHAScaleByHidden)},
			grade.Suspect{Cause: "the heads are split with a single reshape to N x H x L x D instead of a reshape to N x L x H x D and a transpose",
				Output: mistake(suspect.MHAReshapeOnly)},
		))
	})
}
