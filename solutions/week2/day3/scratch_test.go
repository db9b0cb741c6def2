package day3

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/scratch/scratchtest"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/models"
)

// withAndWithout builds the shipped model's 4-bit sibling as the engine
// does, with 8-bit activations (the path whose products go into the
// model's buffers), twice over the same weights: with its activation
// buffers and without them. On a machine without those kernels it reports
// by name that it did not run.
func withAndWithout(t *testing.T) (with, without *Qwen2ModelWeek2) {
	t.Helper()
	if !tensor.HasInt8Kernels() {
		t.Skip("not run: this machine has no 8-bit-activation kernels (amd64 with AVX2 has them)")
	}
	dir, _, err := models.Open4Bit()
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	tensor.AllowInt8Activations(true)
	t.Cleanup(func() { tensor.AllowInt8Activations(false) })
	with, err = NewQwen2ModelWeek2(ck)
	if err != nil {
		t.Fatal(err)
	}
	if with.Layers[0].MLP.Down.q4 == nil {
		t.Fatal("the shipped 4-bit model does not take the 8-bit-activation path")
	}
	plain := *with
	plain.buffers = nil
	return with, &plain
}

func TestBuffersGiveTheSameLogits(t *testing.T) {
	with, without := withAndWithout(t)
	scratchtest.SameLogits(t, with, without, with.Config.VocabSize)
}

func TestBuffersCutAllocation(t *testing.T) {
	with, without := withAndWithout(t)
	scratchtest.CutsAllocation(t, with, without, with.Config.VocabSize)
}
