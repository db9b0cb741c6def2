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

// TestAttendPromptMasks checks the prompt path of attendInPlace (query
// rows in blocks, each meeting only the keys its rows may see) against
// grouped attention over the fetched keys and values, under masks other
// than the causal one: none at all, and masks whose rows see more or fewer
// keys in no particular order, so that a block must take the farthest key
// of any of its rows, not its last row's. A mask that hides every key from
// a row must give what the general path gives (NaN rows).
func TestAttendPromptMasks(t *testing.T) {
	const b, hq, h, d, before, l = 2, 6, 2, 8, 5, 2*promptBlock + 5
	s := before + l
	rng := rand.New(rand.NewPCG(4, 4))
	inf := float32(math.Inf(-1))
	masks := map[string]func() *tensor.Tensor{
		"none":   func() *tensor.Tensor { return nil },
		"causal": func() *tensor.Tensor { return day3.CausalMask(l, s) },
		"ragged": func() *tensor.Tensor { // row r sees keys [0, n_r) for random n_r, some -Inf inside
			m := make([]float32, l*s)
			for r := range l {
				n := 1 + rng.IntN(s)
				for j := range s {
					if j >= n || (j > 0 && rng.IntN(4) == 0) {
						m[r*s+j] = inf
					} else {
						m[r*s+j] = float32(rng.NormFloat64())
					}
				}
			}
			return tensor.New(m, l, s)
		},
		"a row sees nothing": func() *tensor.Tensor {
			m := day3.CausalMask(l, s).Data()
			for j := range s {
				m[3*s+j] = inf
			}
			return tensor.New(m, l, s)
		},
	}
	for name, mk := range masks {
		t.Run(name, func(t *testing.T) {
			inPlace, fetched := NewFullCache(), NewFullCache()
			k0, v0 := tensor.RandN(rng, b, h, before, d), tensor.RandN(rng, b, h, before, d)
			inPlace.append("append", k0, v0)
			fetched.UpdateAndFetch(k0, v0)
			k, v, q := tensor.RandN(rng, b, h, l, d), tensor.RandN(rng, b, h, l, d), tensor.RandN(rng, b, hq, l, d)
			inPlace.append("append", k, v)
			keys, values := fetched.UpdateAndFetch(k, v)
			mask := mk()
			got := attendInPlace(q, inPlace, mask, tensor.RandN(rng, q.Shape()...)).Data()
			want := day3.ScaledDotProductAttentionGrouped(q, keys, values, 0, mask).Data()
			for i, w := range want {
				g := got[i]
				if math.IsNaN(float64(w)) != math.IsNaN(float64(g)) || math.Abs(float64(g-w)) > 1e-5 {
					t.Fatalf("element %d (row %d of its head) is %v, want %v", i, i/d%l, g, w)
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
