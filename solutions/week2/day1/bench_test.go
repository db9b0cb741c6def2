package day1

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day5"
)

// Decode benchmark settings: two context lengths, and the decode steps timed
// after each prompt.
var (
	benchPrompts = []int{32, 256}
	benchSteps   = 8
)

// BenchmarkDecode compares the decode speed of the Week 1 model, which runs
// the whole sequence again for every new token, with the Week 2 model, which
// runs only the new token against its cache. Each iteration prefills a
// random prompt untimed and then times benchSteps greedy decode steps; the
// tok/s metric is decode tokens per second. The model is the shipped one,
// or the folder named by TINYLLM_BENCH_MODEL, for example a random
// Qwen2-0.5B from `tinyllm mkmodel --shape qwen2-0.5b --out /tmp/q05`:
//
//	go test -run '^$' -bench Decode -benchtime 3x ./solutions/week2/day1
//	TINYLLM_BENCH_MODEL=/tmp/q05 go test -run '^$' -bench Decode -benchtime 1x -timeout 30m ./solutions/week2/day1
func BenchmarkDecode(b *testing.B) {
	ck := openBenchModel(b)
	week1, err := day5.NewQwen2ModelWeek1(ck)
	if err != nil {
		b.Fatal(err)
	}
	week2, err := NewQwen2ModelWeek2(ck)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2101))
	for _, p := range benchPrompts {
		prompt := make([]int, p)
		for i := range prompt {
			prompt[i] = rng.IntN(ck.Config.VocabSize)
		}
		b.Run(fmt.Sprintf("week1/context%d", p), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				seq := slices.Clone(prompt)
				next := argmax(week1.ForwardLast([][]int{seq}))
				b.StartTimer()
				for range benchSteps {
					seq = append(seq, next)
					next = argmax(week1.ForwardLast([][]int{seq}))
				}
			}
			b.ReportMetric(float64(benchSteps*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
		b.Run(fmt.Sprintf("week2/context%d", p), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				caches := week2.NewCaches()
				next := argmax(Prefill(week2, prompt, caches, 0))
				b.StartTimer()
				for i := range benchSteps {
					next = argmax(week2.ForwardLast([][]int{{next}}, p+i, caches))
				}
			}
			b.ReportMetric(float64(benchSteps*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// openBenchModel opens the benchmarks' model: the folder named by
// TINYLLM_BENCH_MODEL, or the shipped one. It is closed when b ends.
func openBenchModel(b *testing.B) *checkpoint.Checkpoint {
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
	b.Cleanup(func() { ck.Close() })
	return ck
}

func argmax(logits *tensor.Tensor) int {
	return tensor.ArgMax(tensor.Reshape(logits, logits.Size()), -1)[0]
}

// concatCache is the cache Task 1 rules out, kept here as the benchmark's
// baseline: it concatenates the whole cache with the new positions on every
// call, as Hugging Face's DynamicCache does with torch.cat.
type concatCache struct{ k, v *tensor.Tensor }

func (c *concatCache) UpdateAndFetch(k, v *tensor.Tensor) (keys, values *tensor.Tensor) {
	if c.k == nil {
		c.k, c.v = k.Clone(), v.Clone()
	} else {
		c.k, c.v = tensor.Concat(2, c.k, k), tensor.Concat(2, c.v, v)
	}
	return c.k, c.v
}

func (c *concatCache) Offset() int {
	if c.k == nil {
		return 0
	}
	return c.k.Dim(2)
}

// BenchmarkCacheAppend appends 4096 single positions to one layer's cache of
// Qwen2-0.5B's shape (2 key/value heads of 64), with FullCache and with the
// concatenating baseline: time, and bytes allocated, per 4096 appends.
func BenchmarkCacheAppend(b *testing.B) {
	const n, heads, dim = 4096, 2, 64
	rng := rand.New(rand.NewPCG(2, 2101))
	ks := make([]*tensor.Tensor, n)
	vs := make([]*tensor.Tensor, n)
	for i := range ks {
		ks[i], vs[i] = tensor.RandN(rng, 1, heads, 1, dim), tensor.RandN(rng, 1, heads, 1, dim)
	}
	for _, c := range []struct {
		name string
		make func() KVCache
	}{
		{"full", func() KVCache { return NewFullCache() }},
		{"concat", func() KVCache { return &concatCache{} }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				cache := c.make()
				for i := range n {
					cache.UpdateAndFetch(ks[i], vs[i])
				}
			}
		})
	}
}

// BenchmarkAttendOne times a decode step's attention over a long cache as
// Qwen2-0.5B's 24 layers read it (2 key/value heads of 7 query heads, 64
// floats a row, 2,048 positions: 50 MB of keys and values, more than the
// L3 cache), with the cached rows taken attendBlock at a time by every
// query head of a group (blocks, attendOne) or each query head over the
// whole cache in turn (per_head, the order before blocks):
//
//	go test -run '^$' -bench AttendOne -count 5 ./solutions/week2/day1
func BenchmarkAttendOne(b *testing.B) {
	const layers, hq, h, d, s = 24, 14, 2, 64, 2048
	rng := rand.New(rand.NewPCG(1, 2))
	caches := make([]*FullCache, layers)
	for i := range caches {
		caches[i] = NewFullCache()
		caches[i].append("append", tensor.RandN(rng, 1, h, s, d), tensor.RandN(rng, 1, h, s, d))
	}
	q, out := tensor.RandN(rng, 1, hq, 1, d).Data(), make([]float32, hq*d)
	for _, v := range []struct {
		name  string
		block int
	}{{"blocks", attendBlock}, {"per_head", s}} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				for _, c := range caches {
					clear(out)
					attendRows(q, out, c, hq/h, v.block)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/step")
		})
	}
}
