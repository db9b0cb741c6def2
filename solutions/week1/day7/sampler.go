// Package day7 is the reference solution of Week 1 Day 7: sampling with
// temperature, top-k and top-p, and a first GPU kernel.
package day7

import (
	"math"
	"math/rand/v2"
	"sort"

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
	return &Sampler{Temperature: temperature, TopP: topP, TopK: topK, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Candidates returns the tokens that remain sampleable after the filters, in
// increasing id order, with their renormalised probabilities. Temperature 0
// leaves only the argmax, with probability 1. Top-p keeps the token whose
// probability makes the running total cross TopP.
func (s *Sampler) Candidates(logprobs *tensor.Tensor) (ids []int, probs []float32) {
	row := logprobs.Data()
	if s.Temperature <= 0 {
		return []int{tensor.ArgMax(logprobs, -1)[0]}, []float32{1}
	}
	// Most likely first; ties keep the lower id first, so results are stable.
	order := make([]int, len(row))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
	if s.TopK > 0 && s.TopK < len(order) {
		order = order[:s.TopK]
	}
	// Softmax of logprobs/T over the survivors, in float64.
	p := make([]float64, len(order))
	maxv := float64(row[order[0]]) / s.Temperature
	total := 0.0
	for i, id := range order {
		p[i] = math.Exp(float64(row[id])/s.Temperature - maxv)
		total += p[i]
	}
	for i := range p {
		p[i] /= total
	}
	if s.TopP > 0 && s.TopP < 1 {
		// Keep tokens until the running total reaches TopP: the token that
		// crosses the threshold stays, so at least one token always does.
		cum, n := 0.0, 0
		for n < len(p) {
			cum += p[n]
			n++
			if cum >= s.TopP {
				break
			}
		}
		order, p = order[:n], p[:n]
		total = 0
		for _, v := range p {
			total += v
		}
		for i := range p {
			p[i] /= total
		}
	}
	// Report in id order.
	idx := make([]int, len(order))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return order[idx[a]] < order[idx[b]] })
	for _, i := range idx {
		ids = append(ids, order[i])
		probs = append(probs, float32(p[i]))
	}
	return ids, probs
}

// Sample draws one token id from the candidates.
func (s *Sampler) Sample(logprobs *tensor.Tensor) int {
	ids, probs := s.Candidates(logprobs)
	u := s.rng.Float64()
	cum := 0.0
	for i, p := range probs {
		cum += float64(p)
		if u < cum {
			return ids[i]
		}
	}
	return ids[len(ids)-1] // u fell in the rounding gap above the last sum
}
