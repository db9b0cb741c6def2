package day6

// The checks live in internal/grade/w2d6, shared with the other tree. The GPU
// checks run where this machine has a GPU and say by name that they did not
// run where it has none.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d6"
)

func TestW2D6Task1FlashAttention(t *testing.T) { w2d6.FlashFixtures(t, FlashAttention, BlockK) }

func TestW2D6Task1MatchesWeek1(t *testing.T) { w2d6.MatchesWeek1(t, FlashAttention, BlockK) }

func TestW2D6Task1Misuses(t *testing.T) { w2d6.FlashMisuses(t, FlashAttention) }

func TestW2D6Sources(t *testing.T) { w2d6.Sources(t, Source) }

func TestW2D6DecodeRefusesBadShapes(t *testing.T) {
	w2d6.RefusesBadShapes(t, "W2D6 Task 2 Decode", new(Attention).Decode)
}

func TestW2D6PrefillRefusesBadShapes(t *testing.T) {
	w2d6.RefusesBadShapes(t, "W2D6 Prefill", new(Attention).Prefill)
}

func TestW2D6Task2DecodeGPU(t *testing.T) {
	w2d6.GPUFixtures(t, "W2D6 Task 2 Decode", w2d6.Decode, NewAttention)
}

func TestW2D6Task2DecodeRealShapesGPU(t *testing.T) {
	w2d6.GPUvsCPU(t, "W2D6 Task 2 Decode", w2d6.Decode, NewAttention)
}

func TestW2D6PrefillGPU(t *testing.T) {
	w2d6.GPUFixtures(t, "W2D6 Prefill", w2d6.Prefill, NewAttention)
}

func TestW2D6PrefillRealShapesGPU(t *testing.T) {
	w2d6.GPUvsCPU(t, "W2D6 Prefill", w2d6.Prefill, NewAttention)
}
