// Package w1d6 holds the checks of Week 1 Day 6 (generation), shared by
// week1/day6 and solutions/week1/day6.
package w1d6

import (
	"fmt"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Model is a Week 1 model.
type Model = llm.Model

// LogProbs checks Task 1's LastLogProbs and Greedy: logits shifted by a
// constant (0, 37, 1000: exp overflows at the last) must give back Hugging
// Face's log-probabilities exactly as log_softmax would, and Greedy must pick
// their argmax.
func LogProbs[G interface{ Sample(*tensor.Tensor) int }](t *testing.T, lastLogProbs func(logits *tensor.Tensor) *tensor.Tensor, greedy G) {
	const task = "W1D6 Task 1 LastLogProbs and Greedy"
	grade.Cases(t, task, "w1d7", "candidates", func(t *testing.T, c *fixture.Case) {
		want := grade.MustTensor(t, c, "logprobs")
		v := want.Dim(0)
		for _, shift := range []float32{0, 37, 1000} {
			// Two positions; only the last one counts.
			what := fmt.Sprintf("%s, case %s, shift %g", task, c.Name, shift)
			logits := tensor.Reshape(tensor.Concat(0, tensor.Zeros(v), tensor.AddScalar(want, shift)), 1, 2, v)
			got := grade.Unchanged(t, what, func() *tensor.Tensor { return lastLogProbs(logits) }, grade.In("logits", logits))
			// atol 2e-5, not 1e-6: adding 1000 in float32 already rounds each
			// logit by up to 3.1e-5 / 2, before the learner's code sees it.
			grade.AllClose(t, what, got, want, grade.Tol{RTol: 1e-5, ATol: 2e-5})
		}
		got := grade.Unchanged(t, task+" (Greedy), case "+c.Name, func() int { return greedy.Sample(want) }, grade.In("logprobs", want))
		if wantID := tensor.ArgMax(want, -1)[0]; got != wantID {
			t.Fatalf("%s: Greedy chose %d, the argmax is %d", task, got, wantID)
		}
	})
}

// GenerateTokens checks Task 2 against Hugging Face generate (greedy) on the
// two W1D5 random checkpoints: the same ids, and a stop right after an EOS id.
// generate is the day's GenerateTokens with the Greedy sampler filled in.
func GenerateTokens[M Model](t *testing.T, newModel func(ck *checkpoint.Checkpoint) (M, error),
	generate func(model M, prompt []int, maxTokens int, eos []int, onToken func(id int)) []int) {
	const task = "W1D6 Task 2 GenerateTokens"
	root, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	grade.Cases(t, task, "w1d6", "generate", func(t *testing.T, c *fixture.Case) {
		ck, err := checkpoint.Open(filepath.Join(root, filepath.FromSlash(c.Params["checkpoint"].(string))))
		if err != nil {
			t.Fatal(err)
		}
		defer ck.Close()
		m, err := newModel(ck)
		if err != nil {
			t.Fatal(err)
		}
		prompt := grade.MustInts(t, c, "prompt")
		want := grade.MustInts(t, c, "ids")
		var eos []int
		if id := grade.MustInt(t, c, "eos"); id >= 0 {
			eos = []int{id}
		}
		var streamed []int
		got := generate(m, prompt, grade.MustInt(t, c, "max_tokens"), eos, func(id int) { streamed = append(streamed, id) })
		if !slices.Equal(got, want) {
			t.Fatalf("%s, case %s: generated %v, Hugging Face generated %v", task, c.Name, got, want)
		}
		if !slices.Equal(streamed, want) {
			t.Fatalf("%s, case %s: onToken saw %v, want every id as it is generated: %v", task, c.Name, streamed, want)
		}
	})
}
