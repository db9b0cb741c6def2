package main

import (
	"os"
	"runtime"
	"runtime/debug"
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
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	pct := 100
	if ms.HeapAlloc > 0 {
		pct = int(min(100, max(10, gcHeadroom*100/ms.HeapAlloc)))
	}
	debug.SetGCPercent(pct)
}
