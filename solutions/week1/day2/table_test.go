package day2

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// allocated returns the bytes f allocates (whatever becomes of them).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestRoPEHugeSeqLenAllocatesLittle is the regression test for tables sized
// to max_position_embeddings: NewRoPE used to compute cos and sin for every
// position up to seqLen, 256 bytes each at Dims 64, which is 256 MiB for
// 2^20 positions and 64 GiB for the 2^28 that some configurations state.
// Now neither costs more than some bookkeeping until Forward reaches a
// position, and reaching position 100 fills a table of a few hundred
// positions (64 KiB).
func TestRoPEHugeSeqLenAllocatesLittle(t *testing.T) {
	// A base no other test uses, so the shared table starts empty.
	const dims, base = 64, 123456.0
	for _, seqLen := range []int{1 << 20, 1 << 28} {
		t.Run(fmt.Sprintf("seqLen 2^%d", bitsLen(seqLen)), func(t *testing.T) {
			var r *RoPE
			// A few hundred bytes for the table's bookkeeping (more under
			// the race detector), against megabytes for any table rows.
			if n := allocated(func() { r = NewRoPE(dims, seqLen, base, false) }); n > 64<<10 {
				t.Fatalf("NewRoPE(%d, %d, …) allocated %d bytes; it should not fill tables up front", dims, seqLen, n)
			}
			x := tensor.RandN(rand.New(rand.NewPCG(1, 2)), 1, 1, 2, dims)
			var out *tensor.Tensor
			// x and the output are 1 KiB; the tables are allowed 1 MiB.
			if n := allocated(func() { out = r.Forward(x, []int{100}) }); n > 1<<20 {
				t.Fatalf("Forward at position 100 allocated %d bytes", n)
			}
			grade.AllClose(t, "Forward at positions 100 and 101", out, halfSplitRotation(x, 100, base), grade.Elementwise)
		})
	}
}

func bitsLen(n int) int { return int(math.Log2(float64(n))) }

// halfSplitRotation rotates x (1 x L x H x D) by the non-traditional RoPE
// formula in float64, positions starting at start: an independent
// statement of what Forward must return.
func halfSplitRotation(x *tensor.Tensor, start int, base float64) *tensor.Tensor {
	l, h, d := x.Dim(1), x.Dim(2), x.Dim(3)
	half := d / 2
	in, out := x.Data(), make([]float32, x.Size())
	for p := 0; p < l; p++ {
		for head := 0; head < h; head++ {
			v := in[(p*h+head)*d:][:d]
			o := out[(p*h+head)*d:][:d]
			for i := 0; i < half; i++ {
				angle := float64(start+p) * math.Pow(base, -2*float64(i)/float64(d))
				c, s := math.Cos(angle), math.Sin(angle)
				o[i] = float32(float64(v[i])*c - float64(v[i+half])*s)
				o[i+half] = float32(float64(v[i])*s + float64(v[i+half])*c)
			}
		}
	}
	return tensor.New(out, x.Shape()...)
}

// TestRoPETablesGrowAcrossCalls runs the fixture of Qwen2's settings
// (positions 1000 to 1007) on a RoPE whose table first covered a handful
// of positions, and with a seqLen of 2^28, against the MLX/Hugging Face
// reference output.
func TestRoPETablesGrowAcrossCalls(t *testing.T) {
	cases, err := fixture.Load("w1d2", "rope_halves")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if c.Name != "qwen2_theta" {
			continue
		}
		x, want := grade.MustTensor(t, c, "x"), grade.MustTensor(t, c, "out")
		a, err := c.Array("offsets")
		if err != nil {
			t.Fatal(err)
		}
		offsets, err := a.Ints()
		if err != nil {
			t.Fatal(err)
		}
		r := NewRoPE(x.Dim(3), 1<<28, grade.MustFloat(t, c, "base"), false)
		r.Forward(tensor.Zeros(1, 3, 1, x.Dim(3)), nil) // a short table first
		grade.AllClose(t, "qwen2_theta after growing", r.Forward(x, offsets), want, grade.Elementwise)
		return
	}
	t.Fatal("fixture w1d2/rope_halves has no qwen2_theta case")
}

// TestRoPEConcurrentForward has many goroutines grow and read one table at
// once, each at positions of its own; every result must match the formula.
// (go test -race checks the table's synchronisation.)
func TestRoPEConcurrentForward(t *testing.T) {
	const dims, base = 16, 777.0
	x := tensor.RandN(rand.New(rand.NewPCG(3, 4)), 1, 5, 2, dims)
	starts := []int{0, 3000, 17, 9000, 250, 70000, 1024, 5, 40000, 600}
	got := make([]*tensor.Tensor, len(starts))
	shared := NewRoPE(dims, 1<<20, base, false)
	var wg sync.WaitGroup
	for i, s := range starts {
		wg.Go(func() { got[i] = shared.Forward(x, []int{s}) })
	}
	wg.Wait()
	for i, s := range starts {
		grade.AllClose(t, fmt.Sprintf("Forward at %d, concurrent", s), got[i], halfSplitRotation(x, s, base), grade.Elementwise)
	}
}
