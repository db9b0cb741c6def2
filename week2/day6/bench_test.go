package day6

// The day's benchmarks, on the attention of Qwen2-7B (28 query heads on 4
// key/value heads of 128): decode attention at growing cache lengths (its
// time should grow linearly, and its bandwidth reading the cache approach
// the GPU's copy bandwidth), prefill (both kernels, and Qwen2-0.5B's heads
// too) with causal tile skipping against the same prefill with the causal
// mask given as an explicit mask (every tile computed), the chunk sizes of flash-decoding, and the CPU's flash
// attention against Week 1's. Without a GPU the GPU ones say so.
//
//	go test -run '^$' -bench W2D6 -benchtime 200ms ./solutions/week2/day6

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d6"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
	"github.com/tinyllm-go/tinyllm/week1/day3"
)

const hq7B, h7B, d7B = 28, 4, 128

// rotateBytes is how much cache the decode benchmark cycles through: a
// real step reads each layer's own cache, so several times the H200's L2
// cache, or a short cache would be read from L2.
const rotateBytes = 1 << 30

// timeLaunches times n rounds of launch on the device's clock and returns
// the time of one.
func timeLaunches(b *testing.B, d *kernels.Device, launch func(i int) error) time.Duration {
	for i := range 3 {
		if err := launch(i); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Synchronize(); err != nil {
		b.Fatal(err)
	}
	per, _ := kerneltest.DeviceTime(b, d, b.N, launch)
	return per
}

// caches fills n caches of s positions with random keys and values (Qwen2-7B's
// heads).
func caches(b *testing.B, d *kernels.Device, n, s int) []*devtensor.KVCache {
	return cachesOf(b, d, shape7B, n, s)
}

// attnShape is a model's attention heads: query heads, key/value heads and
// the head dimension.
type attnShape struct {
	name     string
	hq, h, d int
}

var (
	shape7B  = attnShape{"7B", hq7B, h7B, d7B}
	shape05B = attnShape{"0.5B", 14, 2, 64}
)

// cachesOf fills n caches of s positions of sh's key/value heads with
// random keys and values.
func cachesOf(b *testing.B, d *kernels.Device, sh attnShape, n, s int) []*devtensor.KVCache {
	rng := rand.New(rand.NewPCG(1, uint64(s)))
	k, v := tensor.RandN(rng, sh.h, s, sh.d), tensor.RandN(rng, sh.h, s, sh.d)
	cs := make([]*devtensor.KVCache, n)
	for i := range cs {
		c, err := devtensor.NewKVCache(d, sh.h, s, sh.d)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Append(k, v); err != nil {
			b.Fatal(err)
		}
		cs[i] = c
	}
	return cs
}

func activations(b *testing.B, d *kernels.Device, rows int) (q, out *devtensor.Activations) {
	return activationsOf(b, d, shape7B, rows)
}

// activationsOf makes rows random query rows of sh's query heads and an
// output of the same size.
func activationsOf(b *testing.B, d *kernels.Device, sh attnShape, rows int) (q, out *devtensor.Activations) {
	rng := rand.New(rand.NewPCG(2, uint64(rows)))
	q, err := devtensor.NewActivations(d, rows, sh.hq*sh.d)
	if err != nil {
		b.Fatal(err)
	}
	if err := q.Upload(tensor.RandN(rng, rows, sh.hq*sh.d)); err != nil {
		b.Fatal(err)
	}
	if out, err = devtensor.NewActivations(d, rows, sh.hq*sh.d); err != nil {
		b.Fatal(err)
	}
	return q, out
}

// reportDecode reports the device time, the bandwidth of reading the cache
// (keys and values, once) and, where scripts/gpu-check.sh measured it, its
// fraction of PyTorch's copy bandwidth.
func reportDecode(b *testing.B, per time.Duration, s int) {
	bytes := float64(devtensor.KVCacheBytes(h7B, s, d7B))
	gbps := bytes / per.Seconds() / 1e9
	b.ReportMetric(float64(per.Nanoseconds())/1e3, "us/gpu")
	b.ReportMetric(gbps, "GB/s")
	if copyGBps, err := strconv.ParseFloat(os.Getenv("TINYLLM_TORCH_COPY_GBPS"), 64); err == nil && copyGBps > 0 {
		b.ReportMetric(100*gbps/copyGBps, "%copy")
	}
}

func BenchmarkW2D6Decode(b *testing.B) {
	d := kerneltest.Open(b)
	a, err := NewAttention(d)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	q, out := activations(b, d, 1)
	defer q.Free()
	defer out.Free()
	for _, s := range []int{512, 1024, 2048, 4096, 8192, 16384, 32768} {
		n := max(2, min(64, rotateBytes/int(devtensor.KVCacheBytes(h7B, s, d7B))))
		cs := caches(b, d, n, s)
		b.Run(fmt.Sprintf("7B/S=%d", s), func(b *testing.B) {
			per := timeLaunches(b, d, func(i int) error { return a.Decode(out, q, cs[i%n], 0, nil, true) })
			reportDecode(b, per, s)
		})
		for _, c := range cs {
			c.Free()
		}
	}
}

// BenchmarkW2D6DecodeChunks times flash-decoding's chunk sizes at 4096
// positions; DecodeChunk's choice is the "auto" row.
func BenchmarkW2D6DecodeChunks(b *testing.B) {
	d := kerneltest.Open(b)
	a, err := NewAttention(d)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	q, out := activations(b, d, 1)
	defer q.Free()
	defer out.Free()
	const s = 4096
	n := rotateBytes / int(devtensor.KVCacheBytes(h7B, s, d7B))
	cs := caches(b, d, n, s)
	defer func() {
		for _, c := range cs {
			c.Free()
		}
	}()
	b.Logf("DecodeChunk(%d, %d, %d SMs) = %d", s, h7B, d.Info().Multiprocessors, DecodeChunk(s, h7B, d.Info().Multiprocessors))
	for _, chunk := range []int{0, 32, 64, 128, 256, 512, 4096} {
		name := fmt.Sprintf("chunk=%d", chunk)
		if chunk == 0 {
			name = "chunk=auto"
		}
		b.Run(name, func(b *testing.B) {
			a.chunk = chunk
			defer func() { a.chunk = 0 }()
			per := timeLaunches(b, d, func(i int) error { return a.Decode(out, q, cs[i%n], 0, nil, true) })
			reportDecode(b, per, s)
		})
	}
}

// BenchmarkW2D6DecodeVariants compares builds of the CUDA decode kernel:
// lanes per key and keys loaded per lane group before use.
func BenchmarkW2D6DecodeVariants(b *testing.B) {
	d := kerneltest.Open(b)
	if d.Backend() != kernels.CUDA {
		b.Skip("not run: the variants are CUDA builds")
	}
	q, out := activations(b, d, 1)
	defer q.Free()
	defer out.Free()
	for _, s := range []int{4096, 32768} {
		n := max(2, min(64, rotateBytes/int(devtensor.KVCacheBytes(h7B, s, d7B))))
		cs := caches(b, d, n, s)
		for _, v := range []struct{ lanes, unroll, chunk int }{{16, 2, 0}, {16, 2, 128}, {16, 4, 0}, {16, 4, 128}, {32, 4, 0}, {32, 4, 128}, {32, 2, 0}, {32, 8, 0}, {32, 8, 128}} {
			a, err := NewAttention(d)
			if err != nil {
				b.Fatal(err)
			}
			a.defines = fmt.Sprintf("#define LANES %d\n#define UNROLL %d\n", v.lanes, v.unroll)
			a.chunk = v.chunk
			b.Run(fmt.Sprintf("S=%d/lanes=%d/unroll=%d/chunk=%d", s, v.lanes, v.unroll, v.chunk), func(b *testing.B) {
				per := timeLaunches(b, d, func(i int) error { return a.Decode(out, q, cs[i%n], 0, nil, true) })
				reportDecode(b, per, s)
			})
			a.Close()
		}
		for _, c := range cs {
			c.Free()
		}
	}
}

// BenchmarkW2D6Prefill times a whole prompt's attention, Qwen2-7B's heads
// and Qwen2-0.5B's, with the causal tiles skipped and with the same causal
// mask passed as an explicit mask (every tile computed, the masked scores
// thrown away), for both prefill kernels: attention_prefill (float32) and
// attention_prefill_tc (bf16 tensor cores, where the GPU has them). It
// reports the useful arithmetic rate (4·D per visible query-key pair and
// query head).
func BenchmarkW2D6Prefill(b *testing.B) {
	d := kerneltest.Open(b)
	kinds := []struct {
		name   string
		kernel prefillKernel
	}{{"float32", prefillFloat}, {"tensor-cores", prefillTCOnly}}
	atts := make([]*Attention, len(kinds))
	for i, k := range kinds {
		a, err := NewAttention(d)
		if err != nil {
			b.Fatal(err)
		}
		defer a.Close()
		a.prefill = k.kernel
		atts[i] = a
	}
	for _, sh := range []attnShape{shape7B, shape05B} {
		for _, s := range []int{512, 2048, 4096} {
			q, out := activationsOf(b, d, sh, s)
			cs := cachesOf(b, d, sh, 1, s)
			mask, err := devtensor.NewActivations(d, s, s)
			if err != nil {
				b.Fatal(err)
			}
			if err := mask.Upload(w2d6.CausalBias(s, s)); err != nil {
				b.Fatal(err)
			}
			pairs := float64(s) * float64(s+1) / 2
			for _, skip := range []bool{true, false} {
				mode := "causal-skip"
				if !skip {
					mode = "full-mask"
				}
				for i, k := range kinds {
					name := fmt.Sprintf("%s/L=S=%d/%s/%s", sh.name, s, mode, k.name)
					if k.kernel == prefillTCOnly && !tcPrefillFits(d, sh.d) {
						b.Logf("not run: %s: attention_prefill_tc does not apply on %s (compute capability %q)", name, d, d.Info().ComputeCapability)
						continue
					}
					a := atts[i]
					b.Run(name, func(b *testing.B) {
						per := timeLaunches(b, d, func(int) error {
							if skip {
								return a.Prefill(out, q, cs[0], 0, nil, true)
							}
							return a.Prefill(out, q, cs[0], 0, mask, false)
						})
						b.ReportMetric(float64(per.Nanoseconds())/1e3, "us/gpu")
						b.ReportMetric(4*float64(sh.d*sh.hq)*pairs/per.Seconds()/1e12, "TFLOP/s")
					})
				}
			}
			q.Free()
			out.Free()
			mask.Free()
			cs[0].Free()
		}
	}
}

// BenchmarkW2D6CPU compares the CPU flash attention with Week 1's grouped
// attention (which copies the key/value heads and builds the whole masked
// score matrix) on Qwen2-0.5B's heads, causal and with full masking.
func BenchmarkW2D6CPU(b *testing.B) {
	const hq, h, dim = 14, 2, 64
	for _, l := range []int{512, 2048} {
		rng := rand.New(rand.NewPCG(3, uint64(l)))
		q, k, v := tensor.RandN(rng, 1, hq, l, dim), tensor.RandN(rng, 1, h, l, dim), tensor.RandN(rng, 1, h, l, dim)
		mask := w2d6.CausalBias(l, l)
		b.Run(fmt.Sprintf("L=%d/flash-causal-skip", l), func(b *testing.B) {
			for range b.N {
				FlashAttention(q, k, v, 0, nil, true)
			}
		})
		b.Run(fmt.Sprintf("L=%d/flash-full-mask", l), func(b *testing.B) {
			for range b.N {
				FlashAttention(q, k, v, 0, mask, false)
			}
		})
		b.Run(fmt.Sprintf("L=%d/week1-grouped", l), func(b *testing.B) {
			for range b.N {
				day3.ScaledDotProductAttentionGrouped(q, k, v, 0, mask)
			}
		})
	}
}
