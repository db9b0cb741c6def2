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
// grows geometrically (by doubling, say) or is reserved up front, so
// appending n positions one at a time allocates O(n) bytes in total, never
// O(n²): the cache is not reallocated and copied whole on every step.
type FullCache struct {
	// keys and values each hold b*h blocks of capacity positions of d
	// floats; the first offset positions of every block are cached. Each
	// batch row and head has a block of its own with spare capacity behind
	// its cached positions, so appending writes only the new rows: nothing
	// already cached moves (in a single B x H x S x D buffer, every head's
	// block would move back on every step, half the cache per token). When
	// the capacity runs out, all blocks grow at once. The model reads
	// each block where it lies (attendInPlace).
	keys, values []float32
	b, h, d      int // fixed by the first append
	offset       int
	capacity     int
	// expect, if more than the first append needs, is the capacity that
	// append allocates: Prefill sets it to the prompt plus room for the
	// reply, so that a long prompt fed in pieces does not grow the cache
	// piece by piece, holding the old and the new buffers at each growth
	// and up to a third of spare room at the end.
	expect int
	// fetchK and fetchV are the contiguous buffers UpdateAndFetch gathers
	// into, reused from call to call.
	fetchK, fetchV []float32
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
	c.append("UpdateAndFetch", k, v)
	// The substrate has no strided views, so the answer must be one
	// contiguous B x H x S x D tensor: gather every block's cached
	// positions. The buffers grow geometrically, so this allocates O(n) in
	// all; the model itself skips the copy and reads the blocks in place.
	n := c.b * c.h * c.offset * c.d
	c.fetchK = c.gather(c.fetchK[:0], c.keys, n)
	c.fetchV = c.gather(c.fetchV[:0], c.values, n)
	return tensor.New(c.fetchK, c.b, c.h, c.offset, c.d), tensor.New(c.fetchV, c.b, c.h, c.offset, c.d)
}

// Offset is the number of positions cached so far.
func (c *FullCache) Offset() int { return c.offset }

// append writes k and v, each B x H x L x D, behind the cached positions
// of every block, growing the blocks first if they are full.
func (c *FullCache) append(op string, k, v *tensor.Tensor) {
	ks, vs := k.Shape(), v.Shape()
	if len(ks) != 4 || !slices.Equal(ks, vs) {
		panic(fmt.Sprintf("day1.FullCache.%s: keys %v and values %v must both be B x H x L x D", op, ks, vs))
	}
	b, h, l, d := ks[0], ks[1], ks[2], ks[3]
	if c.keys == nil {
		c.b, c.h, c.d = b, h, d
	} else if b != c.b || h != c.h || d != c.d {
		panic(fmt.Sprintf("day1.FullCache.%s: the cache holds %v (B x H x S x D), cannot append %v",
			op, []int{c.b, c.h, c.offset, c.d}, ks))
	}
	if need := c.offset + l; need > c.capacity || c.keys == nil {
		// ×1.5, not ×2: the copies still add up to about 3n positions, and
		// the spare room right after a growth is a third of the cache, not
		// a half (50 MB of Qwen2-0.5B's keys and values at 2048 positions).
		capacity := max(need, c.capacity+c.capacity/2)
		if c.keys == nil {
			capacity = max(capacity, c.expect)
		}
		c.keys = regroup(c.keys, b*h, c.capacity, capacity, c.offset, d)
		c.values = regroup(c.values, b*h, c.capacity, capacity, c.offset, d)
		c.capacity = capacity
	}
	kd, vd := k.Data(), v.Data()
	for g := range b * h {
		at := (g*c.capacity + c.offset) * d
		copy(c.keys[at:at+l*d], kd[g*l*d:(g+1)*l*d])
		copy(c.values[at:at+l*d], vd[g*l*d:(g+1)*l*d])
	}
	c.offset += l
}

// block returns the cached keys and values of batch row bi and head hi:
// two contiguous offset x d slices of the cache's own storage.
func (c *FullCache) block(bi, hi int) (keys, values []float32) {
	at := (bi*c.h + hi) * c.capacity * c.d
	n := c.offset * c.d
	return c.keys[at : at+n], c.values[at : at+n]
}

// gather appends the cached positions of every block of src to dst, which
// holds n floats afterwards: the contiguous B x H x S x D layout.
func (c *FullCache) gather(dst, src []float32, n int) []float32 {
	if cap(dst) < n {
		dst = make([]float32, 0, max(n, 2*cap(dst)))
	}
	for g := range c.b * c.h {
		at := g * c.capacity * c.d
		dst = append(dst, src[at:at+c.offset*c.d]...)
	}
	return dst
}

// regroup returns a buffer of groups blocks of newCap positions of d
// floats, with the first used positions of every block of buf (blocks of
// oldCap positions) copied to the start of the new blocks.
func regroup(buf []float32, groups, oldCap, newCap, used, d int) []float32 {
	grown := make([]float32, groups*newCap*d)
	for g := range groups {
		copy(grown[g*newCap*d:], buf[g*oldCap*d:g*oldCap*d+used*d])
	}
	return grown
}
