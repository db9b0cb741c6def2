package kernels_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// TestCheckCUDASource compiles without a GPU where NVRTC is installed: a
// good source passes, a bad one fails with the compiler's log.
func TestCheckCUDASource(t *testing.T) {
	good := `extern "C" __global__ void twice(float* x) { x[threadIdx.x] *= 2.0f; }`
	err := kernels.CheckCUDASource(good, "sm_90")
	if errors.Is(err, kernels.ErrNoCompiler) {
		if os.Getenv(kerneltest.RequireEnv) != "" && kernels.PlatformBackend() == kernels.CUDA {
			t.Fatal(err)
		}
		t.Skipf("not run: %v", err)
	}
	if err != nil {
		t.Fatalf("a correct kernel did not compile: %v", err)
	}
	err = kernels.CheckCUDASource(strings.Replace(good, "2.0f;", "2.0f", 1), "sm_90")
	var ce *kernels.CompileError
	if !errors.As(err, &ce) || !strings.Contains(ce.Log, "error") {
		t.Fatalf("a kernel with a syntax error gave %v, want a CompileError with the compiler's log", err)
	}
}
