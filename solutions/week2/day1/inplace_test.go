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
// causal mask.
func TestAttendInPlace(t *testing.T) {
	for _, tc := range []struct {
		name          string
		b, hq, h, d   int
		appendLengths []int
	}{
		{"one head per group", 1, 2, 2, 8, []int{3, 1, 1, 5}},
		{"grouped, batch of two", 2, 6, 2, 4, []int{1, 4, 1, 1, 7, 2}},
		{"a single key/value head", 1, 7, 1, 16, []int{5, 1, 1}},
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
				got := attendInPlace(q, inPlace, mask)
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
