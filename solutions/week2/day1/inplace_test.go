package day1

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day3"
)

// TestAttendInPlace checks the attention that reads FullCache's blocks where
// they lie against grouped attention over the contiguous keys and values
// that UpdateAndFetch of a second cache returns, after appends of several
// lengths (so the blocks grow and move between steps), with and without a
// causal mask, and decode steps that take the cache in more than one block
// of attendBlock rows.
func TestAttendInPlace(t *testing.T) {
	for _, tc := range []struct {
		name          string
		b, hq, h, d   int
		appendLengths []int
	}{
		{"one head per group", 1, 2, 2, 8, []int{3, 1, 1, 5}},
		{"grouped, batch of two", 2, 6, 2, 4, []int{1, 4, 1, 1, 7, 2}},
		{"a single key/value head", 1, 7, 1, 16, []int{5, 1, 1}},
		// decode steps (one row) over more than attendBlock cached rows:
		// one block exactly, then a block and one row, then three blocks
		{"decode steps across blocks of the cache", 1, 7, 1, 16, []int{attendBlock - 1, 1, 1, attendBlock + 6, 1}},
		{"decode steps across blocks, batch of two", 2, 4, 2, 64, []int{2*attendBlock + 2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.hq)))
			inPlace, fetched := NewFullCache(), NewFullCache()
			offset := 0
			for step, l := range tc.appendLengths {
				k := tensor.RandN(rng, tc.b, tc.h, l, tc.d)
				v := tensor.RandN(rng, tc.b, tc.h, l, tc.d)
				q := tensor.RandN(rng, tc.b, tc.hq, l, tc.d)
				var mask *tensor.Tensor
				if l > 1 {
					mask = day3.CausalMask(l, offset+l)
				}
				inPlace.append("append", k, v)
				// Every other step writes into a destination that holds
				// the last step's garbage, as a reused buffer does.
				var dst *tensor.Tensor
				if step%2 == 1 {
					dst = tensor.RandN(rng, q.Shape()...)
				}
				got := attendInPlace(q, inPlace, mask, dst)
				keys, values := fetched.UpdateAndFetch(k, v)
				want := day3.ScaledDotProductAttentionGrouped(q, keys, values, 0, mask)
				offset += l
				if !slices.Equal(got.Shape(), want.Shape()) {
					t.Fatalf("step %d: shape %v, want %v", step, got.Shape(), want.Shape())
				}
				for i, w := range want.Data() {
					if g := got.Data()[i]; math.Abs(float64(g-w)) > 1e-5 {
						t.Fatalf("step %d (offset %d): element %d is %v, want %v", step, offset, i, g, w)
					}
				}
			}
		})
	}
}

// TestFetchAfterInPlaceAppends checks that UpdateAndFetch hands back every
// cached position when some earlier appends came through the model's path,
// which does not keep the contiguous copies, and when all came through
// UpdateAndFetch.
func TestFetchAfterInPlaceAppends(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fetch []bool // per append: through UpdateAndFetch, or the model's path
	}{
		{"fetch every time", []bool{true, true, true, true}},
		{"model first, then fetch", []bool{false, false, true, true}},
		{"alternating", []bool{true, false, true, false, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, uint64(len(tc.fetch))))
			mixed, want := NewFullCache(), NewFullCache()
			for step, fetch := range tc.fetch {
				l := 1 + step%3
				k, v := tensor.RandN(rng, 2, 3, l, 4), tensor.RandN(rng, 2, 3, l, 4)
				wantK, wantV := want.UpdateAndFetch(k, v)
				if !fetch {
					mixed.append("append", k, v)
					continue
				}
				gotK, gotV := mixed.UpdateAndFetch(k, v)
				for _, p := range []struct {
					name      string
					got, want *tensor.Tensor
				}{{"keys", gotK, wantK}, {"values", gotV, wantV}} {
					if !slices.Equal(p.got.Shape(), p.want.Shape()) || !slices.Equal(p.got.Data(), p.want.Data()) {
						t.Fatalf("step %d: %s %v differ from those of a cache that fetched every time %v",
							step, p.name, p.got.Shape(), p.want.Shape())
					}
				}
			}
		})
	}
}

// cacheModel is a stand-in model for Prefill: it appends one key and value
// per token to every cache and returns zero logits.
type cacheModel struct{}

func (cacheModel) NewCaches() []KVCache { return []KVCache{NewFullCache(), NewFullCache()} }

func (m cacheModel) Forward(tokens [][]int, offset int, caches []KVCache) *tensor.Tensor {
	l := len(tokens[0])
	for _, c := range caches {
		c.(*FullCache).append("append", tensor.Zeros(1, 2, l, 4), tensor.Zeros(1, 2, l, 4))
	}
	return tensor.Zeros(1, l, 3)
}

func (m cacheModel) ForwardLast(tokens [][]int, offset int, caches []KVCache) *tensor.Tensor {
	m.Forward(tokens, offset, caches)
	return tensor.Zeros(1, 1, 3)
}

// A prompt fed in pieces fills caches that allocated once, for the prompt
// and replyRoom more positions, instead of growing piece by piece.
func TestPrefillSizesTheCacheOnce(t *testing.T) {
	m := cacheModel{}
	caches := m.NewCaches()
	Prefill(m, make([]int, 300), caches, 64)
	for _, c := range caches {
		fc := c.(*FullCache)
		if fc.offset != 300 || fc.capacity != 300+replyRoom {
			t.Fatalf("after a 300-token prompt in pieces of 64: %d positions in a capacity of %d, want 300 in %d",
				fc.offset, fc.capacity, 300+replyRoom)
		}
	}
}
