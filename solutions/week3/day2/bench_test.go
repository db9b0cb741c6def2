package day2

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w3d2"
	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// constantRunner is a model runner that costs nothing: every chunk that
// samples gets token 5. With it, a benchmark times the engine's own work
// (scheduling, page bookkeeping, updates), the overhead a real step pays on
// top of the model.
type constantRunner struct{}

func (constantRunner) Run(batch Batch) ([]int, error) {
	next := make([]int, len(batch))
	for i, c := range batch {
		next[i] = -1
		if c.Samples() {
			next[i] = 5
		}
	}
	return next, nil
}

// BenchmarkSchedulerOverhead runs nano-vllm's benchmark workload (256
// requests, prompt and output lengths uniform in [100, 1024], fixed seed)
// through the engine with a runner that computes nothing, once with pages
// for every request at once and once with a pool of 4096 pages of 16 that
// forces preemptions. The metrics are the engine's time per step and the
// steps and preemptions of the run. Every page must be free at the end:
//
//	go test -run '^$' -bench SchedulerOverhead -benchtime 5x ./solutions/week3/day2
func BenchmarkSchedulerOverhead(b *testing.B) {
	for _, pages := range []int{256 * 2048 / 16, 4096} {
		b.Run(fmt.Sprintf("pages=%d", pages), func(b *testing.B) {
			steps, preempted := 0, 0
			for range b.N {
				rng := rand.New(rand.NewPCG(0, 3202))
				alloc := w3d2.NewPages(16, pages)
				eng, err := NewEngine(EngineConfig{MaxNumBatchedTokens: 8192, MaxNumSeqs: 256, MaxContext: 4096},
					constantRunner{}, alloc)
				if err != nil {
					b.Fatal(err)
				}
				var seqs []*llm.Sequence
				for range 256 {
					prompt := make([]int, 100+rng.IntN(925))
					seq, err := eng.AddRequest(prompt, 100+rng.IntN(925))
					if err != nil {
						b.Fatal(err)
					}
					seqs = append(seqs, seq)
				}
				for eng.HasWork() {
					if _, err := eng.Step(); err != nil {
						b.Fatal(err)
					}
					steps++
				}
				for _, s := range seqs {
					preempted += s.Preemptions
				}
				if free := alloc.NumFreePages(); free != pages {
					b.Fatalf("every request done, %d of %d pages still in use", pages-free, pages)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(steps), "ns/step")
			b.ReportMetric(float64(steps)/float64(b.N), "steps/run")
			b.ReportMetric(float64(preempted)/float64(b.N), "preemptions/run")
		})
	}
}
