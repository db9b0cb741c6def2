package day7

// BenchmarkW2D7DecodeStep times the captured decode step (graph replays,
// device events) of the shipped model, or of the checkpoints listed in
// TINYLLM_W2D7_BENCH_MODELS (comma-separated folders, e.g. random Qwen2-0.5B
// and 7B shapes from `tinyllm mkmodel`), at position 128: the fused step
// the reference captures, the unfused one (Days 4-6's kernels and the
// day's attention, as before the fusion), and each fused kernel alone, all
// of a kind in one graph, so that the step's time can be split between
// them. Without a GPU it says so and runs nothing.
//
//	go test -run '^$' -bench W2D7DecodeStep -benchtime 200ms ./solutions/week2/day7

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
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
		for _, v := range []struct{ name, only string }{
			{"fused", ""}, {"unfused", "-"}, {"embed", "embed"}, {"fs_qkv", "fs_qkv"}, {"fs_attention", "fs_attention"},
			{"fs_resid", "fs_resid"}, {"fs_gateup", "fs_gateup"}, {"fs_head", "fs_head"},
		} {
			b.Run(name+"/"+v.name, func(b *testing.B) { benchStep(b, d, m, v.only) })
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
	start, err := d.NewEvent()
	if err != nil {
		b.Fatal(err)
	}
	defer start.Free()
	end, err := d.NewEvent()
	if err != nil {
		b.Fatal(err)
	}
	defer end.Free()
	// A replay that advances pos (the head) may run b.N times past the
	// prompt: keep it inside the cache.
	n := min(b.N, m.opts.MaxContext-len(prompt)-8)
	if err := g.Launch(); err != nil {
		b.Fatal(err)
	}
	if err := d.Synchronize(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if err := start.Record(); err != nil {
		b.Fatal(err)
	}
	for range n {
		if err := g.Launch(); err != nil {
			b.Fatal(err)
		}
	}
	if err := end.Record(); err != nil {
		b.Fatal(err)
	}
	el, err := kernels.Elapsed(start, end)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	per := el / time.Duration(max(n, 1))
	b.ReportMetric(float64(per.Nanoseconds())/1e3, "us/step")
	b.ReportMetric(float64(launches), "launches")
	if only == "" || only == "-" {
		b.ReportMetric(1/per.Seconds(), "tok/s")
	}
}
