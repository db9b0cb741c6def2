// Package day6 is Week 2 Day 6: flash attention. You write FlashAttention
// below (tiles, the online softmax, causal tiles skipped, GQA without
// copying keys) and the flash-decoding kernels in decode.cu (NVIDIA) and
// decode.metal (Apple); the prefill kernel and everything marked
// (Provided.) are given.
package day6

import (
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Tile sizes of the CPU flash attention: BlockQ query rows meet BlockK keys
// at a time, so the scores held at once are BlockQ x BlockK per worker
// instead of L x S per head. (Provided.)
const (
	BlockQ = 32
	BlockK = 64
)

// FlashAttention is grouped-query attention computed tile by tile with the
// online softmax, never holding a whole row of scores. q is B x Hq x L x D,
// k and v are B x H x S x D with Hq a multiple of H; query head j reads
// key/value head j / (Hq/H), in place (keys are never copied per query
// head). scale 0 means 1/sqrt(D). mask is nil or an additive L x S mask.
// causal hides key j from query row i when j > i + S - L (the bottom-right
// alignment of a KV cache: the L queries are the last L of S positions), and
// key tiles that a whole query tile cannot see are skipped. The result is
// B x Hq x L x D. Shapes that do not fit panic with a message naming them.
func FlashAttention(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor, causal bool) *tensor.Tensor {
	// Your code here (W2D6).
	panic("TODO(W2D6): implement FlashAttention")
}
