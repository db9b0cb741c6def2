package day3

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Qwen2-0.5B's attention: 14 query heads on 2 key/value heads of 64 features.
const longHQ, longH, longD = 14, 2, 64

// longInputs returns q, k, v and the causal mask for an L-token prompt.
func longInputs(l int) (q, k, v, mask *tensor.Tensor) {
	rng := rand.New(rand.NewPCG(7, 8))
	q = tensor.RandN(rng, 1, longHQ, l, longD)
	k = tensor.RandN(rng, 1, longH, l, longD)
	v = tensor.RandN(rng, 1, longH, l, longD)
	return q, k, v, CausalMask(l, l)
}

// heapGrowth runs f and returns how many bytes the heap had to take from
// the operating system meanwhile: the part of f's peak memory that did not
// fit in what the process already held. Memory that f frees is reused by
// its later allocations, so a computation that keeps its scratch small
// grows the heap little however much it allocates in total (TotalAlloc
// counts every block's scores, which is L x S per head either way).
//
// The collector runs with GOGC=20 meanwhile, whatever the environment says,
// so that the heap follows what is live rather than the collector's slack
// (at the default of 100 it may grow to twice the live inputs first).
func heapGrowth(f func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	// Stack memory comes from the heap too, so HeapSys can shrink a little.
	return max(after.HeapSys, before.HeapSys) - before.HeapSys
}

// TestGroupedAttentionLongPromptMemory is the regression test for long
// prompts: attention over 4096 tokens with Qwen2-0.5B's heads must not hold
// the 14 x 4096 x 4096 float32 scores (896 MiB) at once, let alone the
// softmax's copies of them. Before the reference attended in blocks of query
// rows, this grew the heap by about 4 GiB, and a 16k-token prompt asked for
// a single 14 GiB block. Rows on both sides of block boundaries, the first
// and the last are checked against the formula too.
func TestGroupedAttentionLongPromptMemory(t *testing.T) {
	const l = 4096
	q, k, v, mask := longInputs(l)
	allScores := uint64(longHQ) * l * l * 4
	var out *tensor.Tensor
	grew := heapGrowth(func() { out = ScaledDotProductAttentionGrouped(q, k, v, 0, mask) })
	t.Logf("heap grew by %.0f MiB; all scores at once take %.0f MiB", float64(grew)/(1<<20), float64(allScores)/(1<<20))
	if grew > allScores/8 {
		t.Errorf("attention over %d tokens grew the heap by %.0f MiB, more than an eighth of the %.0f MiB that all %d x %d x %d scores take: the scores are not computed in bounded blocks",
			l, float64(grew)/(1<<20), float64(allScores)/(1<<20), longHQ, l, l)
	}
	if got, want := out.Shape(), []int{1, longHQ, l, longD}; !slices.Equal(got, want) {
		t.Fatalf("output shape %v, want %v", got, want)
	}
	for _, i := range []int{0, 1, 17, 18, 19, 1000, 2047, 2048, 4094, 4095} {
		for _, j := range []int{0, 6, 7, 13} {
			got := tensor.Slice(tensor.Slice(out, 1, j, j+1), 2, i, i+1)
			want := tensor.New(naiveRow(q, k, v, mask, 0, j, i), 1, 1, 1, longD)
			grade.AllClose(t, fmt.Sprintf("row %d of head %d", i, j), got, want, grade.Products)
		}
	}
}

// BenchmarkGroupedAttentionLong times causal grouped attention over a
// 4096-token prompt with Qwen2-0.5B's heads; -benchmem shows the bytes
// allocated per call (the sum over all blocks, not the peak).
func BenchmarkGroupedAttentionLong(b *testing.B) {
	q, k, v, mask := longInputs(4096)
	b.ReportAllocs()
	for b.Loop() {
		ScaledDotProductAttentionGrouped(q, k, v, 0, mask)
	}
}
