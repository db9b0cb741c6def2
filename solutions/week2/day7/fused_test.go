package day7

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/w2d7"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
	day4 "github.com/tinyllm-go/tinyllm/solutions/week2/day4"
)

// TestW2D7FusedSourceCompiles compiles the fused step (Day 4's core and
// fused_step.cu, as Load builds it) with NVRTC, as TestW2D7CUDASourceCompiles
// does the day's own kernels.
func TestW2D7FusedSourceCompiles(t *testing.T) {
	w2d7.CUDACompiles(t, func(string) string {
		return "#define MATVEC_CORE_ONLY\n" + day4.Source(kernels.CUDA, "matmul_fast") + fusedCUDA
	})
}

// TestW2D7FusedAttentionLongContextGPU checks the captured step's attention
// (fs_attention_wide) past the context that one block takes in one pass:
// with its default ranges, a context of 291 to 296 positions is two ranges
// merged by the last block; with one range, a warp takes its keys in more
// than one batch. Against the step launched kernel by kernel (Day 6's
// attention), on the shipped model in bf16 and in 4-bit (where the
// attention also publishes its output in int8 parts for o_proj, from the
// merge too).
func TestW2D7FusedAttentionLongContextGPU(t *testing.T) {
	d := kerneltest.Open(t)
	for _, dir := range []string{"models/tinyqwen-chat", "models/tinyqwen-chat-4bit"} {
		t.Run(filepath.Base(dir), func(t *testing.T) { fusedAttentionLongContext(t, d, dir) })
	}
}

func fusedAttentionLongContext(t *testing.T, d *kernels.Device, dir string) {
	ck := grade.OpenCheckpoint(t, dir)
	prompt := make([]int, 290)
	for i := range prompt {
		prompt[i] = (i*7919 + 13) % ck.Config.VocabSize
	}
	eager, err := Load(d, ck, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eager.Close()
	for _, splits := range []int{0, 1} {
		graphed, err := Load(d, ck, Options{Graph: true})
		if err != nil {
			t.Fatal(err)
		}
		if splits > 0 {
			graphed.splits = splits // fewer ranges than the buffers hold
		}
		eager.Reset()
		a, err := eager.Prefill(prompt)
		if err != nil {
			t.Fatal(err)
		}
		b, err := graphed.Prefill(prompt)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 6 {
			at := fmt.Sprintf("W2D7 fused attention, %s, %d ranges at most, position %d", filepath.Base(dir), graphed.splits, len(prompt)+i)
			if a, err = eager.Decode(a); err != nil {
				t.Fatal(err)
			}
			if b, err = graphed.Decode(b); err != nil {
				t.Fatal(err)
			}
			la, err := eager.Logits()
			if err != nil {
				t.Fatal(err)
			}
			lb, err := graphed.Logits()
			if err != nil {
				t.Fatal(err)
			}
			grade.AllClose(t, at+": captured logits against launched ones", lb, la, w2d7.GraphTol)
			if a != b {
				t.Fatalf("%s: the captured step chose token %d, the launched one %d", at, b, a)
			}
		}
		if captured, err := graphed.Graphed(); err != nil || !captured {
			t.Fatalf("the decode step was not captured (%v)", err)
		}
		if err := graphed.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
