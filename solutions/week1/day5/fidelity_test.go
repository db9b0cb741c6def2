package day5

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w1d5"
	"github.com/tinyllm-go/tinyllm/internal/npy"
)

// TestW1D5FidelityFullSize compares the reference Week 1 model with Hugging
// Face on a random Qwen2 of the real Qwen2-0.5B shape. The 1 GB checkpoint is
// made by refgen/fidelity/qwen2_full_size.py (see `make fidelity-w1d5`), so the
// test runs only where TINYLLM_FIDELITY_DIR points at its output.
func TestW1D5FidelityFullSize(t *testing.T) {
	dir := os.Getenv("TINYLLM_FIDELITY_DIR")
	if dir == "" {
		t.Skip("not run: needs TINYLLM_FIDELITY_DIR (a full-size checkpoint from refgen/fidelity; `make fidelity-w1d5` on a machine with PyTorch)")
	}
	tokArr, err := npy.ReadFile(filepath.Join(dir, "tokens.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tokArr.Ints()
	if err != nil {
		t.Fatal(err)
	}
	wantArr, err := npy.ReadFile(filepath.Join(dir, "logprobs.npy"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := wantArr.Tensor()
	if err != nil {
		t.Fatal(err)
	}
	w1d5.CompareLogProbs(t, "W1D5 full-size fidelity", filepath.Join(dir, "checkpoint"), [][]int{ids}, want, NewQwen2ModelWeek1)
}
