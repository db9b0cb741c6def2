package day1

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/models"
)

// openShipped opens the shipped bf16 model for the checks of the reused
// activation buffers.
func openShipped(t *testing.T) *checkpoint.Checkpoint {
	t.Helper()
	dir, _, err := models.Open()
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

// The model with its buffers gives the same logits, bit for bit, as the
// model without (every activation a new tensor), over a prefill, decode
// steps, a longer piece that makes the buffers grow and a shorter one
// that reuses part of them.
func TestBuffersGiveTheSameLogits(t *testing.T) {
	ck := openShipped(t)
	with, err := NewQwen2ModelWeek2(ck)
	if err != nil {
		t.Fatal(err)
	}
	without := *with
	without.buffers = nil
	rng := rand.New(rand.NewPCG(5, 2101))
	cw, cn := with.NewCaches(), without.NewCaches()
	offset := 0
	for step, l := range []int{7, 1, 1, 12, 1, 3, 1} {
		tokens := make([]int, l)
		for i := range tokens {
			tokens[i] = rng.IntN(ck.Config.VocabSize)
		}
		forward := (*Qwen2ModelWeek2).Forward
		if step%2 == 1 {
			forward = (*Qwen2ModelWeek2).ForwardLast
		}
		got := forward(with, [][]int{tokens}, offset, cw)
		want := forward(&without, [][]int{tokens}, offset, cn)
		offset += l
		if !slices.Equal(got.Shape(), want.Shape()) || !sameBits(got.Data(), want.Data()) {
			t.Fatalf("step %d (%d tokens at offset %d): the logits with reused buffers differ from those without", step, l, offset-l)
		}
	}
	if with.buffers.Bytes() == 0 {
		t.Fatal("the model's buffers hold nothing after seven forward passes")
	}
}

// Once the buffers are sized, a prefill piece allocates a small part of
// what it allocates without them: the logits and a few small tensors
// (RoPE's output, the mask, the attention scores of each head group).
func TestBuffersCutAllocation(t *testing.T) {
	ck := openShipped(t)
	with, err := NewQwen2ModelWeek2(ck)
	if err != nil {
		t.Fatal(err)
	}
	without := *with
	without.buffers = nil
	prompt := make([]int, 64)
	for i := range prompt {
		prompt[i] = (i * 7919) % ck.Config.VocabSize
	}
	allocated := func(m *Qwen2ModelWeek2) uint64 {
		m.ForwardLast([][]int{prompt}, 0, m.NewCaches()) // sizes the buffers
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m.ForwardLast([][]int{prompt}, 0, m.NewCaches())
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	w, n := allocated(with), allocated(&without)
	t.Logf("a 64-token prefill allocates %.2f MB with buffers, %.2f MB without", float64(w)/1e6, float64(n)/1e6)
	if w*3 > n {
		t.Fatalf("with its buffers a 64-token prefill allocates %d bytes, more than a third of the %d it allocates without", w, n)
	}
}

// sameBits reports whether a and b hold the same float32 bit patterns.
func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
