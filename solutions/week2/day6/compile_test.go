package day6

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// TestW2D6CUDASourcesCompile compiles both CUDA files with NVRTC for a
// Hopper GPU (where attention_decode_stream exists) and an Ampere one
// (where it does not), and the prefill file for a Turing one, for the
// Qwen2 heads and odd ones, checking that attention_prefill_tc is compiled
// exactly where Prefill may launch it (compute capability 8.0 or later,
// head dimension 64 or 128; elsewhere the file must still compile, for
// attention_prefill), and the tensor-core builds of attention_decode_stream
// at each of those heads; then every build of attention_decode_stream the
// benchmarks try (streamVariants, each part of the kernel left out, and the
// timeline's stamping builds), at Qwen2-7B's heads. No GPU is needed, only
// NVRTC (else the check says it did not run).
func TestW2D6CUDASourcesCompile(t *testing.T) {
	type build struct {
		arch, file string
		group, dim int
		sb         streamBuild
		defines    string
	}
	var builds []build
	for _, gd := range [][2]int{{7, 128}, {7, 64}, {8, 128}, {1, 32}, {2, 96}, {3, 24}} {
		builds = append(builds, build{"sm_90", "prefill", gd[0], gd[1], defaultStream, ""}, build{"sm_90", "decode", gd[0], gd[1], defaultStream, ""},
			build{"sm_80", "prefill", gd[0], gd[1], defaultStream, ""}, build{"sm_80", "decode", gd[0], gd[1], defaultStream, ""},
			build{"sm_75", "prefill", gd[0], gd[1], defaultStream, ""},
			build{"sm_90", "decode", gd[0], gd[1], tcStream, ""}, build{"sm_90", "decode", gd[0], gd[1], streamBuild{8, 2, 32, 16, true, 0}, ""},
			build{"sm_90", "decode", gd[0], gd[1], tcGroups, ""})
	}
	for _, v := range streamVariants {
		builds = append(builds, build{"sm_90", "decode", 7, 128, v.sb, v.defines})
	}
	// The timeline's builds (TRACE), as BenchmarkW2D6DecodeTimeline takes them.
	for _, sb := range []streamBuild{tcStream, tcGroups} {
		builds = append(builds, build{"sm_90", "decode", 7, 128, sb, "#define TRACE 1\n"})
	}
	for _, anat := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 18} {
		for _, sb := range []streamBuild{defaultStream, tcStream, tcGroups} {
			builds = append(builds, build{"sm_90", "decode", 7, 128, sb, fmt.Sprintf("#define ANAT %d\n", anat)})
		}
	}
	// NVRTC compiles different programs on several threads at once, and the
	// list takes minutes on one: the builds are spread over the CPUs, once
	// an empty kernel has said whether there is a compiler at all.
	compile := func(b build) {
		defines := b.sb.defines(b.group, b.dim) + b.defines
		src := defines + Source(kernels.CUDA, b.file)
		if b.file == "prefill" {
			// TC_SMEM is defined with attention_prefill_tc and only there.
			if b.arch != "sm_75" && (b.dim == 64 || b.dim == 128) {
				src += "\n#ifndef TC_SMEM\n#error attention_prefill_tc is left out\n#endif\n"
			} else {
				src += "\n#ifdef TC_SMEM\n#error attention_prefill_tc is compiled where Prefill never launches it\n#endif\n"
			}
		}
		if err := kernels.CheckCUDASource(src, b.arch); err != nil {
			t.Errorf("%s.cu does not compile for %s with GROUP %d, HEAD_DIM %d, build %+v, %q: %v", b.file, b.arch, b.group, b.dim, b.sb, b.defines, err)
		}
	}
	if err := kernels.CheckCUDASource("extern \"C\" __global__ void nothing() {}", "sm_90"); errors.Is(err, kernels.ErrNoCompiler) {
		if os.Getenv(kerneltest.RequireEnv) != "" {
			t.Fatal(err)
		}
		t.Skipf("not run: %v", err)
	}
	onCPUs(len(builds), func(i int) { compile(builds[i]) })
}
