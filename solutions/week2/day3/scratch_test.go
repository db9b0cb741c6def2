package day3

import (
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/models"
)

// openShipped4Bit builds the shipped model's 4-bit sibling as the engine
// does, with 8-bit activations, the path whose products go into the
// model's buffers. It reports by name that it did not run on a machine
// without those kernels.
func openShipped4Bit(t *testing.T) *Qwen2ModelWeek2 {
	t.Helper()
	if !tensor.HasInt8Kernels() {
		t.Skip("not run: this machine has no 8-bit-activation kernels (amd64 with AVX2 has them)")
	}
	dir, _, err := models.Open4Bit()
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	tensor.AllowInt8Activations(true)
	t.Cleanup(func() { tensor.AllowInt8Activations(false) })
	m, err := NewQwen2ModelWeek2(ck)
	if err != nil {
		t.Fatal(err)
	}
	if m.Layers[0].MLP.Down.q4 == nil {
		t.Fatal("the shipped 4-bit model does not take the 8-bit-activation path")
	}
	return m
}

// The model with its buffers gives the same logits, bit for bit, as the
// model without, over a prefill, decode steps, a longer piece that makes
// the buffers grow and a shorter one that reuses part of them.
func TestBuffersGiveTheSameLogits(t *testing.T) {
	with := openShipped4Bit(t)
	without := *with
	without.buffers = nil
	cw, cn := with.NewCaches(), without.NewCaches()
	offset := 0
	for step, l := range []int{7, 1, 1, 12, 1, 3, 1} {
		tokens := make([]int, l)
		for i := range tokens {
			tokens[i] = (offset + i*131) % with.Config.VocabSize
		}
		forward := (*Qwen2ModelWeek2).Forward
		if step%2 == 1 {
			forward = (*Qwen2ModelWeek2).ForwardLast
		}
		got := forward(with, [][]int{tokens}, offset, cw)
		want := forward(&without, [][]int{tokens}, offset, cn)
		offset += l
		if !slices.Equal(got.Shape(), want.Shape()) || !slices.EqualFunc(got.Data(), want.Data(), func(a, b float32) bool {
			return math.Float32bits(a) == math.Float32bits(b)
		}) {
			t.Fatalf("step %d (%d tokens at offset %d): the logits with reused buffers differ from those without", step, l, offset-l)
		}
	}
}

// Once the buffers are sized, a prefill piece allocates a small part of
// what it allocates without them.
func TestBuffersCutAllocation(t *testing.T) {
	with := openShipped4Bit(t)
	without := *with
	without.buffers = nil
	prompt := make([]int, 64)
	for i := range prompt {
		prompt[i] = (i * 7919) % with.Config.VocabSize
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
