package suspect

import (
	"math"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// A suspect is only useful if, without its mistake, it computes the right
// answer: otherwise it would blame the wrong thing. These tests hold the
// mistake-free form of each function to the fixtures, and check that the
// cases meant to tell two mistakes apart do.

func load(t *testing.T, day, task string) []*fixture.Case {
	t.Helper()
	cases, err := fixture.Load(day, task)
	if err != nil {
		t.Fatal(err)
	}
	return cases
}

func mustTensor(t *testing.T, c *fixture.Case, name string) *tensor.Tensor {
	t.Helper()
	x, err := c.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func optional(t *testing.T, c *fixture.Case, name string) *tensor.Tensor {
	if !c.Has(name) {
		return nil
	}
	return mustTensor(t, c, name)
}

func matches(got, want *tensor.Tensor) bool {
	return grade.Compare(got, want, grade.Products) == ""
}

func TestAttentionMatchesTheFixtures(t *testing.T) {
	for _, c := range load(t, "w1d1", "sdpa") {
		q, k, v := mustTensor(t, c, "q"), mustTensor(t, c, "k"), mustTensor(t, c, "v")
		mask, want := optional(t, c, "mask"), mustTensor(t, c, "out")
		scale := float32(c.Params["scale"].(float64))
		if scale == 0 {
			scale = DefaultScale(q.Dim(-1))
		}
		if !matches(Attention(q, k, v, scale, mask, -1), want) {
			t.Errorf("sdpa/%s: Attention differs from PyTorch", c.Name)
		}
		axis, unscaled := Attention(q, k, v, scale, mask, -2), Attention(q, k, v, 1, mask, -1)
		if matches(axis, want) {
			t.Errorf("sdpa/%s: a softmax over the queries passes", c.Name)
		}
		// Only with a single key is a missing scale invisible; that is
		// what sets it apart from the softmax axis.
		if got := matches(unscaled, want); got != (c.Name == "one_key") {
			t.Errorf("sdpa/%s: a missing scale passes = %v", c.Name, got)
		}
	}
}

func TestGroupedAttentionMatchesTheFixtures(t *testing.T) {
	for _, c := range load(t, "w1d3", "grouped") {
		q, k, v := mustTensor(t, c, "q"), mustTensor(t, c, "k"), mustTensor(t, c, "v")
		scale := float32(c.Params["scale"].(float64))
		if scale == 0 {
			scale = DefaultScale(q.Dim(-1))
		}
		if !matches(GroupedAttention(q, k, v, scale, optional(t, c, "mask"), Grouped), mustTensor(t, c, "out")) {
			t.Errorf("grouped/%s: GroupedAttention differs from PyTorch", c.Name)
		}
	}
}

func TestRoPEMatchesTheFixtures(t *testing.T) {
	for _, task := range []string{"rope_traditional", "rope_halves"} {
		for _, c := range load(t, "w1d2", task) {
			x := mustTensor(t, c, "x")
			rows := make([]int, x.Dim(0))
			if c.Has("offsets") {
				a, err := c.Array("offsets")
				if err != nil {
					t.Fatal(err)
				}
				offsets, _ := a.Ints()
				for i := range rows {
					rows[i] = offsets[min(i, len(offsets)-1)]
				}
			}
			got := RoPE(x, rows, c.Params["base"].(float64), task == "rope_traditional")
			if r := grade.Compare(got, mustTensor(t, c, "out"), grade.Elementwise); r != "" {
				t.Errorf("%s/%s: RoPE differs from the reference\n%s", task, c.Name, r)
			}
		}
	}
}

func TestQwen2AttentionMatchesTheFixtures(t *testing.T) {
	for _, c := range load(t, "w1d3", "qwen2_attention") {
		w := func(name string) *tensor.Tensor { return mustTensor(t, c, name) }
		x := w("x")
		var mask *tensor.Tensor
		if c.Params["causal"].(bool) {
			mask = tensor.Zeros(x.Dim(1), x.Dim(1))
			for i := range x.Dim(1) {
				for j := i + 1; j < x.Dim(1); j++ {
					mask.Data()[i*x.Dim(1)+j] = float32(math.Inf(-1))
				}
			}
		}
		weights := AttentionWeights{WQ: w("wq"), BQ: w("bq"), WK: w("wk"), BK: w("bk"), WV: w("wv"), BV: w("bv"), WO: w("wo")}
		heads, kv := int(c.Params["num_heads"].(float64)), int(c.Params["num_kv_heads"].(float64))
		theta := c.Params["theta"].(float64)
		run := func(m Mistake) bool { return matches(Qwen2Attention(x, mask, weights, heads, kv, theta, m), w("out")) }
		if !run(None) {
			t.Errorf("qwen2_attention/%s: Qwen2Attention differs from Hugging Face", c.Name)
		}
		// With one token no rotation shows; with a head dimension of 2 the
		// two layouts agree, and only RoPE after the transpose shows.
		wantTraditional := c.Name == "one_token" || c.Name == "head_dim2"
		if got := run(TraditionalRoPE); got != wantTraditional {
			t.Errorf("qwen2_attention/%s: the traditional layout passes = %v, want %v", c.Name, got, wantTraditional)
		}
		if got := run(RoPEAfterTranspose); got != (c.Name == "one_token") {
			t.Errorf("qwen2_attention/%s: RoPE after the transpose passes = %v", c.Name, got)
		}
		for _, m := range []Mistake{NoRoPE, ScaleByHidden, InterleavedKVHeads} {
			if run(m) && c.Name != "one_token" {
				t.Errorf("qwen2_attention/%s: mistake %d passes", c.Name, m)
			}
		}
	}
}

func TestMultiHeadAttentionMatchesTheFixtures(t *testing.T) {
	for _, c := range load(t, "w1d1", "mha") {
		w := func(name string) *tensor.Tensor { return mustTensor(t, c, name) }
		heads := int(c.Params["heads"].(float64))
		run := func(m MHAMistake) bool {
			return matches(MultiHeadAttention(w("query"), w("key"), w("value"), optional(t, c, "mask"),
				w("wq"), w("wk"), w("wv"), w("wo"), heads, m), w("out"))
		}
		if !run(0) {
			t.Errorf("mha/%s: MultiHeadAttention differs from PyTorch", c.Name)
		}
		for _, m := range []MHAMistake{MHAScaleByHidden, MHAReshapeOnly} {
			if run(m) != (c.Name == "one_head") {
				t.Errorf("mha/%s: mistake %d passes = %v", c.Name, m, run(m))
			}
		}
	}
}
