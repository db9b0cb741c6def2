package day4

// The checks live in internal/grade/w2d4, shared with the other tree. The GPU
// checks run where this machine has a GPU and say by name that they did not
// run where it has none; -short leaves out the real model shapes.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d4"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
)

func TestW2D4Sources(t *testing.T) { w2d4.Sources(t, Source) }

func TestW2D4Task1RefusesBadShapes(t *testing.T) {
	w2d4.RefusesBadShapes(t, "W2D4 Task 1 V1", new(Matmul).V1)
}

func TestW2D4Task2RefusesBadShapes(t *testing.T) {
	w2d4.RefusesBadShapes(t, "W2D4 Task 2 V2", new(Matmul).V2)
}

func TestW2D4Task1NaiveGPU(t *testing.T) {
	w2d4.Rung(t, "W2D4 Task 1 V1", 1, NewMatmul, testing.Short())
}

func TestW2D4Task2WarpGPU(t *testing.T) {
	w2d4.Rung(t, "W2D4 Task 2 V2", 2, NewMatmul, testing.Short())
}

func TestW2D4VectorGPU(t *testing.T) { w2d4.Rung(t, "W2D4 V3", 3, NewMatmul, testing.Short()) }

func TestW2D4TensorCoreGPU(t *testing.T) { w2d4.Rung(t, "W2D4 V4", 4, NewMatmul, testing.Short()) }

func TestW2D4LinearGPU(t *testing.T) { w2d4.Rung(t, "W2D4 Linear", 0, NewMatmul, testing.Short()) }

// TestW2D4Pick: the dispatcher's choice by shape, on any machine.
func TestW2D4Pick(t *testing.T) {
	for _, c := range []struct {
		rows, k int
		want    Rung
	}{{1, 896, V3Vector}, {15, 896, V3Vector}, {16, 896, V6Warpgroup}, {512, 4864, V6Warpgroup}, {1, 37, V2Warp}, {64, 100, V2Warp}} {
		if got := Pick(c.rows, &devtensor.Weight{N: 10, K: c.k, Bits: 16}); got != c.want {
			t.Errorf("Pick(%d rows, K=%d) = %v, want %v", c.rows, c.k, got, c.want)
		}
	}
}

func TestW2D4PipelinedGPU(t *testing.T) { w2d4.Rung(t, "W2D4 V5", 5, NewMatmul, testing.Short()) }

// TestW2D4WarpgroupGPU checks rung 6, which runs rung 5 on a GPU other
// than compute capability 9.0.
func TestW2D4WarpgroupGPU(t *testing.T) { w2d4.Rung(t, "W2D4 V6", 6, NewMatmul, testing.Short()) }
