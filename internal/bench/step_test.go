package bench

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// chain is a StepModel whose choice after token x is x + 1, and which
// records its calls; ahead makes it an llm.AheadDecoder too.
type chain struct {
	calls []string
	fed   []int // every token a step was fed, in order
}

func (c *chain) Reset()                          { c.calls = append(c.calls, "Reset") }
func (c *chain) Logits() (*tensor.Tensor, error) { return nil, fmt.Errorf("not used") }
func (c *chain) MaxContext() int                 { return 1 << 20 }

func (c *chain) Prefill(ids []int) (int, error) {
	c.calls = append(c.calls, "Prefill")
	return ids[len(ids)-1] + 1, nil
}

func (c *chain) Decode(token int) (int, error) {
	c.calls = append(c.calls, "Decode")
	c.fed = append(c.fed, token)
	return token + 1, nil
}

type aheadChain struct{ chain }

func (c *aheadChain) DecodeAhead(token, n int) ([]int, error) {
	c.calls = append(c.calls, fmt.Sprintf("DecodeAhead%d", n))
	out := make([]int, n)
	for i := range out {
		c.fed = append(c.fed, token)
		token++
		out[i] = token
	}
	return out, nil
}

// RunStepModel takes GenLen-1 decode steps a run, each fed the last
// choice, one Decode at a time, or llm.AheadWindow at a time from a model
// that can queue them.
func TestRunStepModelDecodesAhead(t *testing.T) {
	o := Options{PromptLen: 4, GenLen: 2*llm.AheadWindow + 5, Repeats: 1, VocabSize: 100, Seed: 3}
	plain, ahead := &chain{}, &aheadChain{}
	for _, m := range []llm.StepModel{plain, ahead} {
		if _, err := RunStepModel(m, o); err != nil {
			t.Fatal(err)
		}
	}
	// No warm-up: the calls are those of the one timed run.
	if len(plain.fed) != o.GenLen-1 || !slices.Equal(plain.fed, ahead.fed) {
		t.Fatalf("fed %v one step at a time, %v ahead; want %d steps", plain.fed, ahead.fed, o.GenLen-1)
	}
	for i := 1; i < len(plain.fed); i++ {
		if plain.fed[i] != plain.fed[i-1]+1 {
			t.Fatalf("step %d was fed %d, not the choice before it (%d)", i, plain.fed[i], plain.fed[i-1]+1)
		}
	}
	want := []string{"Reset", "Prefill", fmt.Sprintf("DecodeAhead%d", llm.AheadWindow), fmt.Sprintf("DecodeAhead%d", llm.AheadWindow), "DecodeAhead4"}
	if !slices.Equal(ahead.calls, want) {
		t.Errorf("calls %v, want %v", ahead.calls, want)
	}
}

// Options.Ahead sets the window: 1 takes one Decode at a time even from a
// model that can queue steps, 5 queues five at a time.
func TestRunStepModelAheadWindow(t *testing.T) {
	for _, tc := range []struct {
		ahead int
		want  []string
	}{
		{1, []string{"Reset", "Prefill", "Decode", "Decode", "Decode", "Decode", "Decode", "Decode"}},
		{5, []string{"Reset", "Prefill", "DecodeAhead5", "Decode"}},
	} {
		m := &aheadChain{}
		o := Options{PromptLen: 4, GenLen: 7, Repeats: 1, VocabSize: 100, Seed: 3, Ahead: tc.ahead}
		if _, err := RunStepModel(m, o); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(m.calls, tc.want) {
			t.Errorf("Ahead %d: calls %v, want %v", tc.ahead, m.calls, tc.want)
		}
		if len(m.fed) != o.GenLen-1 {
			t.Errorf("Ahead %d: %d steps, want %d", tc.ahead, len(m.fed), o.GenLen-1)
		}
	}
}
