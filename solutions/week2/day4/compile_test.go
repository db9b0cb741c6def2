package day4

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// TestW2D4CUDASourcesCompile compiles both CUDA files with NVRTC for a
// Hopper GPU and an Ampere one, with the options NewMatmul passes, rung 6's
// file for sm_90a, and the
// fast file with every build BenchmarkW2D4GemvVariants compares. No GPU is needed, only NVRTC (else
// the check says it did not run).
func TestW2D4CUDASourcesCompile(t *testing.T) {
	base := []string{"-DV3_WROWS=4", "-DV3_ROWS=2", "-DV3_UNROLL=2", "-DGV_ROWS=8", "-DGV_UNROLL=1", "-DGV_MINB=2", "-DQT_U=1", "-DV5_BK=64", "-DV5_STAGES=3"}
	builds := [][]string{nil, {"-DMQ_U=1"}, {"-DMQ_LEVELS=1"}, {"-DMQ_LEVELS=2"}, {"-DMQ_U=4", "-DMQ_MINB=1"}}
	for _, arch := range []string{"sm_90", "sm_80"} {
		for _, file := range []string{"matmul", "matmul_fast"} {
			for i, extra := range builds {
				if i > 0 && (file == "matmul" || arch != "sm_90") {
					continue
				}
				opts := append(append([]string{}, base...), extra...)
				err := kernels.CheckCUDASource(Source(kernels.CUDA, file), arch, opts...)
				if errors.Is(err, kernels.ErrNoCompiler) {
					if os.Getenv(kerneltest.RequireEnv) != "" {
						t.Fatal(err)
					}
					t.Skipf("not run: %v", err)
				}
				if err != nil {
					t.Errorf("%s.cu does not compile for %s with %s: %v", file, arch, strings.Join(opts, " "), err)
				}
			}
		}
	}
	// Rung 6 exists for sm_90a only, with each stage count its benchmark
	// compares.
	for _, build := range [][]string{{"-DW6_STAGES=3", "-DW6_INFLIGHT=0"}, {"-DW6_STAGES=4", "-DW6_INFLIGHT=0"}, {"-DW6_STAGES=4", "-DW6_INFLIGHT=1"}, {"-DW6_STAGES=5", "-DW6_INFLIGHT=1"}} {
		if err := kernels.CheckCUDASource(Source(kernels.CUDA, "matmul_wgmma"), "sm_90a", build...); err != nil {
			t.Errorf("matmul_wgmma.cu does not compile for sm_90a with %s: %v", strings.Join(build, " "), err)
		}
	}
}
