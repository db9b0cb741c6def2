package day4

// The checks live in internal/grade/w2d4, shared with the other tree. The GPU
// checks run where this machine has a GPU and say by name that they did not
// run where it has none; -short leaves out the real model shapes.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d4"
	"github.com/tinyllm-go/tinyllm/kernels"
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
// than compute capability 9.0 (the log says so, and why).
func TestW2D4WarpgroupGPU(t *testing.T) {
	w2d4.Rung(t, "W2D4 V6", 6, func(d *kernels.Device) (*Matmul, error) {
		m, err := NewMatmul(d)
		if err == nil {
			if why := m.V6Unavailable(); why != nil {
				t.Logf("W2D4 V6: rung 6 runs rung 5 here: %v", why)
			}
		}
		return m, err
	}, testing.Short())
}

// TestW2D4WarpgroupBuildsGPU checks the other builds of rung 6 (the deep
// one, which V6 takes only at real prefill sizes, and those
// BenchmarkW2D4V6Variants times: products in flight, 64-row and 64- and
// 256-wide tiles, K split) on the odd shapes, so that a faster build can
// become the default without a new check. Off compute capability 9.0
// every build runs rung 5.
func TestW2D4WarpgroupBuildsGPU(t *testing.T) {
	for _, b := range []struct {
		name          string
		stages        int
		inFlight      bool
		bm, bn, split int
		deep          bool
	}{
		{"deep", 3, false, 0, 0, 0, true}, {"in flight", 4, true, 0, 0, 0, false}, {"64 rows", 3, false, 64, 0, 1, false},
		{"64 rows in flight", 4, true, 64, 0, 1, false}, {"64 wide", 3, false, 0, 64, 1, false},
		{"256 wide", 3, false, 0, 256, 1, false}, {"K in 3", 3, false, 0, 128, 3, false},
	} {
		t.Run(b.name, func(t *testing.T) {
			w2d4.Rung(t, "W2D4 V6 "+b.name, 6, func(d *kernels.Device) (*Matmul, error) {
				c := cudaV3
				c.v6Stages, c.v6InFlight = b.stages, b.inFlight
				m, err := newMatmul(d, c)
				if err == nil {
					m.v6BM, m.v6BN, m.v6Split, m.v6Deep = b.bm, b.bn, b.split, b.deep
				}
				return m, err
			}, true)
		})
	}
}
