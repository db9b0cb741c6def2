// Package day1 is the reference solution of Week 2 Day 1: the KV cache, the
// Week 2 model that continues a sequence from it, and generation that feeds
// the model one new token per step.
package day1

import (
	"fmt"
	"slices"

	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// KVCache is the key/value cache of one attention layer: UpdateAndFetch
// appends this step's keys and values (B x H x L x D) and returns all of
// them so far (B x H x S x D); Offset is S. It is declared once, in
// internal/llm, for every day and the command-line program.
type KVCache = llm.KVCache

// FullCache is a KVCache that keeps every position it is given. Its storage
// grows by doubling (or is reserved up front), so appending n positions one
// at a time allocates O(n) bytes in total, never O(n²): the cache is not
// reallocated and copied whole on every step.
type FullCache struct {
	// keys and values each hold B x H x offset x D floats in exactly the
	// layout UpdateAndFetch returns, with spare capacity behind them.
	keys, values []float32
	b, h, d      int // fixed by the first call
	offset       int
}

// NewFullCache returns an empty cache; the first UpdateAndFetch fixes its
// batch size B, its number of heads H and its head dimension D.
func NewFullCache() *FullCache {
	return &FullCache{}
}

// UpdateAndFetch appends k and v, each B x H x L x D, after the positions
// already cached, and returns every cached key and value, B x H x S x D
// with S = Offset() + L. The returned tensors may share the cache's memory:
// they are valid until the next call, and must not be written to. It panics
// if k and v differ in shape, or if B, H or D differ from the first call's.
func (c *FullCache) UpdateAndFetch(k, v *tensor.Tensor) (keys, values *tensor.Tensor) {
	ks, vs := k.Shape(), v.Shape()
	if len(ks) != 4 || !slices.Equal(ks, vs) {
		panic(fmt.Sprintf("day1.FullCache.UpdateAndFetch: keys %v and values %v must both be B x H x L x D", ks, vs))
	}
	b, h, l, d := ks[0], ks[1], ks[2], ks[3]
	if c.keys == nil {
		c.b, c.h, c.d = b, h, d
	} else if b != c.b || h != c.h || d != c.d {
		panic(fmt.Sprintf("day1.FullCache.UpdateAndFetch: the cache holds %v (B x H x S x D), cannot append %v",
			[]int{c.b, c.h, c.offset, c.d}, ks))
	}
	c.keys = appendPositions(c.keys, k.Data(), b*h, c.offset, l, d)
	c.values = appendPositions(c.values, v.Data(), b*h, c.offset, l, d)
	c.offset += l
	return tensor.New(c.keys, b, h, c.offset, d), tensor.New(c.values, b, h, c.offset, d)
}

// Offset is the number of positions cached so far.
func (c *FullCache) Offset() int { return c.offset }

// appendPositions returns buf, which holds groups blocks of old positions
// of d floats each (one block per batch row and head), with the l new
// positions of every block from rows written after that block's old ones.
//
// The result must be one contiguous B x H x S x D tensor, because the
// substrate has no strided views; so every block except the first moves
// back by l positions on each call. Moving blocks within spare capacity
// allocates nothing. Only when the capacity runs out is a new buffer
// allocated, twice as large as needed, so that n single-position appends
// allocate about 2n positions in all instead of n²/2.
func appendPositions(buf, rows []float32, groups, old, l, d int) []float32 {
	oldBlock, newBlock := old*d, (old+l)*d
	n := groups * newBlock
	if n > cap(buf) {
		grown := make([]float32, n, max(n, 2*cap(buf)))
		for g := range groups {
			copy(grown[g*newBlock:], buf[g*oldBlock:(g+1)*oldBlock])
		}
		buf = grown
	} else {
		buf = buf[:n]
		// Last block first: each block moves to a higher address, over the
		// place of blocks that have already moved. copy handles the overlap.
		for g := groups - 1; g > 0; g-- {
			copy(buf[g*newBlock:g*newBlock+oldBlock], buf[g*oldBlock:(g+1)*oldBlock])
		}
	}
	for g := range groups {
		copy(buf[g*newBlock+oldBlock:(g+1)*newBlock], rows[g*l*d:(g+1)*l*d])
	}
	return buf
}
