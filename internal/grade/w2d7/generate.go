package w2d7

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Options of the day's GenerateTokens, as the check passes them.
type GenerateOptions struct {
	MaxTokens int
	EOS       []int
	Sampler   llm.Sampler
	OnToken   func(id int)
}

// GenerateTokensFunc is the day's GenerateTokens with its options mapped.
type GenerateTokensFunc func(m llm.StepModel, prompt []int, opts GenerateOptions) ([]int, error)

// scripted is a StepModel that needs no device: the greedy choice after
// token x is choose(x), its logits put all weight on pick(x), and it records
// every call.
type scripted struct {
	vocab     int
	calls     []string
	failAfter int // Decode calls before one fails (-1: never)
	decodes   int
	last      int
	choose    func(x int) int
	pick      func(x int) int
}

func (s *scripted) Reset() { s.calls = append(s.calls, "Reset") }

func (s *scripted) Prefill(ids []int) (int, error) {
	s.calls = append(s.calls, fmt.Sprintf("Prefill%v", ids))
	s.last = ids[len(ids)-1]
	return s.choose(s.last), nil
}

func (s *scripted) Decode(token int) (int, error) {
	s.calls = append(s.calls, fmt.Sprintf("Decode(%d)", token))
	if s.decodes == s.failAfter {
		return 0, errors.New("device lost")
	}
	s.decodes++
	s.last = token
	return s.choose(token), nil
}

func (s *scripted) Logits() (*tensor.Tensor, error) {
	s.calls = append(s.calls, "Logits")
	row := make([]float32, s.vocab)
	row[s.pick(s.last)] = 10
	return tensor.New(row, 1, 1, s.vocab), nil
}

func (s *scripted) MaxContext() int { return 1000 }

// argmaxSampler picks the largest log-prob.
type argmaxSampler struct{}

func (argmaxSampler) Sample(lp *tensor.Tensor) int {
	row := lp.Data()
	return argmax(row[len(row)-lp.Dim(-1):])
}

// GenerateScripted checks GenerateTokens on a scripted model, on any
// machine: the calls it makes in order (one Prefill, one Decode per token
// after the first, fed the token just chosen; no logits copied back when
// greedy), where it stops (EOS included, MaxTokens), what a sampler
// changes, and that a model's error comes back with the tokens before it.
func GenerateScripted(t *testing.T, task string, gen GenerateTokensFunc) {
	grade.PointToChapter(t, task)
	next := func(x int) int { return (x + 1) % 50 }
	prompt := []int{7, 8, 3}
	cases := []struct {
		name      string
		opts      GenerateOptions
		failAfter int
		want      []int
		calls     []string
		err       bool
	}{
		{"greedy to EOS", GenerateOptions{MaxTokens: 10, EOS: []int{6}}, -1, []int{4, 5, 6},
			[]string{"Reset", "Prefill[7 8 3]", "Decode(4)", "Decode(5)"}, false},
		{"greedy to MaxTokens", GenerateOptions{MaxTokens: 2, EOS: []int{40}}, -1, []int{4, 5},
			[]string{"Reset", "Prefill[7 8 3]", "Decode(4)"}, false},
		{"one token", GenerateOptions{MaxTokens: 1}, -1, []int{4},
			[]string{"Reset", "Prefill[7 8 3]"}, false},
		// The logits favour x+10 over the device's x+1: the sampler's
		// choice is what is fed back.
		{"with a sampler", GenerateOptions{MaxTokens: 3, Sampler: argmaxSampler{}}, -1, []int{13, 23, 33},
			[]string{"Reset", "Prefill[7 8 3]", "Logits", "Decode(13)", "Logits", "Decode(23)", "Logits"}, false},
		{"a failing step", GenerateOptions{MaxTokens: 10}, 1, []int{4, 5},
			[]string{"Reset", "Prefill[7 8 3]", "Decode(4)", "Decode(5)"}, true},
	}
	for _, c := range cases {
		m := &scripted{vocab: 50, failAfter: c.failAfter, choose: next, pick: func(x int) int { return (x + 10) % 50 }}
		var seen []int
		c.opts.OnToken = func(id int) { seen = append(seen, id) }
		var got []int
		var err error
		if grade.Run(t, task, func() { got, err = gen(m, prompt, c.opts) }) {
			return
		}
		what := fmt.Sprintf("%s, %s", task, c.name)
		if c.err != (err != nil) {
			t.Errorf("%s: error %v, want an error: %v", what, err, c.err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: generated %v, want %v", what, got, c.want)
		}
		if !slices.Equal(seen, c.want) {
			t.Errorf("%s: OnToken saw %v, want %v", what, seen, c.want)
		}
		if !slices.Equal(m.calls, c.calls) {
			t.Errorf("%s: the model saw the calls\n  %s\nwant\n  %s", what, strings.Join(m.calls, ", "), strings.Join(c.calls, ", "))
		}
	}
	m := &scripted{vocab: 50, failAfter: -1, choose: next, pick: next}
	var err error
	if grade.Run(t, task, func() { _, err = gen(m, prompt, GenerateOptions{MaxTokens: 0}) }) {
		return
	}
	if err == nil {
		t.Errorf("%s: MaxTokens 0 gave no error", task)
	}
}
