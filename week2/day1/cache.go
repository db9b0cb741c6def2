// Package day1 is Week 2 Day 1 of the course: the KV cache, the Week 2 model
// that continues a sequence from it, and generation that feeds the model one
// new token per step. The guide's chapter "Week 2 Day 1" explains the tasks;
// grade your work with `make check-w2d1`.
package day1

import (
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
	// Your code here (W2D1): the cached keys and values, and whatever else
	// your UpdateAndFetch and Offset need (see the chapter for a layout).
}

// NewFullCache returns an empty cache; the first UpdateAndFetch fixes its
// batch size B, its number of heads H and its head dimension D.
func NewFullCache() *FullCache {
	// Your code here (W2D1).
	panic("TODO(W2D1): implement NewFullCache")
}

// UpdateAndFetch appends k and v, each B x H x L x D, after the positions
// already cached, and returns every cached key and value, B x H x S x D
// with S = Offset() + L. The returned tensors may share the cache's memory:
// they are valid until the next call, and must not be written to. It panics
// if k and v differ in shape, or if B, H or D differ from the first call's.
func (c *FullCache) UpdateAndFetch(k, v *tensor.Tensor) (keys, values *tensor.Tensor) {
	// Your code here (W2D1).
	// tensor.Concat(2, old, k) on every call is correct but allocates the
	// whole cache again each time: Task 1's growth check fails it. Keep the
	// floats in slices with spare capacity and wrap them with tensor.New,
	// which does not copy.
	panic("TODO(W2D1): implement FullCache.UpdateAndFetch")
}

// Offset is the number of positions cached so far.
func (c *FullCache) Offset() int {
	// Your code here (W2D1).
	panic("TODO(W2D1): implement FullCache.Offset")
}
