package day1

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/scratch/scratchtest"
	"github.com/tinyllm-go/tinyllm/models"
)

// withAndWithout builds the shipped bf16 model twice over the same
// weights: as NewQwen2ModelWeek2 does, with its activation buffers, and
// without them.
func withAndWithout(t *testing.T) (with, without *Qwen2ModelWeek2) {
	t.Helper()
	dir, _, err := models.Open()
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	with, err = NewQwen2ModelWeek2(ck)
	if err != nil {
		t.Fatal(err)
	}
	plain := *with
	plain.buffers = nil
	return with, &plain
}

func TestBuffersGiveTheSameLogits(t *testing.T) {
	with, without := withAndWithout(t)
	scratchtest.SameLogits(t, with, without, with.Config.VocabSize)
	if with.buffers.Bytes() == 0 {
		t.Fatal("the model's buffers hold nothing after seven forward passes")
	}
}

func TestBuffersCutAllocation(t *testing.T) {
	with, without := withAndWithout(t)
	scratchtest.CutsAllocation(t, with, without, with.Config.VocabSize)
}
