// Package w1d2 holds the checks of Week 1 Day 2 (RoPE), shared by week1/day2
// and solutions/week1/day2.
package w1d2

import (
	"fmt"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/suspect"
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
// fast.rope and Hugging Face's apply_rotary_pos_emb. It then checks the
// panics the chapter asks for: odd dimensions, a wrong number of offsets,
// positions past the end of the table.
func NonTraditional[R Rotary](t *testing.T, newRoPE func(dims, seqLen int, base float64, traditional bool) R) {
	const task = "W1D2 Task 2 RoPE (non-traditional)"
	if rope(t, task, "rope_halves", newRoPE) {
		return
	}
	x := tensor.Ones(3, 4, 2, 8) // 3 rows of 4 positions
	forward := func(seqLen int, offsets []int) func() {
		return func() { newRoPE(8, seqLen, 10000, false).Forward(x, offsets) }
	}
	grade.Misuses(t, task,
		grade.Misuse{Name: "odd_dims", What: "NewRoPE(7, 16, 10000, false)",
			Why: "Dims must be even, since the features are rotated in pairs", Own: true,
			Call: func() { newRoPE(7, 16, 10000, false) }},
		grade.Misuse{Name: "four_offsets_for_three_rows", What: "Forward on 3 rows with offsets [0 1 2 3]",
			Why: "offsets must be nil, one value, or one per row", Own: true,
			Call: forward(16, []int{0, 1, 2, 3})},
		grade.Misuse{Name: "past_the_table", What: "Forward of 4 positions from offset 5 with a table of 8",
			Why: "positions 5…8 do not fit a table of positions 0…7; panic with the positions and the table size", Own: true,
			Mentions: []string{"8"},
			Call:     forward(8, []int{5})},
		grade.Misuse{Name: "negative_offset", What: "Forward with offset -1",
			Why: "positions start at 0", Own: true,
			Call: forward(16, []int{-1})},
	)
}

// rope checks one task's fixture cases and reports whether it hit a stub.
func rope[R Rotary](t *testing.T, task, fixtureTask string, newRoPE func(dims, seqLen int, base float64, traditional bool) R) bool {
	t.Helper()
	return grade.Cases(t, task, "w1d2", fixtureTask, func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
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
		base := grade.MustFloat(t, c, "base")
		r := newRoPE(x.Dim(3), grade.MustInt(t, c, "seq_len"), base, traditional)
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return r.Forward(x, offsets) }, grade.In("x", x))
		rows := make([]int, x.Dim(0))
		for i := range rows {
			switch len(offsets) {
			case 0:
			case 1:
				rows[i] = offsets[0]
			default:
				rows[i] = offsets[i]
			}
		}
		other := "half-split (non-traditional) pairs (x[i], x[i+D/2]), where this task wants neighbours (x[2i], x[2i+1])"
		if !traditional {
			other = "traditional (interleaved) pairs (x[2i], x[2i+1]), where this task wants the halves (x[i], x[i+D/2])"
		}
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), grade.Elementwise, grade.ByHead(2), grade.Suspects(
			grade.Suspect{Cause: "the rotation uses " + other,
				Output: func() *tensor.Tensor { return suspect.RoPE(x, rows, base, !traditional) }},
			grade.Suspect{Cause: fmt.Sprintf("the offsets %v are ignored: every row starts at position 0", offsets),
				Output: func() *tensor.Tensor { return suspect.RoPE(x, nil, base, traditional) }},
		))
	})
}
