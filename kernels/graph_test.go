package kernels_test

import (
	"errors"
	"testing"

	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// A kernel whose effect depends on device memory only: it reads a counter,
// writes a mark at that index and advances the counter, the way a decode
// step reads its position. Replaying it must move on every time.
const graphCU = `
extern "C" __global__ void graph_step(int* counter, float* marks, float add) {
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        int c = counter[0];
        marks[c] = 2.0f * c + add;
        counter[0] = c + 1;
    }
}
`

const graphMetal = `
#include <metal_stdlib>
using namespace metal;
kernel void graph_step(device int* counter [[buffer(0)]], device float* marks [[buffer(1)]],
                       constant float& add [[buffer(2)]], uint tid [[thread_position_in_grid]]) {
    if (tid == 0) {
        int c = counter[0];
        marks[c] = 2.0f * c + add;
        counter[0] = c + 1;
    }
}
`

// TestGPUGraphReplays: a captured graph runs nothing while it is captured,
// replays its launches in order every time it is launched (reading what
// changes from device memory), refuses copies while capturing, discards a
// capture whose function failed, and is counted and freed like any object.
func TestGPUGraphReplays(t *testing.T) {
	d := kerneltest.Open(t)
	m, err := d.Compile(kerneltest.Source(t, d, graphCU, graphMetal))
	must(t, err)
	defer m.Close()
	k := kernel(t, m, "graph_step")
	counter, err := kernels.Upload(d, []int32{0})
	must(t, err)
	defer counter.Free()
	marks, err := kernels.Upload(d, make([]float32, 16))
	must(t, err)
	defer marks.Free()
	one := kernels.LaunchConfig{Grid: kernels.D1(1), Block: kernels.D1(32)}

	const perGraph, replays = 3, 4
	g, err := d.Capture(func() error {
		for range perGraph {
			if err := d.Launch(k, one, counter, marks, float32(1)); err != nil {
				return err
			}
		}
		if err := kernels.Write(counter, 0, []int32{5}); !errors.Is(err, kernels.ErrCapturing) {
			t.Errorf("Write while capturing = %v, want ErrCapturing", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Capture: %v", err)
	}
	if got := d.Stats().Graphs; got != 1 {
		t.Errorf("Stats().Graphs = %d after one capture, want 1", got)
	}
	c, err := kernels.Download[int32](counter, 1)
	must(t, err)
	if c[0] != 0 {
		t.Fatalf("the counter is %d right after the capture: captured launches ran (want 0)", c[0])
	}
	for range replays {
		must(t, g.Launch())
	}
	c, err = kernels.Download[int32](counter, 1)
	must(t, err)
	if c[0] != perGraph*replays {
		t.Fatalf("after %d replays of %d launches the counter is %d, want %d", replays, perGraph, c[0], perGraph*replays)
	}
	got, err := kernels.Download[float32](marks, 16)
	must(t, err)
	for i := range 16 {
		want := float32(0)
		if i < perGraph*replays {
			want = 2*float32(i) + 1
		}
		if got[i] != want {
			t.Errorf("mark %d = %g, want %g", i, got[i], want)
		}
	}
	must(t, g.Free())
	must(t, g.Free())
	if got := d.Stats().Graphs; got != 0 {
		t.Errorf("Stats().Graphs = %d after Free, want 0", got)
	}

	boom := errors.New("boom")
	if g2, err := d.Capture(func() error {
		if err := d.Launch(k, one, counter, marks, float32(1)); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) || g2 != nil {
		t.Errorf("Capture of a failing function = %v, %v; want nil and its error", g2, err)
	}
	// The device works normally after a discarded capture.
	must(t, kernels.Write(counter, 0, []int32{0}))
	must(t, d.Launch(k, one, counter, marks, float32(7)))
	c, err = kernels.Download[int32](counter, 1)
	must(t, err)
	if c[0] != 1 {
		t.Errorf("after a discarded capture one launch moved the counter to %d, want 1", c[0])
	}
}
