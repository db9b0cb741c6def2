// Package w3d7 holds the checks of Week 3 Day 7 (speculative decoding),
// written once and run against both trees: a cache that rewinds, the greedy
// acceptance rule, and generation with a draft model that must give,
// token for token, what greedy decoding with the target alone gives.
package w3d7

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// op is one call on a cache: append n positions (n > 0) or rewind -n.
type op int

// Cache checks Task 1: after every append the cache returns exactly the
// positions a shadow copy holds (everything appended, minus what was
// rewound), Offset follows appends and rewinds, and a rewind of a negative
// count or of more than is cached is an error that changes nothing.
func Cache(t *testing.T, newCache func() llm.RewindCache) {
	const task = "W3D7 Task 1 SpecCache"
	grade.PointToChapter(t, task)
	cases := []struct {
		name    string
		b, h, d int
		ops     []op
	}{
		{"prefill_propose_reject", 1, 2, 8, []op{6, 4, -3, 1, 4, -4, 2}},
		{"rewind_everything_then_refill", 2, 3, 4, []op{5, -5, 3, 1, -1, 2}},
		{"rewind_zero_and_one_at_a_time", 1, 1, 16, []op{1, -0, 1, 1, -1, 1, 1, 1, -2, 3}},
		{"grow_after_rewinds", 1, 2, 2, []op{3, 40, -30, 50, -60, 100, -1}},
	}
	for i, tc := range cases {
		stubbed := false
		t.Run(tc.name, func(t *testing.T) {
			what := fmt.Sprintf("%s, case %s (B=%d, H=%d, D=%d, ops %v: n>0 appends n positions, n<=0 rewinds -n)", task, tc.name, tc.b, tc.h, tc.d, tc.ops)
			stubbed = grade.Run(t, what, func() {
				runOps(t, what, newCache(), tc.b, tc.h, tc.d, tc.ops, rand.New(rand.NewPCG(uint64(i), 3107)))
			})
		})
		if stubbed {
			return
		}
	}
	t.Run("random_ops", func(t *testing.T) {
		what := task + ", case random_ops (300 appends and rewinds of up to 7 positions, seed 3107)"
		grade.Run(t, what, func() {
			rng := rand.New(rand.NewPCG(99, 3107))
			var ops []op
			n := 0
			for range 300 {
				if r := rng.IntN(n + 1); n > 0 && rng.IntN(2) == 0 {
					r = min(r, 7)
					ops = append(ops, op(-r))
					n -= r
				} else {
					a := 1 + rng.IntN(7)
					ops = append(ops, op(a))
					n += a
				}
			}
			runOps(t, what, newCache(), 1, 2, 4, ops, rng)
		})
	})
}

// runOps applies ops to c and to a shadow copy (per batch row and head, the
// list of cached position vectors) and compares them after every step.
func runOps(t *testing.T, what string, c llm.RewindCache, b, h, d int, ops []op, rng *rand.Rand) {
	t.Helper()
	if got := c.Offset(); got != 0 {
		t.Fatalf("%s: a new cache has Offset %d, want 0", what, got)
	}
	shadowK := make([][][]float32, b*h)
	shadowV := make([][][]float32, b*h)
	for step, o := range ops {
		if o <= 0 {
			n := int(-o)
			before := c.Offset()
			if err := c.Rewind(n); err != nil {
				t.Fatalf("%s: step %d: Rewind(%d) of %d cached positions: %v", what, step, n, before, err)
			}
			if got := c.Offset(); got != before-n {
				t.Fatalf("%s: step %d: Offset is %d after Rewind(%d) of %d positions, want %d", what, step, got, n, before, before-n)
			}
			for g := range shadowK {
				shadowK[g] = shadowK[g][:before-n]
				shadowV[g] = shadowV[g][:before-n]
			}
			refusals(t, fmt.Sprintf("%s: step %d", what, step), c)
			continue
		}
		l := int(o)
		k := tensor.RandN(rng, b, h, l, d)
		v := tensor.RandN(rng, b, h, l, d)
		kIn, vIn := slices.Clone(k.Data()), slices.Clone(v.Data())
		for g := range shadowK {
			for p := range l {
				at := (g*l + p) * d
				shadowK[g] = append(shadowK[g], kIn[at:at+d])
				shadowV[g] = append(shadowV[g], vIn[at:at+d])
			}
		}
		keys, values := c.UpdateAndFetch(k, v)
		s := len(shadowK[0])
		if got := c.Offset(); got != s {
			t.Fatalf("%s: step %d: Offset is %d after appending %d positions, want %d", what, step, got, l, s)
		}
		if !slices.Equal(k.Data(), kIn) || !slices.Equal(v.Data(), vIn) {
			t.Fatalf("%s: step %d: UpdateAndFetch changed its inputs", what, step)
		}
		for _, x := range []struct {
			name   string
			got    *tensor.Tensor
			shadow [][][]float32
		}{{"keys", keys, shadowK}, {"values", values, shadowV}} {
			if want := []int{b, h, s, d}; !slices.Equal(x.got.Shape(), want) {
				t.Fatalf("%s: step %d: UpdateAndFetch returned %s of shape %v, want %v (B x H x S x D)", what, step, x.name, x.got.Shape(), want)
			}
			data := x.got.Data()
			for g := range b * h {
				for p := range s {
					at := (g*s + p) * d
					if !slices.Equal(data[at:at+d], x.shadow[g][p]) {
						t.Fatalf("%s: step %d: %s[%d, %d, %d, :] = %v, want %v (what was appended at that position and not rewound)",
							what, step, x.name, g/h, g%h, p, data[at:at+d], x.shadow[g][p])
					}
				}
			}
		}
	}
}

// refusals checks that rewinding a negative count or more than is cached
// is an error and leaves Offset alone.
func refusals(t *testing.T, what string, c llm.RewindCache) {
	t.Helper()
	n := c.Offset()
	for _, bad := range []int{-1, n + 1} {
		if err := c.Rewind(bad); err == nil {
			t.Fatalf("%s: Rewind(%d) with %d cached positions returned no error", what, bad, n)
		}
		if got := c.Offset(); got != n {
			t.Fatalf("%s: the refused Rewind(%d) changed Offset from %d to %d", what, bad, n, got)
		}
	}
}
