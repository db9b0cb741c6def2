package day6

// The checks live in internal/grade/w1d6, shared with the other tree.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w1d6"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	"github.com/tinyllm-go/tinyllm/week1/day5"
)

func TestW1D6Task1LogProbsAndGreedy(t *testing.T) { w1d6.LogProbs(t, LastLogProbs, Greedy{}) }

func TestW1D6Task2GenerateTokens(t *testing.T) {
	w1d6.GenerateTokens(t, day5.NewQwen2ModelWeek1, func(m *day5.Qwen2ModelWeek1, prompt []int, n int, eos []int, on func(int)) []int {
		return GenerateTokens(m, prompt, Greedy{}, n, eos, on)
	})
}

func TestW1D6Task3Generate(t *testing.T) {
	w1d6.Generate(t, func(m w1d6.Model, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, n int, eos []int, on func(string)) (string, error) {
		return Generate(m, tok, msgs, Greedy{}, Options{MaxTokens: n, EOS: eos, OnText: on})
	})
}

func TestW1D6ShippedModel(t *testing.T) {
	w1d6.ShippedModel(t, day5.NewQwen2ModelWeek1,
		func(m *day5.Qwen2ModelWeek1, prompt []int, n int, eos []int, on func(int)) []int {
			return GenerateTokens(m, prompt, Greedy{}, n, eos, on)
		},
		func(m w1d6.Model, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, n int, eos []int, on func(string)) (string, error) {
			return Generate(m, tok, msgs, Greedy{}, Options{MaxTokens: n, EOS: eos, OnText: on})
		})
}
