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
		what := task + ", case " + c.Name
		x, weight := grade.MustTensor(t, c, "x"), grade.MustTensor(t, c, "weight")
		eps := float32(grade.MustFloat(t, c, "eps"))
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return newRMSNorm(x.Dim(-1), weight, eps).Forward(x) },
			grade.In("x", x), grade.In("weight", weight))
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), grade.Elementwise)
	})
}

// SiLU checks Task 2 against torch.nn.functional.silu on ±20 and on inputs
// up to ±1000, where a naive sigmoid overflows.
func SiLU(t *testing.T, silu func(x *tensor.Tensor) *tensor.Tensor) {
	const task = "W1D4 Task 2 SiLU"
	grade.Cases(t, task, "w1d4", "silu", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		x := grade.MustTensor(t, c, "x")
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return silu(x) }, grade.In("x", x))
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), grade.Elementwise)
	})
}

// MLP checks Task 3 against Hugging Face Qwen2MLP.
func MLP[L Layer](t *testing.T, newMLP func(dim, hiddenDim int, wGate, wUp, wDown *tensor.Tensor) L) {
	const task = "W1D4 Task 3 Qwen2MLP"
	grade.Cases(t, task, "w1d4", "mlp", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		x := grade.MustTensor(t, c, "x")
		wGate, wUp, wDown := grade.MustTensor(t, c, "w_gate"), grade.MustTensor(t, c, "w_up"), grade.MustTensor(t, c, "w_down")
		got := grade.Unchanged(t, what, func() *tensor.Tensor {
			return newMLP(grade.MustInt(t, c, "hidden_size"), grade.MustInt(t, c, "intermediate_size"), wGate, wUp, wDown).Forward(x)
		}, grade.In("x", x), grade.In("w_gate", wGate), grade.In("w_up", wUp), grade.In("w_down", wDown))
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), grade.Products)
	})
}
