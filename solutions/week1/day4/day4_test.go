package day4

// The checks live in internal/grade/w1d4, shared with the other tree.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w1d4"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

func TestW1D4Task1RMSNorm(t *testing.T) { w1d4.RMSNorm(t, NewRMSNorm) }

func TestW1D4Task2SiLU(t *testing.T) { w1d4.SiLU(t, SiLU) }

// The scalar form the chapter teaches, which SiLU does not call.
func TestW1D4Task2SiLUScalarForm(t *testing.T) {
	w1d4.SiLU(t, func(x *tensor.Tensor) *tensor.Tensor { return tensor.Map(x, silu) })
}

func TestW1D4Task3MLP(t *testing.T) { w1d4.MLP(t, NewQwen2MLP) }
