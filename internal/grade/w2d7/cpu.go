package w2d7

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/safetensors"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// Sources checks, on any machine, that the CUDA and the Metal source each
// declare every kernel the day launches, under its exact name.
func Sources(t *testing.T, source func(backend string) string, names []string) {
	for _, backend := range []string{kernels.CUDA, kernels.Metal} {
		src := source(backend)
		if src == "" {
			t.Errorf("W2D7: no %s source", backend)
			continue
		}
		for _, name := range names {
			decl := `extern "C" __global__ void (__launch_bounds__\(\d+\) )?` + name + `\(`
			if backend == kernels.Metal {
				decl = `kernel void ` + name + `\(`
			}
			if !regexp.MustCompile(decl).MatchString(src) {
				t.Errorf("W2D7: the %s source declares no kernel %s", backend, name)
			}
		}
	}
}

// MemoryNeedFunc is the day's MemoryNeed with the two options that size
// the cache and the activations.
type MemoryNeedFunc func(cfg checkpoint.Config, maxContext, prefillRows int) (int64, error)

// MemoryNeed checks, on any machine, what the day computes before it
// allocates: for both shipped checkpoints, at least the bytes of every
// tensor in the weight files; growing the context by n positions adds
// exactly the caches' and the RoPE table's n positions, and growing the
// prefill rows adds activations only; a context beyond the model's
// max_position_embeddings, or negative sizes, are errors.
func MemoryNeed(t *testing.T, need MemoryNeedFunc) {
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tinyqwen-chat", "tinyqwen-chat-4bit"} {
		dir := filepath.Join(root, "models", name)
		ck, err := checkpoint.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer ck.Close()
		cfg := ck.Config
		var inFiles int64
		for _, path := range ck.WeightFiles() {
			f, err := safetensors.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range f.Names() {
				info, _ := f.Info(n)
				size, _ := safetensors.DTypeSize(info.DType)
				b := int64(size)
				for _, d := range info.Shape {
					b *= int64(d)
				}
				inFiles += b
			}
			f.Close()
		}
		base, err := need(cfg, 64, 16)
		if err != nil {
			t.Fatalf("W2D7 MemoryNeed(%s, 64 positions, 16 rows): %v", name, err)
		}
		if base < inFiles {
			t.Errorf("W2D7 MemoryNeed(%s) = %d bytes, less than the %d bytes of its weight files", name, base, inFiles)
		}
		longer, err := need(cfg, 64+100, 16)
		if err != nil {
			t.Fatal(err)
		}
		d := cfg.HeadDim()
		wantGrowth := int64(cfg.NumHiddenLayers)*(devtensor.KVCacheBytes(cfg.NumKeyValueHeads, 164, d)-devtensor.KVCacheBytes(cfg.NumKeyValueHeads, 64, d)) +
			4*100*int64(d) // cos and sin, D/2 float32 each per position
		if longer-base != wantGrowth {
			t.Errorf("W2D7 MemoryNeed(%s): 100 more positions add %d bytes, want %d (the float32 caches of %d layers and the RoPE table)",
				name, longer-base, wantGrowth, cfg.NumHiddenLayers)
		}
		wider, err := need(cfg, 64, 32)
		if err != nil {
			t.Fatal(err)
		}
		// A row of activations, and Day 4's scratch a row: x in bf16 and
		// up to 8 split-K partial results of the widest product.
		e, inter := cfg.HiddenSize, cfg.IntermediateSize
		widest := max(2*inter, (cfg.NumAttentionHeads+2*cfg.NumKeyValueHeads)*d, e)
		perRow := int64(4*(10*e+3*inter)+4) + int64(2*max(e, inter)+4*8*widest)
		if wider <= base || wider-base > 16*perRow {
			t.Errorf("W2D7 MemoryNeed(%s): 16 more prefill rows add %d bytes, want some activations and matrix-product scratch of 16 rows (0 < Δ <= %d)",
				name, wider-base, 16*perRow)
		}
		for _, bad := range [][2]int{{cfg.MaxPositionEmbeddings + 1, 16}, {-1, 16}, {64, -1}} {
			if _, err := need(cfg, bad[0], bad[1]); err == nil {
				t.Errorf("W2D7 MemoryNeed(%s, %d positions, %d rows) gave no error", name, bad[0], bad[1])
			}
		}
	}
}

// CUDACompiles compiles the day's CUDA source with NVRTC for an H100/H200
// (sm_90) at every head dimension the attention kernels are built for.
// NVRTC runs without a GPU, so this runs wherever NVRTC is installed (the
// CUDA toolkit, or the nvidia-cuda-nvrtc wheel that PyTorch brings; point
// TINYLLM_NVRTC at it), and says by name that it did not run elsewhere.
func CUDACompiles(t *testing.T, source func(backend string) string) {
	for _, d := range []int{16, 32, 64, 128} {
		err := kernels.CheckCUDASource(fmt.Sprintf("#define HEAD_DIM %d\n", d)+source(kernels.CUDA), "sm_90")
		if errors.Is(err, kernels.ErrNoCompiler) {
			if os.Getenv(kerneltest.RequireEnv) != "" {
				t.Fatalf("W2D7: %v", err)
			}
			t.Skipf("not run: %v", err)
		}
		if err != nil {
			t.Fatalf("W2D7: the CUDA source does not compile with HEAD_DIM %d: %v", d, err)
		}
	}
}
