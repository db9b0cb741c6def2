//go:build learner

package main

import (
	"net/http"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/serving"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	day5 "github.com/tinyllm-go/tinyllm/week1/day5"
	day6 "github.com/tinyllm-go/tinyllm/week1/day6"
	day7 "github.com/tinyllm-go/tinyllm/week1/day7"
	w2d1 "github.com/tinyllm-go/tinyllm/week2/day1"
	w2d3 "github.com/tinyllm-go/tinyllm/week2/day3"
	w2d7 "github.com/tinyllm-go/tinyllm/week2/day7"
	w3d5 "github.com/tinyllm-go/tinyllm/week3/day5"
	w3d7 "github.com/tinyllm-go/tinyllm/week3/day7"

	"github.com/tinyllm-go/tinyllm/kernels"
)

// This file links the learner's own days into the program. It is compiled
// only with -tags learner: `tinyllm … --impl learner` builds that binary on
// demand (learner_exec.go), so the ordinary tinyllm never depends on the
// learner tree compiling.
func init() {
	impls["learner"] = impl{
		handler: func(cfg serving.HandlerConfig) http.Handler { return w3d5.NewHandler(cfg) },
		// --draft: the learner's W3D7 over their Week 2 models.
		speculate: func(target, draft llm.CachedModel, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, k, n int, eos []int, on func(string)) (string, specStats, error) {
			reply, st, err := w3d7.Generate(target, draft, tok, msgs, w3d7.Options{K: k, MaxTokens: n, EOS: eos, OnText: on})
			return reply, specStats(st), err
		},
		sampler: func(t, p float64, k int, seed uint64) sampler {
			if t == 0 {
				return day6.Greedy{}
			}
			return day7.NewSampler(t, p, k, seed)
		},
		weeks: map[int]func(ck *checkpoint.Checkpoint) (loadedModel, error){
			1: func(ck *checkpoint.Checkpoint) (loadedModel, error) {
				m, err := day5.NewQwen2ModelWeek1(ck)
				return week1Model(m, err, func(m *day5.Qwen2ModelWeek1, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s sampler, n int, eos []int, on func(string)) (string, error) {
					return day6.Generate(m, tok, msgs, s, day6.Options{MaxTokens: n, EOS: eos, OnText: on})
				})
			},
			// As for the reference: Day 1's model on float checkpoints,
			// Day 3's on MLX-quantized ones.
			2: func(ck *checkpoint.Checkpoint) (loadedModel, error) {
				if ck.Config.Quantization != nil {
					m, err := w2d3.NewQwen2ModelWeek2(ck)
					return week2Model(m, err, ck.Config, learnerWeek2Generate, w2d1.Prefill)
				}
				m, err := w2d1.NewQwen2ModelWeek2(ck)
				return week2Model(m, err, ck.Config, learnerWeek2Generate, w2d1.Prefill)
			},
		},
		// The GPU engine: the learner's W2D7 model (--device cuda|metal).
		gpu: func(dev *kernels.Device, ck *checkpoint.Checkpoint, o gpuOptions) (gpuModel, error) {
			m, err := w2d7.Load(dev, ck, w2d7.Options{MaxContext: o.maxContext, PrefillRows: o.prefillRows, Graph: true})
			if err != nil {
				return nil, err
			}
			return m, nil
		},
		gpuGenerate: func(m llm.StepModel, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s llm.Sampler, n int, eos []int, onToken func(int), on func(string)) (string, error) {
			return w2d7.Generate(m, tok, msgs, w2d7.GenerateOptions{MaxTokens: n, EOS: eos, Sampler: s, OnToken: onToken, OnText: on})
		},
	}
}

// learnerWeek2Generate is the learner's Week 2 generation loop (their
// W2D1) for any Week 2 model.
func learnerWeek2Generate(m llm.CachedModel, chunk int, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s sampler, n int, eos []int, on func(string)) (string, error) {
	return w2d1.Generate(m, tok, msgs, s, w2d1.Options{MaxTokens: n, EOS: eos, OnText: on, PrefillChunk: chunk})
}
