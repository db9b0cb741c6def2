package gpurunner

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// TestSourcesDeclareKernels checks that both backends' sources declare
// every kernel the runner launches.
func TestSourcesDeclareKernels(t *testing.T) {
	for _, backend := range []string{kernels.CUDA, kernels.Metal} {
		src := source(backend)
		for _, name := range []string{"paged_qkv", "paged_attention_bf16", "paged_attention_merge", "gather_rows", "argmax_rows"} {
			if !strings.Contains(src, " "+name+"(") {
				t.Errorf("the %s source declares no kernel %s", backend, name)
			}
		}
	}
}

// TestCUDASourceCompiles compiles the runner's CUDA kernels with NVRTC
// where it is installed; no GPU is needed.
func TestCUDASourceCompiles(t *testing.T) {
	// Qwen2-0.5B's and 7B's heads, the shipped model's, the test
	// checkpoints'.
	for _, gd := range [][2]int{{7, 64}, {7, 128}, {4, 32}, {2, 16}, {3, 16}, {8, 128}, {1, 64}} {
		err := kernels.CheckCUDASource(fmt.Sprintf("#define GROUP %d\n#define HEAD_DIM %d\n", gd[0], gd[1])+source(kernels.CUDA), "sm_90")
		if errors.Is(err, kernels.ErrNoCompiler) {
			if os.Getenv(kerneltest.RequireEnv) != "" {
				t.Fatal(err)
			}
			t.Skipf("not run: %v", err)
		}
		if err != nil {
			t.Fatalf("the runner's CUDA source does not compile with GROUP %d and HEAD_DIM %d: %v", gd[0], gd[1], err)
		}
	}
}
