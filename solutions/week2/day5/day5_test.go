package day5

// The checks live in internal/grade/w2d5, shared with the other tree. The
// CPU checks compare with this tree's Week 1 days; the GPU checks with the
// CPU versions, where this machine has a GPU, and say by name that they did
// not run where it has none.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d5"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day2"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day4"
)

var week1 = w2d5.Week1{
	RMSNorm: func(x, w *tensor.Tensor, eps float32) *tensor.Tensor {
		return day4.NewRMSNorm(w.Size(), w, eps).Forward(x)
	},
	SiLU: day4.SiLU,
	RoPE: func(x *tensor.Tensor, offsets []int, seqLen int, base float64) *tensor.Tensor {
		return day2.NewRoPE(x.Dim(3), seqLen, base, false).Forward(x, offsets)
	},
}

func TestW2D5Task1RMSNorm(t *testing.T) { w2d5.RMSNorm(t, RMSNorm, week1) }

func TestW2D5Task2RoPE(t *testing.T) { w2d5.RoPE(t, NewRoPETable, RoPE, week1) }

func TestW2D5Task3SwiGLU(t *testing.T) { w2d5.SwiGLU(t, SwiGLU, week1) }

func TestW2D5Task4AddRMSNorm(t *testing.T) { w2d5.AddRMSNorm(t, AddRMSNorm, week1) }

func TestW2D5Sources(t *testing.T) { w2d5.Sources(t, Source, KernelNames) }

func TestW2D5RefusesBadShapes(t *testing.T) {
	f, r := new(Fused), &DeviceRoPE{Dims: 4, MaxPos: 16}
	w2d5.RefusesBadShapes(t, "W2D5 GPU launches", w2d5.Launches{
		RMSNorm:    f.RMSNorm,
		AddRMSNorm: f.AddRMSNorm,
		SwiGLU:     f.SwiGLU,
		RoPE: func(q, k *devtensor.Activations, offsets *kernels.Buffer, seqLen int) error {
			return f.RoPE(q, k, r, offsets, seqLen)
		},
	})
}

func TestW2D5Task1RMSNormGPU(t *testing.T) {
	w2d5.RMSNormGPU(t, NewFused, RMSNorm)
}

func TestW2D5Task2RoPEGPU(t *testing.T) {
	w2d5.RoPEGPU(t, NewFused, NewRoPETable, UploadRoPE, RoPE)
}

func TestW2D5Task3SwiGLUGPU(t *testing.T) {
	w2d5.SwiGLUGPU(t, NewFused, SwiGLU)
}

func TestW2D5Task4AddRMSNormGPU(t *testing.T) {
	w2d5.AddRMSNormGPU(t, NewFused, AddRMSNorm)
}
