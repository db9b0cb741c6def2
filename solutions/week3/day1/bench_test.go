package day1

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// Benchmark settings: batch sizes, the prompt every request is prefilled
// with, and how many decode steps run before the requests are prefilled
// again (so that the context stays between benchPrompt and
// benchPrompt+benchRefill positions however many iterations run).
var (
	benchBatches = []int{1, 4, 16}
	benchPrompt  = 32
	benchRefill  = 64
)

// BenchmarkDecodeStep times one decode step of N requests: "batched" is
// one ForwardBatch call with N one-token sequences (each weight matrix
// read once for all N), "separate" is N ForwardBatch calls of one sequence
// each, what serving the requests one after another costs. ns/op is the
// time of the step; tok/s counts the N tokens of each step. The model is
// the shipped one, or the folder named by TINYLLM_BENCH_MODEL:
//
//	go test -run '^$' -bench DecodeStep -benchtime 200x ./solutions/week3/day1
func BenchmarkDecodeStep(b *testing.B) {
	dir := os.Getenv("TINYLLM_BENCH_MODEL")
	if dir == "" {
		root, err := fixture.RepoRoot()
		if err != nil {
			b.Fatal(err)
		}
		dir = filepath.Join(root, "models", "tinyqwen-chat")
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer ck.Close()
	m, err := NewQwen2ModelWeek3(ck)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 3001))
	vocab := ck.Config.VocabSize
	for _, n := range benchBatches {
		prompts := make([][]int, n)
		for i := range prompts {
			prompts[i] = make([]int, benchPrompt)
			for j := range prompts[i] {
				prompts[i][j] = rng.IntN(vocab)
			}
		}
		for _, mode := range []string{"batched", "separate"} {
			b.Run(fmt.Sprintf("%s/N%d", mode, n), func(b *testing.B) {
				var seqs []llm.BatchSeq
				prefill := func() {
					seqs = make([]llm.BatchSeq, n)
					for i := range seqs {
						seqs[i] = llm.BatchSeq{Tokens: prompts[i], Caches: m.NewCaches()}
					}
					m.ForwardBatch(seqs)
					for i := range seqs {
						seqs[i].Offset = benchPrompt
						seqs[i].Tokens = []int{prompts[i][0]}
					}
				}
				b.StopTimer()
				prefill()
				b.StartTimer()
				for it := range b.N {
					if it > 0 && it%benchRefill == 0 {
						b.StopTimer()
						prefill()
						b.StartTimer()
					}
					if mode == "batched" {
						m.ForwardBatch(seqs)
					} else {
						for i := range seqs {
							m.ForwardBatch(seqs[i : i+1])
						}
					}
					for i := range seqs {
						seqs[i].Offset++
						seqs[i].Tokens[0] = (seqs[i].Tokens[0] + 1) % vocab
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
			})
		}
	}
}
