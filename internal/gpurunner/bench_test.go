package gpurunner

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
	w3day3 "github.com/tinyllm-go/tinyllm/solutions/week3/day3"
)

// BenchmarkRunnerDecodeGPU times one decode step of 256 sequences of 1,024
// cached positions each: the whole step as the engine sees it (ms/step,
// tok/s), its forward pass on the device alone (forward-ms/step; the rest
// is the host's share), and the attention of every layer alone (in one
// range of keys, and split when the step would split), on the checkpoint
// in $TINYLLM_BENCH_MODEL (a random Qwen2-0.5B from `tinyllm mkmodel
// --shape qwen2-0.5b` for the numbers of the benchmarking appendix), or
// the shipped model.
func BenchmarkRunnerDecodeGPU(b *testing.B) {
	d := kerneltest.Open(b)
	dir := os.Getenv("TINYLLM_BENCH_MODEL")
	if dir == "" {
		dir = "../../models/tinyqwen-chat"
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer ck.Close()
	const seqs, ctx, ps = 256, 1024, 16
	cfg := ck.Config
	n := min(ctx, cfg.MaxPositionEmbeddings-1)
	o := Options{MaxTokens: 8192, MaxSeqs: seqs, NumPages: seqs * llm.PagesFor(n+256, ps), PageSize: ps}
	m, err := Load(d, ck, o)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	pool, err := w3day3.NewPagePool(PoolConfig(cfg, o))
	if err != nil {
		b.Fatal(err)
	}
	r, err := m.Runner(pool)
	if err != nil {
		b.Fatal(err)
	}
	blocks := w3day3.NewBlockManager(pool)
	rng := rand.New(rand.NewPCG(1, 2))
	all := make([]*llm.Sequence, seqs)
	for i := range all {
		p := make([]int, n)
		for j := range p {
			p[j] = rng.IntN(cfg.VocabSize)
		}
		all[i] = llm.NewSequence(i, p, 1<<20)
	}
	// Prefill every prompt, as many whole prompts a step as fit.
	run := func(batch llm.Batch) {
		for _, c := range batch {
			if err := blocks.Allocate(c.Seq, c.Start+c.Len); err != nil {
				b.Fatal(err)
			}
		}
		next, err := r.Run(batch)
		if err != nil {
			b.Fatal(err)
		}
		for i, c := range batch {
			c.Seq.NumCached += c.Len
			if next[i] >= 0 {
				c.Seq.Tokens = append(c.Seq.Tokens, next[i])
			}
		}
	}
	for i := 0; i < seqs; {
		var batch llm.Batch
		for tok := 0; i < seqs && tok+n <= o.MaxTokens; i++ {
			batch = append(batch, llm.ScheduledChunk{Seq: all[i], Start: 0, Len: n})
			tok += n
		}
		run(batch)
	}
	decode := func() llm.Batch {
		batch := make(llm.Batch, seqs)
		for i, s := range all {
			batch[i] = llm.ScheduledChunk{Seq: s, Start: s.NumCached, Len: 1}
		}
		return batch
	}
	start, _ := d.NewEvent()
	end, _ := d.NewEvent()
	defer start.Free()
	defer end.Free()
	timed := func(f func()) time.Duration {
		start.Record()
		f()
		end.Record()
		el, err := kernels.Elapsed(start, end)
		if err != nil {
			b.Fatal(err)
		}
		return el
	}
	var step, gpu, attn, attn1 time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		run(decode())
		step += time.Since(t0)
		// The forward pass again on the device alone: no host work
		// between the launches' queueing and the device's.
		gpu += timed(func() {
			if err := m.forward(seqs, llm.PagesFor(all[0].NumCached, ps), all[0].NumCached); err != nil {
				b.Fatal(err)
			}
		})
		// The attention of every layer again, over the same metadata
		// (the last step's rows, one a sequence).
		part := m.part
		if part == nil {
			part = m.attn.Buf
		}
		ways := []int{1}
		if sp := attentionSplits(seqs, cfg.NumKeyValueHeads, all[0].NumCached, d.Info().Multiprocessors); sp > 1 {
			ways = append(ways, sp)
		}
		for _, splits := range ways {
			el := timed(func() {
				for _, l := range m.layers {
					if err := m.dev.Launch(m.k["paged_attention_bf16"], m.attentionLaunch(seqs, cfg.NumKeyValueHeads, splits),
						m.attn.Buf, part, m.q.Buf, l.k, l.v, m.tables, m.info, m.rowSeq, int32(llm.PagesFor(all[0].NumCached, ps)), int32(ps), float32(1/math.Sqrt(float64(cfg.HeadDim())))); err != nil {
						b.Fatal(err)
					}
					if splits > 1 {
						if err := m.dev.Launch(m.k["paged_attention_merge"], kernels.LaunchConfig{Grid: kernels.Dim3{X: seqs, Y: cfg.NumAttentionHeads, Z: 1}, Block: kernels.D1(cfg.HeadDim())},
							m.attn.Buf, part, int32(splits)); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
			if splits == 1 {
				attn1 += el
			} else {
				attn += el
			}
		}
	}
	b.StopTimer()
	per := func(x time.Duration) float64 { return x.Seconds() * 1e3 / float64(b.N) }
	// Bytes the attention reads: every visible key and value, bf16.
	kv := float64(cfg.NumHiddenLayers) * float64(seqs) * float64(all[0].NumCached) * float64(cfg.NumKeyValueHeads*cfg.HeadDim()) * 2 * 2
	b.ReportMetric(per(step), "ms/step")
	b.ReportMetric(per(gpu), "forward-ms/step")
	b.ReportMetric(per(attn1), "attn-ms/step")
	b.ReportMetric(kv/(attn1.Seconds()/float64(b.N))/1e9, "attn-GB/s")
	if attn > 0 { // the step's own choice split the keys
		b.ReportMetric(kv/(attn.Seconds()/float64(b.N))/1e9, "attn-split-GB/s")
	}
	b.ReportMetric(float64(seqs)/(step.Seconds()/float64(b.N)), "tok/s")
}
