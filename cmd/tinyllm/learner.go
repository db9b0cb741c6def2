//go:build learner

package main

import (
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	day5 "github.com/tinyllm-go/tinyllm/week1/day5"
	day6 "github.com/tinyllm-go/tinyllm/week1/day6"
	day7 "github.com/tinyllm-go/tinyllm/week1/day7"
)

// This file links the learner's own Week 1 days into the program. It is
// compiled only with -tags learner: `tinyllm … --impl learner` builds that
// binary on demand (learner_exec.go), so the ordinary tinyllm never depends
// on the learner tree compiling.
func init() {
	impls["learner"] = impl{
		load: func(ck *checkpoint.Checkpoint) (model, error) { return day5.NewQwen2ModelWeek1(ck) },
		sampler: func(t, p float64, k int, seed uint64) sampler {
			if t == 0 {
				return day6.Greedy{}
			}
			return day7.NewSampler(t, p, k, seed)
		},
		generate: func(m model, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s sampler, n int, eos []int, on func(string)) (string, error) {
			return day6.Generate(m, tok, msgs, s, day6.Options{MaxTokens: n, EOS: eos, OnText: on})
		},
	}
}
