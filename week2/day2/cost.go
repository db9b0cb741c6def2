// Package day2 is Week 2 Day 2 of the course: the cost model of one forward
// pass of a Qwen2 model (its FLOPs, and the bytes of weights and of key/value
// cache it moves), to read a profile and a roofline against. The guide's
// chapter "Week 2 Day 2" explains the tasks; grade your work with
// `make check-w2d2`.
package day2

import "github.com/tinyllm-go/tinyllm/internal/checkpoint"

// Cost is the work of one forward pass over newTokens new positions of one
// sequence (batch 1), as the chapter defines it. FLOPs count a multiply-add
// as two and count only matrix products (what PyTorch's FlopCounterMode
// counts); bytes count each value moved from memory once.
type Cost struct {
	// LinearFLOPs is the seven projections of every layer (q, k, v, o,
	// gate, up, down) over the new positions; biases are not counted.
	LinearFLOPs int64
	// HeadFLOPs is the LM head over every new position (the logits of
	// all of them, as Forward computes).
	HeadFLOPs int64
	// AttentionFLOPs is q·kᵀ and weights·v of every query head against
	// all offset+newTokens keys, masked ones included.
	AttentionFLOPs int64
	// WeightBytes is every weight tensor read once; of an embedding table
	// that is not also the head, only the new tokens' rows.
	WeightBytes int64
	// KVReadBytes is the keys and values attention reads: every layer's
	// cache after this call's positions are appended.
	KVReadBytes int64
	// KVWriteBytes is the keys and values this call appends to the cache.
	KVWriteBytes int64
}

// FLOPs is the total of the three FLOP counts.
func (c Cost) FLOPs() int64 { return c.LinearFLOPs + c.HeadFLOPs + c.AttentionFLOPs }

// Bytes is the total of the three byte counts.
func (c Cost) Bytes() int64 { return c.WeightBytes + c.KVReadBytes + c.KVWriteBytes }

// Intensity is the arithmetic intensity, FLOPs per byte moved: the x
// coordinate of the pass on a roofline.
func (c Cost) Intensity() float64 {
	if c.Bytes() == 0 {
		return 0
	}
	return float64(c.FLOPs()) / float64(c.Bytes())
}

// ForwardCost is the cost of one forward pass of the Qwen2 model cfg over
// newTokens new positions starting at position offset (a prefill of L
// tokens is newTokens=L, offset=0; a decode step at position p is
// newTokens=1, offset=p). weightBytes is the size of one stored weight value
// (2 for bf16), cacheBytes that of one cached key or value (4 for the
// float32 cache of Week 2 Day 1). It refuses a config or arguments that
// describe no model or no call.
func ForwardCost(cfg checkpoint.Config, weightBytes, cacheBytes, newTokens, offset int) (Cost, error) {
	// Your code here (W2D2).
	//
	// Work it out per layer first, with d = hidden/heads the head dimension
	// and kv = num_key_value_heads*d the width of the k and v projections:
	// which matrices does one layer multiply by, and how many values of the
	// cache does one layer hold per position? Then multiply by the layers and
	// add what sits outside them (the final norm, the head, the embedding).
	// Refuse, with an error that names the values, sizes that are not
	// positive, hidden not a multiple of the heads, heads not a multiple of
	// the key/value heads, newTokens < 1 and offset < 0.
	panic("TODO(W2D2): ForwardCost")
}
