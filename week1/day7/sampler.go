// Package day7 is Week 1 Day 7 of the course: sampling with temperature,
// top-k and top-p (Task 1), and a first GPU kernel (Task 2). The guide's
// chapters "Week 1 Day 7" explain the tasks; grade your work with
// `make check-w1d7`.
package day7

import (
	"math/rand/v2"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Sampler draws the next token from a row of log-probabilities. The filters
// apply in the order Hugging Face's generate applies them: temperature, then
// top-k, then top-p.
type Sampler struct {
	Temperature float64 // 0 means greedy (argmax)
	TopP        float64 // keep the smallest set of tokens whose probability reaches TopP; 1 keeps all
	TopK        int     // keep the K most likely tokens; 0 keeps all

	rng *rand.Rand
}

// NewSampler makes a sampler whose draws are reproducible for a given seed.
func NewSampler(temperature, topP float64, topK int, seed uint64) *Sampler {
	// Provided: nothing to write here.
	return &Sampler{Temperature: temperature, TopP: topP, TopK: topK, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Candidates returns the tokens that remain sampleable after the filters, in
// increasing id order, with their renormalised probabilities. Temperature 0
// leaves only the argmax, with probability 1. Top-p keeps the token whose
// probability makes the running total cross TopP.
func (s *Sampler) Candidates(logprobs *tensor.Tensor) (ids []int, probs []float32) {
	// Your code here (W1D7).
	panic("TODO(W1D7): implement Sampler.Candidates")
}

// Sample draws one token id from the candidates.
func (s *Sampler) Sample(logprobs *tensor.Tensor) int {
	// Your code here (W1D7).
	// Use s.rng, so that a seed gives the same draws.
	panic("TODO(W1D7): implement Sampler.Sample")
}
