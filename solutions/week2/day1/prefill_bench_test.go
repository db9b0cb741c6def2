//go:build unix

package day1

import (
	"math/rand/v2"
	"syscall"
	"testing"
)

// BenchmarkPrefill times the prefill of a 128-token random prompt, the
// prompt of `make bench-compare`, on the shipped model or the folder named
// by TINYLLM_BENCH_MODEL (a random bf16 Qwen2-0.5B from `tinyllm mkmodel
// --shape qwen2-0.5b --out /tmp/q05`, for example):
//
//	TINYLLM_BENCH_MODEL=/tmp/q05 go test -run '^$' -bench Prefill -benchtime 5x ./solutions/week2/day1
//
// Besides tokens per second it reports tokens per CPU-second of the whole
// process (both cores together, spinning workers included): on a machine
// shared with other work that figure moves less when the benchmark is
// descheduled, so two builds compare more steadily in it.
func BenchmarkPrefill(b *testing.B) {
	ck := openBenchModel(b)
	model, err := NewQwen2ModelWeek2(ck)
	if err != nil {
		b.Fatal(err)
	}
	const n = 128
	rng := rand.New(rand.NewPCG(3, 2101))
	prompt := make([]int, n)
	for i := range prompt {
		prompt[i] = rng.IntN(ck.Config.VocabSize)
	}
	Prefill(model, prompt, model.NewCaches(), 0) // warm-up: first touches of the weights
	cpu := cpuSeconds()
	for b.Loop() {
		Prefill(model, prompt, model.NewCaches(), 0)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
	if used := cpuSeconds() - cpu; used > 0 {
		b.ReportMetric(float64(n*b.N)/used, "tok/cpu-s")
	}
}

// cpuSeconds is the CPU time (user and system) this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
