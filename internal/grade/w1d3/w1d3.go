// Package w1d3 holds the checks of Week 1 Day 3 (grouped-query attention, the
// causal mask, Qwen2 attention), shared by week1/day3 and solutions/week1/day3.
package w1d3

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Grouped checks Task 1 against PyTorch scaled_dot_product_attention with
// enable_gqa: 1, 3 and 4 query heads per key/value head, batch dims none, one
// and two, with and without masks.
func Grouped(t *testing.T, sdpa func(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor) *tensor.Tensor) {
	const task = "W1D3 Task 1 ScaledDotProductAttentionGrouped"
	grade.Cases(t, task, "w1d3", "grouped", func(t *testing.T, c *fixture.Case) {
		q, k, v := grade.MustTensor(t, c, "q"), grade.MustTensor(t, c, "k"), grade.MustTensor(t, c, "v")
		mask := grade.OptionalTensor(t, c, "mask")
		got := sdpa(q, k, v, float32(grade.MustFloat(t, c, "scale")), mask)
		grade.AllClose(t, task+", case "+c.Name, got, grade.MustTensor(t, c, "out"), grade.Products)
	})
}

// CausalMask checks Task 2 against literal masks, square and wider than tall.
func CausalMask(t *testing.T, causalMask func(l, s int) *tensor.Tensor) {
	const task = "W1D3 Task 2 CausalMask"
	grade.Cases(t, task, "w1d3", "causal_mask", func(t *testing.T, c *fixture.Case) {
		got := causalMask(grade.MustInt(t, c, "L"), grade.MustInt(t, c, "S"))
		grade.AllClose(t, task+", case "+c.Name, got, grade.MustTensor(t, c, "out"), grade.Tol{})
	})
}

// Attention is what NewQwen2Attention returns.
type Attention interface {
	Forward(x, mask *tensor.Tensor) *tensor.Tensor
}

// Constructor is the signature of NewQwen2Attention.
type Constructor[A Attention] func(hiddenSize, numHeads, numKVHeads int, wq, bq, wk, bk, wv, bv, wo *tensor.Tensor, maxSeqLen int, theta float64) A

// Qwen2Attention checks Task 3 against Hugging Face Qwen2Attention on small
// random configurations, with the causal mask from causalMask and without one.
func Qwen2Attention[A Attention](t *testing.T, newAttention Constructor[A], causalMask func(l, s int) *tensor.Tensor) {
	const task = "W1D3 Task 3 Qwen2Attention"
	grade.Cases(t, task, "w1d3", "qwen2_attention", func(t *testing.T, c *fixture.Case) {
		w := func(name string) *tensor.Tensor { return grade.MustTensor(t, c, name) }
		x := w("x")
		a := newAttention(grade.MustInt(t, c, "hidden_size"), grade.MustInt(t, c, "num_heads"), grade.MustInt(t, c, "num_kv_heads"),
			w("wq"), w("bq"), w("wk"), w("bk"), w("wv"), w("bv"), w("wo"),
			grade.MustInt(t, c, "max_seq_len"), grade.MustFloat(t, c, "theta"))
		causal, err := c.Bool("causal")
		if err != nil {
			t.Fatal(err)
		}
		var mask *tensor.Tensor
		if causal {
			mask = causalMask(x.Dim(1), x.Dim(1))
		}
		grade.AllClose(t, task+", case "+c.Name, a.Forward(x, mask), w("out"), grade.Products)
	})
}
