package day6

// The checks live in internal/grade/w2d6, shared with the other tree. The GPU
// checks run where this machine has a GPU and say by name that they did not
// run where it has none.

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d6"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

func TestW2D6Task1FlashAttention(t *testing.T) { w2d6.FlashFixtures(t, FlashAttention, BlockK) }

func TestW2D6Task1MatchesWeek1(t *testing.T) { w2d6.MatchesWeek1(t, FlashAttention, BlockK) }

func TestW2D6Task1Misuses(t *testing.T) { w2d6.FlashMisuses(t, FlashAttention) }

func TestW2D6Sources(t *testing.T) { w2d6.Sources(t, Source) }

func TestW2D6DecodeRefusesBadShapes(t *testing.T) {
	w2d6.RefusesBadShapes(t, "W2D6 Task 2 Decode", new(Attention).Decode)
}

func TestW2D6PrefillRefusesBadShapes(t *testing.T) {
	w2d6.RefusesBadShapes(t, "W2D6 Prefill", new(Attention).Prefill)
}

func TestW2D6Task2DecodeGPU(t *testing.T) {
	w2d6.GPUFixtures(t, "W2D6 Task 2 Decode", w2d6.Decode, NewAttention)
}

func TestW2D6Task2DecodeRealShapesGPU(t *testing.T) {
	w2d6.GPUvsCPU(t, "W2D6 Task 2 Decode", w2d6.Decode, NewAttention)
}

// The prefill checks hold Prefill to one kernel each, whichever the
// default or TINYLLM_PREFILL picks: the float32 one with the float32
// tolerance, the tensor-core one with the bf16 tolerances.

func TestW2D6PrefillGPU(t *testing.T) {
	w2d6.GPUFixtures(t, "W2D6 Prefill", w2d6.Prefill, withPrefill(prefillFloat))
}

func TestW2D6PrefillRealShapesGPU(t *testing.T) {
	w2d6.GPUvsCPU(t, "W2D6 Prefill", w2d6.Prefill, withPrefill(prefillFloat))
}

func TestW2D6PrefillTensorCoresGPU(t *testing.T) {
	w2d6.TensorCoreFixtures(t, "W2D6 Prefill", withPrefill(prefillTCOnly), tcPrefillFits)
}

// TestW2D6PrefillKernelsAgreeGPU runs both prefill kernels and Prefill's
// own pick on odd shapes (w2d6.OddPrefillShapes), each against the CPU
// formula and against the float32 kernel; the tensor-core kernel only
// where it applies.
func TestW2D6PrefillKernelsAgreeGPU(t *testing.T) {
	d := kerneltest.Open(t)
	var paths []w2d6.Path
	for _, k := range []struct {
		name   string
		kernel prefillKernel
		bf16   bool
	}{{"attention_prefill", prefillFloat, false}, {"attention_prefill_tc", prefillTCOnly, true}, {"Prefill's pick", prefillAuto, true}} {
		if k.kernel == prefillTCOnly && !(tcPrefillFits(d, 64) && tcPrefillFits(d, 128)) {
			t.Logf("not run: attention_prefill_tc does not apply on %s (compute capability %q)", d, d.Info().ComputeCapability)
			continue
		}
		a, err := withPrefill(k.kernel)(d)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		paths = append(paths, w2d6.Path{Name: k.name, Run: a.Prefill, BF16: k.bf16})
	}
	w2d6.PrefillPathsAgree(t, "W2D6 Prefill", d, paths)
}

// TestW2D6PrefillKernelFromEnv checks, on any machine, what
// TINYLLM_PREFILL selects, and that a value it does not know is an error.
func TestW2D6PrefillKernelFromEnv(t *testing.T) {
	for v, want := range map[string]prefillKernel{"": prefillAuto, "auto": prefillAuto, "float32": prefillFloat, "tc": prefillTC} {
		t.Setenv("TINYLLM_PREFILL", v)
		if got, err := prefillFromEnv(); err != nil || got != want {
			t.Errorf("TINYLLM_PREFILL=%q: got %d, %v; want %d", v, got, err, want)
		}
	}
	t.Setenv("TINYLLM_PREFILL", "fp32")
	if _, err := prefillFromEnv(); err == nil {
		t.Error(`TINYLLM_PREFILL="fp32": no error`)
	}
}

// withPrefill is NewAttention with Prefill held to one kernel.
func withPrefill(k prefillKernel) func(*kernels.Device) (*Attention, error) {
	return func(d *kernels.Device) (*Attention, error) {
		a, err := NewAttention(d)
		if err == nil {
			a.prefill = k
		}
		return a, err
	}
}

// TestW2D6DecodePathsAgreeGPU runs every decode kernel path of the
// reference on odd shapes: the two launches (split + reduce), the fused
// kernel, and, on a GPU of compute capability 9.0 or later, the streaming
// kernel (the one Decode picks there), each against the CPU and the later
// ones against split + reduce; then Decode's own pick.
func TestW2D6DecodePathsAgreeGPU(t *testing.T) {
	d := kerneltest.Open(t)
	// One Attention for every path (each (group, head dimension) compiles
	// once); each path's launch sets the path first.
	a, err := NewAttention(d)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var paths []w2d6.Path
	owner := map[string]*Attention{}
	add := func(name string, a *Attention, path decodePath) {
		owner[name] = a
		paths = append(paths, w2d6.Path{Name: name, Run: func(out, q *devtensor.Activations, c *devtensor.KVCache, scale float32, mask *devtensor.Activations, causal bool) error {
			a.path = path
			return a.Decode(out, q, c, scale, mask, causal)
		}})
	}
	add("split+reduce", a, pathSplit)
	add("fused", a, pathFused)
	if hopper(d) {
		add("stream", a, pathStream)
		// Other builds the benchmark compares: the kernel before its
		// copies ahead of the wait and its spread merge, Decode's build
		// with one merger, two other shapes, the merge in the last blocks
		// and in a launch of its own, and builds of two blocks a
		// multiprocessor, in case one becomes the default.
		for _, v := range []streamVariant{baselineStream, {defaultStream, 0, "#define SPREAD 0\n", 0, 0},
			{streamBuild{8, 4, 32, 32, false, 0}, 0, "", 0, 0}, {streamBuild{8, 4, 32, 16, false, 0}, 0, "", 0, 0},
			{defaultStream, 0, "", 0, -1}, {defaultStream, 0, "", 0, 1},
			{streamBuild{8, 2, 32, 16, false, 0}, 0, "", 2, 1}, {streamBuild{4, 2, 32, 16, false, 0}, 0, "", 2, 1},
			// the products on the tensor cores, in four shapes
			{tcStream, 0, "", 2, 1}, {streamBuild{4, 1, 64, 16, true, 0}, 0, "", 2, 1},
			{streamBuild{8, 2, 32, 16, true, 0}, 0, "", 2, 1}, {streamBuild{2, 2, 32, 16, true, 0}, 0, "", 2, 1},
			{tcStream, 0, "#define TROWS 2\n", 2, 1}, {tcStream, 0, "#define TROWS 4\n", 2, 1},
			// groups of warps taking the tiles in turn: two of 2 warps
			// (tcGroups) or of 4, four of one warp
			{tcGroups, 0, "", 2, 1}, {streamBuild{8, 2, 32, 16, true, 2}, 0, "", 2, 1},
			{streamBuild{4, 4, 16, 16, true, 4}, 0, "", 2, 1},
			// K's fragments by ldmatrix
			{tcStream, 0, "#define LDSM 1\n", 2, 1}, {tcGroups, 0, "#define LDSM 1\n", 2, 1},
			// the products in float16 pairs
			{tcStream, 0, "#define HALF 1\n", 2, 1}, {tcGroups, 0, "#define HALF 1\n", 2, 1}} {
			b, err := NewAttention(d)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			b.stream, b.defines, b.perSM, b.mergeApart = v.sb, v.defines, v.perSM, v.apart
			add("stream "+v.String(), b, pathStream)
		}
	} else {
		t.Logf("not run: attention_decode_stream needs compute capability 9.0 or later; %s has %s", d, d.Info().ComputeCapability)
	}
	add("Decode's pick", a, pathAuto)
	// TINYLLM_DECODE_PATHS keeps the paths whose names match it (a
	// maintainer checking one build; each path is checked against the CPU
	// on its own).
	if re := os.Getenv("TINYLLM_DECODE_PATHS"); re != "" {
		keep, err := regexp.Compile(re)
		if err != nil {
			t.Fatalf("TINYLLM_DECODE_PATHS=%q: %v", re, err)
		}
		paths = slices.DeleteFunc(paths, func(p w2d6.Path) bool { return !keep.MatchString(p.Name) })
		if len(paths) == 0 {
			t.Fatalf("TINYLLM_DECODE_PATHS=%q matches no path", re)
		}
		t.Logf("checking %d paths (TINYLLM_DECODE_PATHS)", len(paths))
	}
	var atts []*Attention
	for _, p := range paths {
		if !slices.Contains(atts, owner[p.Name]) {
			atts = append(atts, owner[p.Name])
		}
	}
	warmDecode(t, atts, w2d6.OddDecodeShapes)
	w2d6.DecodePathsAgree(t, "W2D6 Task 2 Decode", d, paths)
	// Decode's pick on this GPU at Qwen2-7B's heads.
	ks, err := a.kernelsFor(7, 128)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ks.stream != nil, hopper(d); got != want {
		t.Errorf("the streaming kernel is available: %v; on %s (compute capability %s) want %v", got, d, d.Info().ComputeCapability, want)
	}
}
