package day7

// The checks live in internal/grade/w3d7, shared with the other tree. The
// models are this tree's Week 2 model (W2D1).

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w3d7"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	w2d1 "github.com/tinyllm-go/tinyllm/solutions/week2/day1"
)

func stats(s Stats) w3d7.Stats {
	return w3d7.Stats{Steps: s.Steps, Proposed: s.Proposed, Accepted: s.Accepted, Generated: s.Generated}
}

func TestW3D7Task1SpecCache(t *testing.T) {
	w3d7.Cache(t, func() llm.RewindCache { return NewSpecCache() })
}

func TestW3D7Task2AcceptGreedy(t *testing.T) { w3d7.Accept(t, AcceptGreedy) }

func TestW3D7Task3SpeculativeGenerate(t *testing.T) {
	w3d7.Speculate(t, w2d1.NewQwen2ModelWeek2, func(target, draft llm.CachedModel, prompt []int, k, n int, eos []int, on func(int)) ([]int, w3d7.Stats, error) {
		ids, st, err := SpeculativeGenerate(target, draft, prompt, SpecOptions{K: k, MaxTokens: n, EOS: eos, OnToken: on})
		return ids, stats(st), err
	})
}

func TestW3D7Task4Generate(t *testing.T) {
	w3d7.Generate(t, w2d1.NewQwen2ModelWeek2, func(target, draft llm.CachedModel, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, k, n int, eos []int, on func(string)) (string, w3d7.Stats, error) {
		reply, st, err := Generate(target, draft, tok, msgs, Options{K: k, MaxTokens: n, EOS: eos, OnText: on})
		return reply, stats(st), err
	})
}
