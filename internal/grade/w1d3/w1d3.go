// Package w1d3 holds the checks of Week 1 Day 3 (grouped-query attention, the
// causal mask, Qwen2 attention), shared by week1/day3 and solutions/week1/day3.
package w1d3

import (
	"math"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/suspect"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Grouped checks Task 1 against PyTorch scaled_dot_product_attention with
// enable_gqa: 1, 3 and 4 query heads per key/value head, batch dims none, one
// and two, with and without masks. Then it checks that query heads that are
// not a multiple of the key/value heads panic.
func Grouped(t *testing.T, sdpa func(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor) *tensor.Tensor) {
	const task = "W1D3 Task 1 ScaledDotProductAttentionGrouped"
	stub := grade.Cases(t, task, "w1d3", "grouped", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		q, k, v := grade.MustTensor(t, c, "q"), grade.MustTensor(t, c, "k"), grade.MustTensor(t, c, "v")
		mask := grade.OptionalTensor(t, c, "mask")
		scale := float32(grade.MustFloat(t, c, "scale"))
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return sdpa(q, k, v, scale, mask) },
			grade.In("q", q), grade.In("k", k), grade.In("v", v), grade.In("mask", mask))
		right := scale
		if right == 0 {
			right = suspect.DefaultScale(q.Dim(-1))
		}
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), grade.Products, grade.ByHead(-3), grade.Suspects(
			grade.Suspect{Cause: "query head j reads key/value head j mod H instead of j / G (for instance the head axis split as G x H instead of H x G, or k and v tiled instead of each head repeated G times)",
				Output: func() *tensor.Tensor { return suspect.GroupedAttention(q, k, v, right, mask, suspect.Interleaved) }},
			grade.Suspect{Cause: "the softmax runs over the queries (axis -2) instead of over the keys (axis -1)",
				Output: func() *tensor.Tensor {
					return suspect.Attention(q, groupedCopy(k, q), groupedCopy(v, q), right, mask, -2)
				}},
		))
	})
	if stub {
		return
	}
	q, kv := tensor.Ones(6, 2, 4), tensor.Ones(4, 3, 4)
	grade.Misuses(t, task, grade.Misuse{
		Name: "six_query_heads_on_four", What: "6 query heads on 4 key/value heads",
		Why: "H_q must be a multiple of H; panic with both numbers", Own: true,
		Mentions: []string{"6", "4"},
		Call:     func() { sdpa(q, kv, kv, 0, nil) },
	})
}

// groupedCopy repeats each key/value head of kv for its query heads in q.
func groupedCopy(kv, q *tensor.Tensor) *tensor.Tensor {
	axis := q.NDim() - 3
	hq, h := q.Dim(axis), kv.Dim(axis)
	idx := make([]int, hq)
	for j := range idx {
		idx[j] = suspect.Grouped(j, hq, h)
	}
	return tensor.Take(kv, idx, axis)
}

// CausalMask checks Task 2 against literal masks, square and wider than tall.
func CausalMask(t *testing.T, causalMask func(l, s int) *tensor.Tensor) {
	const task = "W1D3 Task 2 CausalMask"
	grade.Cases(t, task, "w1d3", "causal_mask", func(t *testing.T, c *fixture.Case) {
		got := causalMask(grade.MustInt(t, c, "L"), grade.MustInt(t, c, "S"))
		grade.Exact(t, task+", case "+c.Name, got, grade.MustTensor(t, c, "out"))
	})
}

// Attention is what NewQwen2Attention returns.
type Attention interface {
	Forward(x, mask *tensor.Tensor) *tensor.Tensor
}

// Constructor is the signature of NewQwen2Attention.
type Constructor[A Attention] func(hiddenSize, numHeads, numKVHeads int, wq, bq, wk, bk, wv, bv, wo *tensor.Tensor, maxSeqLen int, theta float64) A

// Qwen2Attention checks Task 3 against Hugging Face Qwen2Attention on small
// random configurations, with the causal mask from causalMask and without one,
// then that the constructor panics on head counts that do not divide.
func Qwen2Attention[A Attention](t *testing.T, newAttention Constructor[A], causalMask func(l, s int) *tensor.Tensor) {
	const task = "W1D3 Task 3 Qwen2Attention"
	stub := grade.Cases(t, task, "w1d3", "qwen2_attention", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		w := func(name string) *tensor.Tensor { return grade.MustTensor(t, c, name) }
		x := w("x")
		weights := suspect.AttentionWeights{WQ: w("wq"), BQ: w("bq"), WK: w("wk"), BK: w("bk"), WV: w("wv"), BV: w("bv"), WO: w("wo")}
		heads, kvHeads := grade.MustInt(t, c, "num_heads"), grade.MustInt(t, c, "num_kv_heads")
		theta := grade.MustFloat(t, c, "theta")
		causal, err := c.Bool("causal")
		if err != nil {
			t.Fatal(err)
		}
		var mask *tensor.Tensor
		if causal {
			mask = causalMask(x.Dim(1), x.Dim(1))
		}
		got := grade.Unchanged(t, what, func() *tensor.Tensor {
			a := newAttention(grade.MustInt(t, c, "hidden_size"), heads, kvHeads,
				weights.WQ, weights.BQ, weights.WK, weights.BK, weights.WV, weights.BV, weights.WO,
				grade.MustInt(t, c, "max_seq_len"), theta)
			return a.Forward(x, mask)
		}, grade.In("x", x), grade.In("mask", mask),
			grade.In("wq", weights.WQ), grade.In("bq", weights.BQ), grade.In("wk", weights.WK), grade.In("bk", weights.BK),
			grade.In("wv", weights.WV), grade.In("bv", weights.BV), grade.In("wo", weights.WO))
		// The suspects use a mask built here, not the learner's CausalMask,
		// so that a wrong mask is not blamed on the layer.
		var ownMask *tensor.Tensor
		if causal {
			ownMask = literalCausal(x.Dim(1))
		}
		mistake := func(m suspect.Mistake) func() *tensor.Tensor {
			return func() *tensor.Tensor { return suspect.Qwen2Attention(x, ownMask, weights, heads, kvHeads, theta, m) }
		}
		grade.AllClose(t, what, got, w("out"), grade.Products, grade.Suspects(
			grade.Suspect{Cause: "RoPE runs in the traditional (interleaved) layout; Qwen2 pairs the two halves: NewRoPE(HeadDim, maxSeqLen, theta, false)",
				Output: mistake(suspect.TraditionalRoPE)},
			grade.Suspect{Cause: "RoPE is applied after the transpose, to N x H x L x D: it turns each head by its head number instead of each token by its position; rotate while q and k are N x L x H x D",
				Output: mistake(suspect.RoPEAfterTranspose)},
			grade.Suspect{Cause: "queries and keys are not rotated at all",
				Output: mistake(suspect.NoRoPE)},
			grade.Suspect{Cause: "the scale uses the hidden size E instead of the head dimension D",
				Output: mistake(suspect.ScaleByHidden)},
			grade.Suspect{Cause: "query head j reads key/value head j mod H instead of j / G",
				Output: mistake(suspect.InterleavedKVHeads)},
		))
	})
	if stub {
		return
	}
	weightsFor := func(hidden, heads, kvHeads int) func() {
		return func() {
			d := hidden / heads
			wq, wkv, wo := tensor.Zeros(heads*d, hidden), tensor.Zeros(kvHeads*d, hidden), tensor.Zeros(hidden, heads*d)
			bq, bkv := tensor.Zeros(heads*d), tensor.Zeros(kvHeads*d)
			newAttention(hidden, heads, kvHeads, wq, bq, wkv, bkv, wkv, bkv, wo, 16, 10000)
		}
	}
	grade.Misuses(t, task,
		grade.Misuse{Name: "hidden_50_on_4_heads", What: "NewQwen2Attention with hidden size 50 and 4 heads",
			Why: "HeadDim = hiddenSize / numHeads must divide exactly", Own: true,
			Call: weightsFor(50, 4, 2)},
		grade.Misuse{Name: "6_heads_on_4_kv_heads", What: "NewQwen2Attention with 6 heads and 4 key/value heads",
			Why: "numHeads must be a multiple of numKVHeads", Own: true,
			Call: weightsFor(48, 6, 4)},
	)
}

// literalCausal is the L x L causal mask, written out.
func literalCausal(l int) *tensor.Tensor {
	m := tensor.Zeros(l, l)
	for i := range l {
		for j := i + 1; j < l; j++ {
			m.Data()[i*l+j] = float32(math.Inf(-1))
		}
	}
	return m
}
