package devtensor

import (
	"fmt"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
)

// KVCache is one layer's keys and values of one sequence on the device,
// allocated once for Capacity positions: K and V each hold Heads x
// Capacity x HeadDim float32 values, head-major, so that the positions of
// one head are contiguous and a step appends behind Len without moving
// anything. Attention kernels read positions 0 … Len-1 of each head in
// place.
type KVCache struct {
	K, V                     *kernels.Buffer
	Heads, Capacity, HeadDim int
	Len                      int // positions written so far
}

// KVCacheBytes is the device memory of a cache: keys and values, float32.
func KVCacheBytes(heads, capacity, headDim int) int64 {
	return 2 * 4 * int64(heads) * int64(capacity) * int64(headDim)
}

// NewKVCache allocates an empty cache for up to capacity positions.
func NewKVCache(dev *kernels.Device, heads, capacity, headDim int) (*KVCache, error) {
	if heads <= 0 || capacity <= 0 || headDim <= 0 {
		return nil, fmt.Errorf("NewKVCache(%d heads, %d positions, head dim %d): all must be positive", heads, capacity, headDim)
	}
	need := KVCacheBytes(heads, capacity, headDim)
	if err := CheckFits(dev, need); err != nil {
		return nil, fmt.Errorf("NewKVCache %d x %d x %d: %w", heads, capacity, headDim, err)
	}
	c := &KVCache{Heads: heads, Capacity: capacity, HeadDim: headDim}
	var err error
	if c.K, err = dev.Alloc(int(need / 2)); err == nil {
		c.V, err = dev.Alloc(int(need / 2))
	}
	if err != nil {
		c.Free()
		return nil, err
	}
	return c, nil
}

// Append copies k and v, each float32 Heads x L x HeadDim, behind the Len
// positions already cached, and advances Len by L. A cache that would
// overflow is an error and is left as it was.
func (c *KVCache) Append(k, v *tensor.Tensor) error {
	want := []int{c.Heads, -1, c.HeadDim}
	for _, t := range []*tensor.Tensor{k, v} {
		if t.DType() != tensor.Float32 || t.NDim() != 3 || t.Dim(0) != c.Heads || t.Dim(2) != c.HeadDim || t.Dim(1) != k.Dim(1) {
			return fmt.Errorf("KVCache.Append: k %v and v %v must both be float32 %v (heads x new positions x head dim)", k.Shape(), v.Shape(), want)
		}
	}
	l := k.Dim(1)
	if c.Len+l > c.Capacity {
		return fmt.Errorf("KVCache.Append: %d positions cached + %d new exceed the capacity of %d", c.Len, l, c.Capacity)
	}
	kd, vd := k.Data(), v.Data()
	row := l * c.HeadDim
	for h := range c.Heads {
		at := (h*c.Capacity + c.Len) * c.HeadDim // in elements
		if err := kernels.Write(c.K, at, kd[h*row:(h+1)*row]); err != nil {
			return err
		}
		if err := kernels.Write(c.V, at, vd[h*row:(h+1)*row]); err != nil {
			return err
		}
	}
	c.Len += l
	return nil
}

// Free releases the cache's device memory.
func (c *KVCache) Free() error {
	var first error
	for _, b := range []*kernels.Buffer{c.K, c.V} {
		if b != nil {
			if err := b.Free(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}
