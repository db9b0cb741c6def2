package day7

// BenchmarkW2D7DecodeStep times the captured decode step (graph replays,
// device events) of the shipped model, or of the checkpoints listed in
// TINYLLM_W2D7_BENCH_MODELS (comma-separated folders, e.g. random Qwen2-0.5B
// and 7B shapes from `tinyllm mkmodel`), at position 128: the fused step
// the reference captures, the unfused one (Days 4-6's kernels and the
// day's attention, as before the fusion), and each fused kernel alone, all
// of a kind in one graph, so that the step's time can be split between
// them. On a 4-bit checkpoint the fused step and its matrix kernels are
// also timed on float x (…_floatx; the default rounds x to int8).
// TINYLLM_W2D7_BENCH_SHAPES (comma-separated shape:layers, e.g.
// qwen2-7b:2) adds random checkpoints of a public shape cut to that many
// layers, written and quantized to 4-bit (groups of 64) in a temporary
// folder: the 7B shape's layers and head without its 15 GB, from which a
// whole model's step is the embedding and head plus the layers' share
// times its depth. Without a GPU it says so and runs nothing.
//
//	go test -run '^$' -bench W2D7DecodeStep -benchtime 200ms ./solutions/week2/day7

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/bench"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/quantize"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

func BenchmarkW2D7DecodeStep(b *testing.B) {
	d := kerneltest.Open(b)
	dirs := strings.Split(os.Getenv("TINYLLM_W2D7_BENCH_MODELS"), ",")
	if dirs[0] == "" {
		root, err := fixture.RepoRoot()
		if err != nil {
			b.Fatal(err)
		}
		dirs = []string{filepath.Join(root, "models", "tinyqwen-chat")}
	}
	if shapes := os.Getenv("TINYLLM_W2D7_BENCH_SHAPES"); shapes != "" {
		root, err := fixture.RepoRoot()
		if err != nil {
			b.Fatal(err)
		}
		for _, sl := range strings.Split(shapes, ",") {
			dirs = append(dirs, randomQ4(b, sl, filepath.Join(root, "models", "tinyqwen-chat")))
		}
	}
	for _, dir := range dirs {
		ck, err := checkpoint.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		m, err := Load(d, ck, Options{Graph: true})
		if err != nil {
			b.Fatal(err)
		}
		name := filepath.Base(dir)
		variants := []stepVariant{
			{"fused", "", false}, {"unfused", "-", false}, {"embed", "embed", false}, {"fs_qkv", "fs_qkv", false},
			{"fs_attention", "fs_attention", false}, {"fs_resid", "fs_resid", false}, {"fs_gateup", "fs_gateup", false},
			{"fs_head", "fs_head", false},
		}
		if ck.Config.Quantization != nil {
			for _, v := range []string{"fs_qkv", "fs_resid", "fs_gateup", "fs_head"} {
				variants = append(variants, stepVariant{v + "_floatx", v, true})
			}
			variants = append(variants, stepVariant{"fused_floatx", "", true})
		}
		// The fused step with other splits and grids (fusedSplit): rows
		// split for 2 blocks a multiprocessor, the grid capped at 4 or 8
		// blocks a multiprocessor (the defaults for 4-bit W: 1 and 2).
		variants = append(variants, stepVariant{"fused_target2", "", false}, stepVariant{"fused_cap4", "", false},
			stepVariant{"fused_cap8", "", false})
		// The fused step with other depths of the early requests for the
		// first slices of W (fusedPrefetch), 0 for none.
		for _, pf := range []string{"0", "1", "4", "8", "16"} {
			variants = append(variants, stepVariant{"fused_pf" + pf, "", false})
		}
		// The 4-bit kernels on x in int8 parts built without the next
		// round of weights in flight (Day 4's core, MQ_PIPE 0): the step
		// and each matrix kernel alone.
		builds, levels := map[string]string{}, map[string]int{}
		if ck.Config.Quantization != nil {
			for _, v := range eachMatrixKernel("_nopipe") {
				builds[v.name] = "#define MQ_PIPE 0\n"
				variants = append(variants, v)
			}
			// The 4-bit kernels in blocks of 512 threads, one a
			// multiprocessor: x staged half as often.
			variants = append(variants, eachMatrixKernel("_t512")...)
			// The 4-bit kernels as they were before x was published
			// once: every block stages and rounds x itself (FS_PUB 0).
			for _, v := range eachMatrixKernel("_staged") {
				builds[v.name] = "#define FS_PUB 0\n"
				variants = append(variants, v)
			}
			// x in three int8 parts (float32's precision, Day 4's
			// default) instead of fusedLevels.
			for _, v := range eachMatrixKernel("_levels3") {
				builds[v.name], levels[v.name] = "", 3
				variants = append(variants, v)
			}
			// Anatomy builds (wrong results): without the arithmetic;
			// the staging build without the staging of x.
			builds["fused_anat_no_arithmetic"] = "#define MQ_ANAT 1\n"
			builds["fused_staged_anat_x_not_staged"] = "#define FS_PUB 0\n#define MQ_ANAT 2\n"
			variants = append(variants, stepVariant{"fused_anat_no_arithmetic", "", false},
				stepVariant{"fused_staged_anat_x_not_staged", "", false})
		}
		for _, v := range variants {
			b.Run(name+"/"+v.name, func(b *testing.B) {
				m.floatQ4 = v.floatX
				switch v.name {
				case "fused_target2":
					m.fuseTarget = 2
				case "fused_cap4":
					m.fuseCap = 4
				case "fused_cap8":
					m.fuseCap = 8
				}
				if strings.HasSuffix(v.name, "_t512") {
					m.q4Threads = 512
				}
				if n, ok := strings.CutPrefix(v.name, "fused_pf"); ok {
					depth, err := strconv.Atoi(n)
					if err != nil {
						b.Fatal(err)
					}
					m.prefetch = depth
					if depth == 0 {
						m.prefetch = -1 // none
					}
				}
				defer func() {
					m.floatQ4, m.fuseTarget, m.fuseCap, m.prefetch, m.q4Threads = false, 0, 0, 0, 0
				}()
				if defs, ok := builds[v.name]; ok {
					mod, fk, err := m.compileFused(cmp.Or(levels[v.name], fusedLevels), defs)
					if err != nil {
						b.Fatal(err)
					}
					keep := m.fk
					m.fk = fk
					defer func() { m.fk = keep; mod.Close() }()
				}
				benchStep(b, d, m, v.only)
			})
		}
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchStep prefills 128 tokens, captures the step as only says ("": the
// fused step, "-": the unfused one, else that kernel alone) and times b.N
// replays.
func benchStep(b *testing.B, d *kernels.Device, m *GPUModel, only string) {
	m.Reset()
	prompt := make([]int, 128)
	for i := range prompt {
		prompt[i] = (i*7919 + 13) % m.cfg.VocabSize
	}
	tok, err := m.Prefill(prompt)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Decode(tok); err != nil {
		b.Fatal(err)
	}
	m.noFuse, m.fuseOnly = only == "-", ""
	if only != "-" {
		m.fuseOnly = only
	}
	g, err := d.Capture(func() error { return m.forward(1, stepGraph, true) })
	launches := m.launches
	m.noFuse, m.fuseOnly = false, ""
	if err != nil {
		b.Fatal(err)
	}
	defer g.Free()
	// A replay that advances pos (the head) may run b.N times past the
	// prompt: keep it inside the cache.
	n := min(b.N, m.opts.MaxContext-len(prompt)-8)
	if err := g.Launch(); err != nil {
		b.Fatal(err)
	}
	if err := d.Synchronize(); err != nil {
		b.Fatal(err)
	}
	per, _ := kerneltest.DeviceTime(b, d, n, func(int) error { return g.Launch() })
	b.ReportMetric(float64(per.Nanoseconds())/1e3, "us/step")
	b.ReportMetric(float64(launches), "launches")
	if only == "" || only == "-" {
		b.ReportMetric(1/per.Seconds(), "tok/s")
	}
}

// stepVariant is one timing of BenchmarkW2D7DecodeStep: the step or a
// kernel alone (only, as benchStep takes it), on float x for 4-bit weights
// or not.
type stepVariant struct {
	name, only string
	floatX     bool
}

// eachMatrixKernel is a variant of the fused step and of each of its matrix
// kernels alone, named with suffix ("fused" + suffix, "fs_qkv" + suffix, …).
func eachMatrixKernel(suffix string) []stepVariant {
	out := []stepVariant{{"fused" + suffix, "", false}}
	for _, only := range []string{"fs_qkv", "fs_resid", "fs_gateup", "fs_head"} {
		out = append(out, stepVariant{only + suffix, only, false})
	}
	return out
}

// randomQ4 writes a random checkpoint of shape:layers (a bench.Shapes name
// and a depth) with the tokenizer of tok, quantizes it to 4-bit in groups
// of 64, and returns the quantized folder (removed after the benchmark).
func randomQ4(b *testing.B, shapeLayers, tok string) string {
	name, layers, ok := strings.Cut(shapeLayers, ":")
	s, known := bench.Shapes[name]
	n, err := strconv.Atoi(layers)
	if !ok || !known || err != nil || n < 1 {
		b.Fatalf("TINYLLM_W2D7_BENCH_SHAPES: %q is not shape:layers with a shape of %v", shapeLayers, bench.ShapeNames())
	}
	s.NumHiddenLayers = n
	s.Name = fmt.Sprintf("%s-%dlayers", name, n)
	tmp := b.TempDir()
	bf, q4 := filepath.Join(tmp, s.Name), filepath.Join(tmp, s.Name+"-q4")
	start := time.Now()
	if err := bench.WriteRandomModel(context.Background(), bf, s, bench.RandomModelOptions{TokenizerFrom: tok}); err != nil {
		b.Fatal(err)
	}
	if err := quantize.Folder(context.Background(), bf, q4, quantize.Options{Bits: 4, GroupSize: 64}); err != nil {
		b.Fatal(err)
	}
	if err := os.RemoveAll(bf); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote and quantized a random %s in %.1fs", s.Name, time.Since(start).Seconds())
	return q4
}
