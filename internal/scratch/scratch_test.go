package scratch

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// garbage returns buffers whose buffer called name holds n NaNs, what a
// reused buffer may hold: an operation that reads an element before
// writing it shows.
func garbage(name string, n int) *Buffers {
	b := New()
	d := b.Tensor(name, n).Data()
	for i := range d {
		d[i] = float32(math.NaN())
	}
	return b
}

// sameBits reports whether two tensors have the same shape and float32
// bit patterns.
func sameBits(a, b *tensor.Tensor) bool {
	if !slices.Equal(a.Shape(), b.Shape()) || a.Size() != b.Size() {
		return false
	}
	for i, x := range a.Data() {
		if math.Float32bits(x) != math.Float32bits(b.Data()[i]) {
			return false
		}
	}
	return true
}

// RMSNorm gives Week 1's composition of whole-tensor operations to the
// last bit, for float32 and bf16 weights, into a new tensor (nil buffers)
// and into a buffer holding garbage.
func TestRMSNormMatchesTheComposedOperations(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 13))
	for _, d := range []int{1, 7, 64, 896} {
		for _, dt := range []tensor.DType{tensor.Float32, tensor.BFloat16} {
			x := tensor.MulScalar(tensor.RandN(rng, 3, 5, d), 40)
			w := tensor.AsType(tensor.RandN(rng, d), dt)
			const eps = 1e-6
			inv := tensor.Rsqrt(tensor.AddScalar(tensor.Mean(tensor.Square(x), -1, true), eps))
			want := tensor.Mul(tensor.Mul(x, inv), w)
			var none *Buffers
			for _, got := range []*tensor.Tensor{none.RMSNorm("norm", x, w, eps), garbage("norm", 4*x.Size()).RMSNorm("norm", x, w, eps)} {
				if !sameBits(got, want) {
					t.Fatalf("d=%d, %s weight: RMSNorm differs from the composed operations", d, dt)
				}
			}
		}
	}
}

func TestHeadsFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 13))
	for _, shape := range [][]int{{2, 5, 3, 4}, {1, 1, 7, 8}, {1, 6, 1, 8}} {
		x := tensor.RandN(rng, shape...)
		want := tensor.Transpose(x, 0, 2, 1, 3)
		if got := garbage("t", x.Size()).HeadsFirst("t", x); !sameBits(got, want) {
			t.Fatalf("HeadsFirst of %v differs from Transpose(0, 2, 1, 3)", shape)
		}
	}
}

// A buffer grows to the largest size asked for and is then shared by
// smaller requests; nil buffers allocate every time; a claimed set of
// buffers is not handed to a second pass.
func TestBuffers(t *testing.T) {
	b := New()
	small := b.Tensor("x", 2, 3)
	large := b.Tensor("x", 4, 5)
	again := b.Tensor("x", 3, 2)
	if !slices.Equal(again.Shape(), []int{3, 2}) || !slices.Equal(large.Shape(), []int{4, 5}) {
		t.Fatalf("shapes %v and %v, want [4 5] and [3 2]", large.Shape(), again.Shape())
	}
	large.Data()[0] = 42
	if again.Data()[0] != 42 || small.Data()[0] == 42 {
		t.Fatal("a smaller request after a larger one does not reuse the larger buffer")
	}
	if b.Bytes() != 4*20 {
		t.Fatalf("Bytes = %d, want %d", b.Bytes(), 4*20)
	}
	var none *Buffers
	if x, y := none.Tensor("x", 3), none.Tensor("x", 3); &x.Data()[0] == &y.Data()[0] {
		t.Fatal("nil buffers handed out the same memory twice")
	}
	first := b.Claim()
	if first != b || b.Claim() != nil {
		t.Fatal("a claimed set of buffers was handed out again")
	}
	first.Release()
	if b.Claim() != b {
		t.Fatal("released buffers could not be claimed again")
	}
}
