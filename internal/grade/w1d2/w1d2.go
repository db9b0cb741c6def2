// Package w1d2 holds the checks of Week 1 Day 2 (RoPE), shared by week1/day2
// and solutions/week1/day2.
package w1d2

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Rotary is what NewRoPE returns.
type Rotary interface {
	Forward(x *tensor.Tensor, offsets []int) *tensor.Tensor
}

// Traditional checks Task 1, the interleaved form, against MLX fast.rope.
func Traditional[R Rotary](t *testing.T, newRoPE func(dims, seqLen int, base float64, traditional bool) R) {
	rope(t, "W1D2 Task 1 RoPE (traditional)", "rope_traditional", newRoPE)
}

// NonTraditional checks Task 2, the half-split form Qwen2 uses, against MLX
// fast.rope and Hugging Face's apply_rotary_pos_emb.
func NonTraditional[R Rotary](t *testing.T, newRoPE func(dims, seqLen int, base float64, traditional bool) R) {
	rope(t, "W1D2 Task 2 RoPE (non-traditional)", "rope_halves", newRoPE)
}

func rope[R Rotary](t *testing.T, task, fixtureTask string, newRoPE func(dims, seqLen int, base float64, traditional bool) R) {
	t.Helper()
	grade.Cases(t, task, "w1d2", fixtureTask, func(t *testing.T, c *fixture.Case) {
		x := grade.MustTensor(t, c, "x")
		var offsets []int
		if c.Has("offsets") {
			a, err := c.Array("offsets")
			if err != nil {
				t.Fatal(err)
			}
			if offsets, err = a.Ints(); err != nil {
				t.Fatal(err)
			}
		}
		traditional, err := c.Bool("traditional")
		if err != nil {
			t.Fatal(err)
		}
		r := newRoPE(x.Dim(3), grade.MustInt(t, c, "seq_len"), grade.MustFloat(t, c, "base"), traditional)
		got := r.Forward(x, offsets)
		grade.AllClose(t, task+", case "+c.Name, got, grade.MustTensor(t, c, "out"), grade.Elementwise)
	})
}
