package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"

	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// gcHeadroom is how far the heap may grow past what is live after loading
// before the garbage collector runs: the activations of a forward pass,
// a few MB per decode step and tens of MB for a long prefill chunk.
const gcHeadroom = 128 << 20

// settleHeap is called once a model is built. Whatever of the model lives
// on the Go heap (weights copied out of a misaligned file, scales widened
// to float32, a Week 1 model's dequantized weights) stays there until the
// program ends, and Go's default (GOGC=100) lets the heap grow by as much
// again before collecting: a 4-bit model would take twice its size for
// garbage that is a few MB per token. So collect once and set the
// collector's target to a fixed headroom over that live heap instead
// (never above the default, and never below 10%). An explicit GOGC in the
// environment is left alone.
func settleHeap() {
	if gogcSet {
		return
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	aimCollector(ms.HeapAlloc, gcHeadroom, 100)
}

// gogcSet records whether GOGC is in the environment: then the user's
// setting stands and the program never changes the collector's target.
var gogcSet = func() bool { _, set := os.LookupEnv("GOGC"); return set }()

// gcPercent is the GOGC value aimCollector set last (0: none yet).
var gcPercent int

// aimCollector sets the collector's target to headroom bytes over a live
// heap of live bytes, as a GOGC percentage kept between 10 and most; it
// changes the setting only when the percentage does. A live heap of 0
// (nothing measured yet) leaves the target alone.
func aimCollector(live, headroom, most uint64) {
	if live == 0 {
		return
	}
	pct := int(min(most, max(10, headroom*100/live)))
	if pct != gcPercent {
		debug.SetGCPercent(pct)
		gcPercent = pct
	}
}

// paceHeadroom is the garbage the Week 2 engines may leave between two
// collections. Their activations live in buffers reused from pass to pass
// (internal/scratch); what a pass still drops is its logits, its mask,
// RoPE's outputs and, far into a long prompt, the attention scores of a
// piece (several MB per layer after 2000 tokens), so the collector runs
// a few times per piece and once every several decode steps; each run
// costs little, since what it scans is mostly a few large float buffers
// with no pointers in them. Measured on Qwen2-0.5B after a 2048-token
// prompt, before the buffers: peak RSS 1.16 GB at 24 MB, 1.13 GB at
// 16 MB, 1.29 GB with Go's default target; with them, 1.125–1.131 GB at
// 16 MB and 1.117–1.120 GB at 8 MB, which cost the prefill 2–5% more CPU
// time.
const paceHeadroom = 16 << 20

// paceMostPercent caps the percentage paceHeap sets. A GOGC percentage is
// relative to the heap that was live at the last collection, and a pass
// can grow what is live many times over: the first one after loading
// sizes the Week 2 engines' activation buffers and KV cache (about 17 MB
// for a 128-token prompt of Qwen2-0.5B, 65 MB for a 2048-token one, with
// almost nothing live before it). At Go's default of 100 the heap could
// grow to twice that during the pass; at 25, to a quarter more. Measured
// on the 4-bit Qwen2-0.5B with a 128-token prompt: peak RSS 0.337 GB at
// 100, 0.328 GB at 25.
const paceMostPercent = 25

// pacedModel is a Week 2 model that calls paceHeap before and after every
// forward pass: before, so that the first pass after loading runs under
// paceHeap's target instead of the one settleHeap set.
type pacedModel struct {
	llm.CachedModel
	least uint64 // the least headroom around a decode step (decodeHeadroom)
}

// decodeHeadroom is the least headroom paceHeap allows around a decode
// step of a model whose weights take weights bytes: half a percent of
// them. Decoding Qwen2-0.5B in bf16, whose weights are not on the Go
// heap, the heap holds about 4 MB live, and a quarter of that is about
// one step's garbage (the logits alone are 600 KB): the collector ran at
// every step and stopped both cores each time, waiting for the matrix
// kernels' long assembly loops to reach a safe point (GODEBUG=gctrace=1:
// about a millisecond a stop). Half a percent of its 988 MB of weights is
// 4.9 MB, several steps between two runs, well inside the 10% that the
// peak memory may take beyond the weights and the cache. A prompt keeps
// the quarter: its pieces are where the peak memory is. (Qwen2-0.5B in
// 4-bit gets 1.4 MB, less than a quarter of its 7–8 MB live heap: its
// target, and its peak memory, do not move.)
func decodeHeadroom(weights int64) uint64 { return uint64(max(weights, 0)) / 200 }

// Forward is the model's Forward between two calls of paceHeap.
func (p pacedModel) Forward(tokens [][]int, offset int, caches []llm.KVCache) *tensor.Tensor {
	least := p.leastFor(tokens)
	paceHeap(least)
	defer paceHeap(least)
	return p.CachedModel.Forward(tokens, offset, caches)
}

// ForwardLast is the model's ForwardLast between two calls of paceHeap.
func (p pacedModel) ForwardLast(tokens [][]int, offset int, caches []llm.KVCache) *tensor.Tensor {
	least := p.leastFor(tokens)
	paceHeap(least)
	defer paceHeap(least)
	return p.CachedModel.ForwardLast(tokens, offset, caches)
}

// leastFor is the least headroom paceHeap allows around a pass over
// tokens: p.least for a decode step (one new token a sequence), none for
// a prompt or a piece of one.
func (p pacedModel) leastFor(tokens [][]int) uint64 {
	for _, t := range tokens {
		if len(t) != 1 {
			return 0
		}
	}
	return p.least
}

// liveHeap is the runtime metric paceHeap reads, kept between calls so
// that a decode step allocates nothing for it.
var liveHeap = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}

// paceHeap aims the collector's next run at the heap that was live after
// the last one plus paceHeadroom. Go's default target is twice the live
// heap, and with a KV cache the live heap keeps growing: at 2048 tokens of
// Qwen2-0.5B the cache alone is 50 MB live, and the default would let as
// much garbage again pile up beside it, memory the process holds for
// nothing. Reading the live heap costs no collection. An explicit GOGC is
// left alone.
func paceHeap(least uint64) {
	if gogcSet {
		return
	}
	metrics.Read(liveHeap)
	if liveHeap[0].Value.Kind() == metrics.KindUint64 {
		paceFor(liveHeap[0].Value.Uint64(), least)
	}
}

// paceFor aims the collector at paceHeadroom over a live heap of live
// bytes, at most a quarter of it (paceMostPercent), but at least least.
func paceFor(live, least uint64) {
	aimCollector(live, paceHeadroom, max(paceMostPercent, least*100/max(live, 1)))
}
