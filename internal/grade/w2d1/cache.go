// Package w2d1 holds the checks of Week 2 Day 1 (the KV cache, the Week 2
// model and generation with the cache), shared by week2/day1 and
// solutions/week2/day1.
package w2d1

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/stub"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

const day = "w2d1"

// Cache checks Task 1's contract: after every UpdateAndFetch the cache hands
// back exactly the concatenation, along the position axis, of everything
// appended so far, Offset counts the positions, the inputs are left as they
// were, and keys or values that do not fit the cache are refused.
func Cache(t *testing.T, newCache func() llm.KVCache) {
	const task = "W2D1 Task 1 FullCache"
	cases := []struct {
		name    string
		b, h, d int
		appends []int // positions per call
	}{
		{"prefill_then_decode", 1, 2, 8, []int{5, 1, 1, 1}},
		{"batch_and_chunks", 2, 3, 4, []int{3, 4, 1, 2, 1}},
		{"single_positions_from_empty", 1, 1, 16, []int{1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"one_head_three_rows", 3, 1, 2, []int{2, 2, 2}},
	}
	for i, tc := range cases {
		stubbed := false
		t.Run(tc.name, func(t *testing.T) {
			what := fmt.Sprintf("%s, case %s (B=%d, H=%d, D=%d, appends of %v positions)", task, tc.name, tc.b, tc.h, tc.d, tc.appends)
			stubbed = grade.Run(t, what, func() {
				rng := rand.New(rand.NewPCG(uint64(i), 2101))
				c := newCache()
				if got := c.Offset(); got != 0 {
					t.Fatalf("%s: a new cache has Offset %d, want 0", what, got)
				}
				var allK, allV, inputs, copies []*tensor.Tensor
				for step, l := range tc.appends {
					k := tensor.RandN(rng, tc.b, tc.h, l, tc.d)
					v := tensor.RandN(rng, tc.b, tc.h, l, tc.d)
					inputs = append(inputs, k, v)
					copies = append(copies, k.Clone(), v.Clone())
					allK, allV = append(allK, k.Clone()), append(allV, v.Clone())
					keys, values := c.UpdateAndFetch(k, v)
					at := fmt.Sprintf("%s, after append %d (%d positions)", what, step+1, l)
					wantK, wantV := tensor.Concat(2, allK...), tensor.Concat(2, allV...)
					grade.AllClose(t, at+": keys", keys, wantK, grade.Tol{})
					grade.AllClose(t, at+": values", values, wantV, grade.Tol{})
					if got, want := c.Offset(), wantK.Dim(2); got != want {
						t.Fatalf("%s: Offset() is %d, want %d", at, got, want)
					}
				}
				for j, in := range inputs {
					if grade.Compare(in, copies[j], grade.Tol{}) != "" {
						t.Fatalf("%s: UpdateAndFetch wrote into the keys or values it was given (append %d); it must copy them, not change them", what, j/2+1)
					}
				}
			})
		})
		if stubbed {
			return
		}
	}
	t.Run("refuses_mismatched_shapes", func(t *testing.T) {
		grade.Run(t, task+", case refuses_mismatched_shapes", func() {
			rng := rand.New(rand.NewPCG(7, 2101))
			bad := []struct {
				what string
				k, v []int
			}{
				{"keys with a different head dimension D", []int{1, 2, 1, 4}, []int{1, 2, 1, 4}},
				{"keys with a different number of heads H", []int{1, 3, 1, 8}, []int{1, 3, 1, 8}},
				{"keys and values of different shapes", []int{1, 2, 1, 8}, []int{1, 2, 2, 8}},
			}
			for _, b := range bad {
				c := newCache()
				c.UpdateAndFetch(tensor.RandN(rng, 1, 2, 3, 8), tensor.RandN(rng, 1, 2, 3, 8))
				r := panics(func() { c.UpdateAndFetch(tensor.RandN(rng, b.k...), tensor.RandN(rng, b.v...)) })
				if stub.Is(r) {
					panic(r)
				}
				if r == nil {
					t.Errorf("%s: a cache of 1 x 2 x 3 x 8 accepted %s (keys %v, values %v); it must panic with a message naming the shapes, not hand back mixed-up positions",
						task, b.what, b.k, b.v)
				}
			}
		})
	})
}

// panics runs fn and returns what it panicked with, or nil.
func panics(fn func()) (r any) {
	defer func() { r = recover() }()
	fn()
	return nil
}

// Growth bounds, see AmortisedGrowth.
const (
	growthAppends = 4096
	growthHeads   = 2  // Qwen2-0.5B's key/value heads
	growthDim     = 32 // half its head dimension, to keep the check quick
	growthFactor  = 16 // allowed allocation, in multiples of the final cache
	growthEvery   = 64 // appends between two readings of the allocation counter
)

// AmortisedGrowth checks Task 1's cost: appending 4096 single positions must
// allocate O(n) bytes in total. A cache that grows by doubling allocates
// about twice its final size over the whole run; one that reallocates and
// copies everything on every append (or hands back a fresh copy each time)
// allocates about n/2 = 2048 times its final size. The bound, 16 times the
// final size, leaves room for a cache that reserves a generous budget up
// front, and the check stops as soon as it is exceeded. Every handed-back
// tensor is checked for its shape, and the last one for its contents.
func AmortisedGrowth(t *testing.T, newCache func() llm.KVCache) {
	const task = "W2D1 Task 1 FullCache, amortised growth"
	grade.Run(t, task, func() {
		// The inputs are made before counting, so only the cache's own
		// allocations are measured.
		ks := make([]*tensor.Tensor, growthAppends)
		vs := make([]*tensor.Tensor, growthAppends)
		for i := range ks {
			ks[i], vs[i] = positionRows(i, 1), positionRows(i, -1)
		}
		c := newCache()
		finalBytes := uint64(2 * growthHeads * growthAppends * growthDim * 4)
		bound := growthFactor * finalBytes
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		start := ms.TotalAlloc
		var keys, values *tensor.Tensor
		for i := range growthAppends {
			keys, values = c.UpdateAndFetch(ks[i], vs[i])
			if keys.NDim() != 4 || keys.Dim(0) != 1 || keys.Dim(1) != growthHeads || keys.Dim(2) != i+1 || keys.Dim(3) != growthDim {
				t.Fatalf("%s: after %d appends of 1 x %d x 1 x %d the keys have shape %v, want [1 %d %d %d]",
					task, i+1, growthHeads, growthDim, keys.Shape(), growthHeads, i+1, growthDim)
			}
			if (i+1)%growthEvery != 0 && i+1 != growthAppends {
				continue
			}
			runtime.ReadMemStats(&ms)
			if used := ms.TotalAlloc - start; used > bound {
				t.Fatalf("%s: after %d single-position appends the cache has allocated %.1f MB, more than %d times the %.2f MB that all %d positions take (keys and values, float32) in the end.\n"+
					"    Appending n positions must allocate O(n) bytes in total. Reallocating the whole cache on every append, or handing back a fresh copy every time, allocates about n²/2 positions: here about %d times the final size.\n"+
					"    Grow the storage by doubling (or reserve it up front), and hand back the same buffer from call to call.",
					task, i+1, mb(used), growthFactor, mb(finalBytes), growthAppends, growthAppends/2)
			}
		}
		runtime.ReadMemStats(&ms)
		t.Logf("%s: %d appends allocated %.2f MB for a final cache of %.2f MB (%.1f times; the bound is %d)",
			task, growthAppends, mb(ms.TotalAlloc-start), mb(finalBytes), float64(ms.TotalAlloc-start)/float64(finalBytes), growthFactor)
		// Position p of head h holds p+1 (keys) or -(p+1) (values) in
		// element h, so a lost, repeated or misplaced position shows.
		for _, tv := range []struct {
			name string
			got  *tensor.Tensor
			sign float32
		}{{"keys", keys, 1}, {"values", values, -1}} {
			data := tv.got.Data()
			for h := range growthHeads {
				for p := range growthAppends {
					row := data[(h*growthAppends+p)*growthDim:][:growthDim]
					if want := tv.sign * float32(p+1); row[h] != want {
						t.Fatalf("%s: after %d appends, %s of head %d at position %d start %v; want element %d to be %v (the values appended at that position)",
							task, growthAppends, tv.name, h, p, row[:4], h, want)
					}
				}
			}
		}
	})
}

// positionRows is the 1 x H x 1 x D input of position p: element h of
// head h holds sign·(p+1), the rest a small constant.
func positionRows(p int, sign float32) *tensor.Tensor {
	data := make([]float32, growthHeads*growthDim)
	for i := range data {
		data[i] = 0.5
	}
	for h := range growthHeads {
		data[h*growthDim+h] = sign * float32(p+1)
	}
	return tensor.New(data, 1, growthHeads, 1, growthDim)
}

func mb(b uint64) float64 { return float64(b) / 1e6 }
