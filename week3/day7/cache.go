// Package day7 is Week 3 Day 7: speculative decoding. A small draft model proposes a few tokens, the target model
// checks them all in one forward pass, and both models' caches forget what
// the target did not accept.
package day7

import (
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
	// Your code here (W3D7).
	// Week 2's FullCache is the model: blocks with room behind them. The
	// new positions go at offset, which a Rewind may have moved back.
	panic("TODO(W3D7): implement SpecCache.UpdateAndFetch")
}

// Offset is the number of positions cached.
func (c *SpecCache) Offset() int {
	// Your code here (W3D7).
	panic("TODO(W3D7): implement SpecCache.Offset")
}

// Rewind drops the last n cached positions. n must lie in 0 … Offset();
// otherwise it returns an error and the cache is unchanged.
func (c *SpecCache) Rewind(n int) error {
	// Your code here (W3D7).
	panic("TODO(W3D7): implement SpecCache.Rewind")
}
