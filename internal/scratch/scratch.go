// Package scratch keeps the activation buffers of a model's forward pass
// from one pass to the next.
//
// A forward pass makes the same activations every time: the normalised
// input, q, k and v, the MLP's gate and up, the outputs of each layer. Made
// fresh, a 128-token prefill of Qwen2-0.5B allocates about 300 MB of them,
// dropped as soon as the next layer starts. The garbage collector hands
// that memory back, the operating system takes some of it, and the next
// allocation faults it in again page by page and zeroes it: on two cores
// that was about a fifth of the prefill. Buffers kept here are faulted in
// once, by the first pass, and reused by every later one, at the size of
// the largest piece seen.
package scratch

import (
	"fmt"
	"math"
	"sync"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Buffers is a set of named float32 buffers. Each name is one activation
// of the forward pass ("mlp.gate", "attn.q"): two activations that are
// alive at the same time need two names, and an activation of the next
// layer reuses the buffer of the same name in this one.
//
// A nil *Buffers is valid and keeps nothing: Tensor allocates a new
// tensor, so that code written against buffers also runs without them
// (the exported layers of a course day, called on their own).
type Buffers struct {
	mu   sync.Mutex // held by the forward pass that Claimed the buffers
	bufs map[string][]float32
}

// New returns an empty set of buffers.
func New() *Buffers { return &Buffers{bufs: map[string][]float32{}} }

// Claim returns b for the use of one forward pass, until Release, or nil
// (allocate instead) when another pass holds it: a model shared by two
// goroutines stays correct, only the second one allocates.
func (b *Buffers) Claim() *Buffers {
	if b == nil || !b.mu.TryLock() {
		return nil
	}
	return b
}

// Release ends the forward pass that Claimed b. The tensors it handed out
// must not be used after this; what a pass returns to its caller (the
// logits) is never one of them.
func (b *Buffers) Release() {
	if b != nil {
		b.mu.Unlock()
	}
}

// Tensor returns a Float32 tensor of the given shape over the buffer
// called name, which grows if it is too small. Its contents are whatever
// the last user of the buffer left there: the caller overwrites every
// element. On a nil *Buffers it returns a new zeroed tensor.
func (b *Buffers) Tensor(name string, shape ...int) *tensor.Tensor {
	if b == nil {
		return tensor.Zeros(shape...)
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	buf := b.bufs[name]
	if cap(buf) < n {
		buf = make([]float32, n)
		b.bufs[name] = buf
	}
	return tensor.New(buf[:n], shape...)
}

// Bytes is the memory the buffers hold.
func (b *Buffers) Bytes() int {
	if b == nil {
		return 0
	}
	n := 0
	for _, buf := range b.bufs {
		n += 4 * cap(buf)
	}
	return n
}

// The operations below write into buffers, for the Week 2 reference
// engines: each gives the values of the Week 1 operations it replaces,
// to the last bit, without their new tensors.

// RMSNorm is Week 1's RMSNorm (x / sqrt(mean(x²) + eps) · weight over the
// last axis) into the buffer called name: its five whole-tensor operations
// (square, mean, add epsilon, reciprocal square root, the two products)
// done row by row in one visit, each value rounded where they round it
// (the squares summed in float64, as tensor.Mean does).
func (b *Buffers) RMSNorm(name string, x, weight *tensor.Tensor, eps float32) *tensor.Tensor {
	d := x.Dim(-1)
	if weight.Size() != d {
		panic(fmt.Sprintf("scratch.RMSNorm: x %v and a weight of %d values", x.Shape(), weight.Size()))
	}
	out := b.Tensor(name, x.Shape()...)
	w, src, dst := weight.Data(), x.Data(), out.Data()
	scale := 1 / float64(d)
	tensor.ParallelRows(len(src)/max(d, 1), d, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row, y := src[r*d:(r+1)*d], dst[r*d:(r+1)*d]
			var sum float64
			for _, v := range row {
				sum += float64(float32(v * v)) // Square's rounding, then Mean's float64 sum
			}
			inv := float32(1 / math.Sqrt(float64(float32(sum*scale)+eps)))
			for i, v := range row {
				y[i] = float32(v*inv) * w[i]
			}
		}
	})
	return out
}

// HeadsFirst swaps axes 1 and 2 of a B x L x H x D tensor (or back), as
// tensor.Transpose(t, 0, 2, 1, 3) does, into the buffer called name. When
// one of the two axes has length 1 (a decode step) the elements keep their
// order, and a reshape that shares t's data does instead.
func (b *Buffers) HeadsFirst(name string, t *tensor.Tensor) *tensor.Tensor {
	n, l, h, d := t.Dim(0), t.Dim(1), t.Dim(2), t.Dim(3)
	if l == 1 || h == 1 {
		return tensor.Reshape(t, n, h, l, d)
	}
	out := b.Tensor(name, n, h, l, d)
	src, dst := t.Data(), out.Data()
	for i := range n {
		for j := range l {
			for k := range h {
				from := ((i*l+j)*h + k) * d
				to := ((i*h+k)*l + j) * d
				copy(dst[to:to+d], src[from:from+d])
			}
		}
	}
	return out
}
