// Package scratchtest checks a model that keeps its activations in
// scratch.Buffers against the same model without them (every activation a
// new tensor). The Week 2 reference days run it on their own models.
package scratchtest

import (
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// SameLogits runs with and without over the same tokens, a forward pass
// at a time, and fails unless their logits agree to the last bit: a
// prefill, decode steps, a longer piece that makes the buffers grow and a
// shorter one that reuses part of them. vocab bounds the token ids.
func SameLogits(t *testing.T, with, without llm.CachedModel, vocab int) {
	t.Helper()
	cw, cn := with.NewCaches(), without.NewCaches()
	offset := 0
	for step, l := range []int{7, 1, 1, 12, 1, 3, 1, 70, 1} { // 70: a piece a model may cut into blocks of rows
		tokens := make([]int, l)
		for i := range tokens {
			tokens[i] = (offset*31 + i*131 + 17) % vocab
		}
		var got, want []float32
		if step%2 == 0 {
			got = with.Forward([][]int{tokens}, offset, cw).Data()
			want = without.Forward([][]int{tokens}, offset, cn).Data()
		} else {
			got = with.ForwardLast([][]int{tokens}, offset, cw).Data()
			want = without.ForwardLast([][]int{tokens}, offset, cn).Data()
		}
		if !slices.EqualFunc(got, want, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
			t.Fatalf("step %d (%d tokens at offset %d): the logits with reused buffers differ from those without", step, l, offset)
		}
		offset += l
	}
}

// CutsAllocation fails unless, once its buffers are sized, a 64-token
// prefill of with allocates less than a third of what the same prefill of
// without does: what is left is the logits and a few small tensors (RoPE's
// output, the mask, the attention scores of each head group).
func CutsAllocation(t *testing.T, with, without llm.CachedModel, vocab int) {
	t.Helper()
	prompt := make([]int, 64)
	for i := range prompt {
		prompt[i] = (i * 7919) % vocab
	}
	allocated := func(m llm.CachedModel) uint64 {
		m.ForwardLast([][]int{prompt}, 0, m.NewCaches()) // sizes the buffers
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m.ForwardLast([][]int{prompt}, 0, m.NewCaches())
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	w, n := allocated(with), allocated(without)
	t.Logf("a 64-token prefill allocates %.2f MB with buffers, %.2f MB without", float64(w)/1e6, float64(n)/1e6)
	if w*3 > n {
		t.Fatalf("with its buffers a 64-token prefill allocates %d bytes, more than a third of the %d it allocates without", w, n)
	}
}
