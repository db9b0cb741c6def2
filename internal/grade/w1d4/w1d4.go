// Package w1d4 holds the checks of Week 1 Day 4 (RMSNorm, SiLU, the Qwen2
// MLP), shared by week1/day4 and solutions/week1/day4.
package w1d4

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Layer is anything with a one-input Forward.
type Layer interface {
	Forward(x *tensor.Tensor) *tensor.Tensor
}

// RMSNorm checks Task 1 against Hugging Face Qwen2RMSNorm, including rows of
// activations near ±1000 and near 1e-4.
func RMSNorm[L Layer](t *testing.T, newRMSNorm func(dim int, weight *tensor.Tensor, eps float32) L) {
	const task = "W1D4 Task 1 RMSNorm"
	grade.Cases(t, task, "w1d4", "rms_norm", func(t *testing.T, c *fixture.Case) {
		x, weight := grade.MustTensor(t, c, "x"), grade.MustTensor(t, c, "weight")
		norm := newRMSNorm(x.Dim(-1), weight, float32(grade.MustFloat(t, c, "eps")))
		grade.AllClose(t, task+", case "+c.Name, norm.Forward(x), grade.MustTensor(t, c, "out"), grade.Elementwise)
	})
}

// SiLU checks Task 2 against torch.nn.functional.silu on ±20 and on inputs
// up to ±1000, where a naive sigmoid overflows.
func SiLU(t *testing.T, silu func(x *tensor.Tensor) *tensor.Tensor) {
	const task = "W1D4 Task 2 SiLU"
	grade.Cases(t, task, "w1d4", "silu", func(t *testing.T, c *fixture.Case) {
		grade.AllClose(t, task+", case "+c.Name, silu(grade.MustTensor(t, c, "x")), grade.MustTensor(t, c, "out"), grade.Elementwise)
	})
}

// MLP checks Task 3 against Hugging Face Qwen2MLP.
func MLP[L Layer](t *testing.T, newMLP func(dim, hiddenDim int, wGate, wUp, wDown *tensor.Tensor) L) {
	const task = "W1D4 Task 3 Qwen2MLP"
	grade.Cases(t, task, "w1d4", "mlp", func(t *testing.T, c *fixture.Case) {
		m := newMLP(grade.MustInt(t, c, "hidden_size"), grade.MustInt(t, c, "intermediate_size"),
			grade.MustTensor(t, c, "w_gate"), grade.MustTensor(t, c, "w_up"), grade.MustTensor(t, c, "w_down"))
		grade.AllClose(t, task+", case "+c.Name, m.Forward(grade.MustTensor(t, c, "x")), grade.MustTensor(t, c, "out"), grade.Products)
	})
}
