package day3

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/grade/w2d3"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// The engine's fast path (8-bit activations, tensor.MatmulQ4Each) on the
// same mlx-lm cases as Task 5, to the looser w2d3.Int8Tol. The tied case
// has groups of 64 and takes the fast path; the untied one, in groups of
// 128, keeps the float product and must still pass.
func TestW2D3Int8ActivationsModel(t *testing.T) {
	if !tensor.HasInt8Kernels() {
		t.Skip("not run: this machine has no 8-bit-activation kernels (amd64 with AVX2 has them)")
	}
	tensor.AllowInt8Activations(true)
	t.Cleanup(func() { tensor.AllowInt8Activations(false) })
	fast := 0
	w2d3.Int8Model(t, func(ck *checkpoint.Checkpoint) (*Qwen2ModelWeek2, error) {
		m, err := NewQwen2ModelWeek2(ck)
		if err == nil && ck.Config.Quantization.GroupSize == 64 {
			if m.Embedding.q4 == nil || m.Layers[0].MLP.Down.q4 == nil {
				t.Fatalf("groups of 64 with bf16 scales: the model should take the 8-bit-activation path")
			}
			fast++
		}
		return m, err
	})
	if fast == 0 {
		t.Fatal("no case had groups of 64: the fast path was not exercised")
	}
}
