package gpurunner

import (
	"errors"
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
		for _, name := range []string{"paged_qkv", "gather_rows", "argmax_rows"} {
			if !strings.Contains(src, " "+name+"(") {
				t.Errorf("the %s source declares no kernel %s", backend, name)
			}
		}
	}
}

// TestCUDASourceCompiles compiles the runner's CUDA kernels with NVRTC
// where it is installed; no GPU is needed.
func TestCUDASourceCompiles(t *testing.T) {
	err := kernels.CheckCUDASource(source(kernels.CUDA), "sm_90")
	if errors.Is(err, kernels.ErrNoCompiler) {
		if os.Getenv(kerneltest.RequireEnv) != "" {
			t.Fatal(err)
		}
		t.Skipf("not run: %v", err)
	}
	if err != nil {
		t.Fatalf("the runner's CUDA source does not compile: %v", err)
	}
}
