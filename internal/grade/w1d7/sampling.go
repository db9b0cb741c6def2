// Package w1d7 holds the checks of Week 1 Day 7 (sampling, and the first GPU
// kernel), shared by week1/day7 and solutions/week1/day7.
package w1d7

import (
	"math"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Sampler is what NewSampler returns.
type Sampler interface {
	Candidates(logprobs *tensor.Tensor) (ids []int, probs []float32)
	Sample(logprobs *tensor.Tensor) int
}

// NewSampler is the signature of the day's constructor.
type NewSampler[S Sampler] func(temperature, topP float64, topK int, seed uint64) S

func params(t *testing.T, c *fixture.Case) (temp, topP float64, topK int) {
	return grade.MustFloat(t, c, "temperature"), grade.MustFloat(t, c, "top_p"), grade.MustInt(t, c, "top_k")
}

// Candidates checks Task 1: after temperature, top-k and top-p, exactly the
// tokens Hugging Face's logits processors keep remain, with the same
// renormalised probabilities.
func Candidates[S Sampler](t *testing.T, newSampler NewSampler[S]) {
	const task = "W1D7 Task 1 Sampler.Candidates"
	grade.Cases(t, task, "w1d7", "candidates", func(t *testing.T, c *fixture.Case) {
		temp, topP, topK := params(t, c)
		a, err := c.Array("ids")
		if err != nil {
			t.Fatal(err)
		}
		wantIDs, _ := a.Ints()
		lp := grade.MustTensor(t, c, "logprobs")
		var ids []int
		var probs []float32
		grade.Unchanged(t, task+", case "+c.Name, func() any {
			ids, probs = newSampler(temp, topP, topK, 1).Candidates(lp)
			return nil
		}, grade.In("logprobs", lp))
		if !slices.Equal(ids, wantIDs) {
			t.Fatalf("%s, case %s (T=%g, top-k %d, top-p %g): candidate ids %v, want %v", task, c.Name, temp, topK, topP, ids, wantIDs)
		}
		grade.AllClose(t, task+", case "+c.Name+" (probabilities)", tensor.New(probs, len(probs)), grade.MustTensor(t, c, "probs"), grade.Elementwise)
	})
}

// Greedy checks that temperature 0 is argmax, whatever the seed.
func Greedy[S Sampler](t *testing.T, newSampler NewSampler[S]) {
	const task = "W1D7 Task 1 Sampler (temperature 0)"
	grade.Cases(t, task, "w1d7", "candidates", func(t *testing.T, c *fixture.Case) {
		lp := grade.MustTensor(t, c, "logprobs")
		want := tensor.ArgMax(lp, -1)[0]
		for seed := uint64(0); seed < 20; seed++ {
			got := grade.Unchanged(t, task+", case "+c.Name, func() int { return newSampler(0, 1, 0, seed).Sample(lp) }, grade.In("logprobs", lp))
			if got != want {
				t.Fatalf("%s: seed %d sampled %d, want the argmax %d", task, seed, got, want)
			}
		}
	})
}

// Draws is the sample size of the frequency check.
const Draws = 20000

// Frequencies checks Task 1 (sampling): for a fixed seed, Draws samples only ever give
// candidates, and each candidate's frequency f is within 5 standard errors of
// its probability p: |f - p| <= 5·sqrt(p(1-p)/Draws) + 1/Draws. A correct
// sampler fails this with probability below 1e-5 per token; one that ignores
// temperature, or samples uniformly, fails it by far. Equal seeds must give
// equal sequences.
func Frequencies[S Sampler](t *testing.T, newSampler NewSampler[S]) {
	const task = "W1D7 Task 1 Sampler.Sample"
	grade.Cases(t, task, "w1d7", "candidates", func(t *testing.T, c *fixture.Case) {
		temp, topP, topK := params(t, c)
		lp := grade.MustTensor(t, c, "logprobs")
		a, _ := c.Array("ids")
		ids, _ := a.Ints()
		probs := grade.MustTensor(t, c, "probs").Data()
		s := newSampler(temp, topP, topK, 42)
		counts := map[int]int{}
		seq := make([]int, Draws)
		before := grade.TakeSnapshot(grade.In("logprobs", lp))
		for i := range seq {
			seq[i] = s.Sample(lp)
			counts[seq[i]]++
		}
		before.Verify(t, task+", case "+c.Name)
		for id, n := range counts {
			if !slices.Contains(ids, id) {
				t.Fatalf("%s, case %s: sampled token %d (%d times), which is not a candidate %v", task, c.Name, id, n, ids)
			}
		}
		for i, id := range ids {
			p := float64(probs[i])
			f := float64(counts[id]) / Draws
			bound := 5*math.Sqrt(p*(1-p)/Draws) + 1.0/Draws
			if math.Abs(f-p) > bound {
				t.Errorf("%s, case %s: token %d drawn with frequency %.4f, probability %.4f (bound ±%.4f)", task, c.Name, id, f, p, bound)
			}
		}
		again := newSampler(temp, topP, topK, 42)
		for i := 0; i < 200; i++ {
			if got := again.Sample(lp); got != seq[i] {
				t.Fatalf("%s, case %s: the same seed gave a different token at draw %d (%d, then %d)", task, c.Name, i, seq[i], got)
			}
		}
	})
}
