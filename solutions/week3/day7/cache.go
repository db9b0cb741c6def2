// Package day7 is the reference solution of Week 3 Day 7: speculative
// decoding. A small draft model proposes a few tokens, the target model
// checks them all in one forward pass, and both models' caches forget what
// the target did not accept.
package day7

import (
	"fmt"
	"slices"

	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// KVCache is the key/value cache of one attention layer, declared once in
// internal/llm.
type KVCache = llm.KVCache

// RewindCache is a KVCache that can drop its newest positions, declared
// once in internal/llm.
type RewindCache = llm.RewindCache

// CachedModel is the Week 2 model seam: Forward with an offset and one cache
// per layer.
type CachedModel = llm.CachedModel

// SpecCache is a KVCache that can rewind: every batch row and head keeps
// its positions in a block of its own with spare room behind them (as
// Week 2's FullCache does), so appending writes only the new positions and
// rewinding only moves the end back. Positions past the end are
// overwritten by the next append; nothing is freed or copied by Rewind.
type SpecCache struct {
	keys, values []float32 // b*h blocks of capacity x d
	b, h, d      int       // fixed by the first append
	offset       int
	capacity     int
	// fetchK and fetchV are reused by UpdateAndFetch for the contiguous
	// B x H x S x D answer.
	fetchK, fetchV []float32
}

// NewSpecCache returns an empty cache; the first UpdateAndFetch fixes its
// batch size B, its number of heads H and its head dimension D.
func NewSpecCache() *SpecCache { return &SpecCache{} }

// NewSpecCaches returns n empty SpecCaches as KVCaches, one per layer.
func NewSpecCaches(n int) []KVCache {
	caches := make([]KVCache, n)
	for i := range caches {
		caches[i] = NewSpecCache()
	}
	return caches
}

// UpdateAndFetch appends k and v, each B x H x L x D, after the cached
// positions and returns every cached key and value, B x H x S x D with
// S = Offset() + L. The returned tensors are valid until the next call. It
// panics if k and v differ in shape, or if B, H or D differ from the first
// call's (a programming error, as in Week 2).
func (c *SpecCache) UpdateAndFetch(k, v *tensor.Tensor) (keys, values *tensor.Tensor) {
	ks, vs := k.Shape(), v.Shape()
	if len(ks) != 4 || !slices.Equal(ks, vs) {
		panic(fmt.Sprintf("day7.SpecCache.UpdateAndFetch: keys %v and values %v must both be B x H x L x D", ks, vs))
	}
	b, h, l, d := ks[0], ks[1], ks[2], ks[3]
	if c.keys == nil {
		c.b, c.h, c.d = b, h, d
	} else if b != c.b || h != c.h || d != c.d {
		panic(fmt.Sprintf("day7.SpecCache.UpdateAndFetch: the cache holds %v (B x H x S x D), cannot append %v",
			[]int{c.b, c.h, c.offset, c.d}, ks))
	}
	if need := c.offset + l; need > c.capacity || c.keys == nil {
		// Grow by half: appends of n positions copy O(n) in all.
		capacity := max(need, c.capacity+c.capacity/2, 16)
		c.keys = c.regroup(c.keys, capacity)
		c.values = c.regroup(c.values, capacity)
		c.capacity = capacity
	}
	kd, vd := k.Data(), v.Data()
	for g := range b * h {
		at := (g*c.capacity + c.offset) * d
		copy(c.keys[at:at+l*d], kd[g*l*d:(g+1)*l*d])
		copy(c.values[at:at+l*d], vd[g*l*d:(g+1)*l*d])
	}
	c.offset += l
	c.fetchK = c.gather(c.fetchK, c.keys)
	c.fetchV = c.gather(c.fetchV, c.values)
	return tensor.New(c.fetchK, c.b, c.h, c.offset, c.d), tensor.New(c.fetchV, c.b, c.h, c.offset, c.d)
}

// Offset is the number of positions cached.
func (c *SpecCache) Offset() int { return c.offset }

// Rewind drops the last n cached positions. n must lie in 0 … Offset();
// otherwise it returns an error and the cache is unchanged.
func (c *SpecCache) Rewind(n int) error {
	if n < 0 || n > c.offset {
		return fmt.Errorf("day7.SpecCache.Rewind: cannot drop %d of %d cached positions", n, c.offset)
	}
	c.offset -= n
	return nil
}

// regroup returns buf with every block widened to capacity positions, the
// cached positions copied to the start of each.
func (c *SpecCache) regroup(buf []float32, capacity int) []float32 {
	grown := make([]float32, c.b*c.h*capacity*c.d)
	for g := range c.b * c.h {
		copy(grown[g*capacity*c.d:], buf[g*c.capacity*c.d:(g*c.capacity+c.offset)*c.d])
	}
	return grown
}

// gather copies the cached positions of every block of src into dst (grown
// if needed): the contiguous B x H x S x D layout.
func (c *SpecCache) gather(dst, src []float32) []float32 {
	n := c.b * c.h * c.offset * c.d
	if cap(dst) < n {
		dst = make([]float32, n, max(n, 2*cap(dst)))
	}
	dst = dst[:n]
	for g := range c.b * c.h {
		copy(dst[g*c.offset*c.d:(g+1)*c.offset*c.d], src[g*c.capacity*c.d:(g*c.capacity+c.offset)*c.d])
	}
	return dst
}
