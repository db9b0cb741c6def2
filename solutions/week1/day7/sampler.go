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
	// The ranking (most likely first, ties to the lower id, as a stable
	// sort gives) is needed only as far as the filters reach, so it is
	// built only that far: the best TopK tokens, or for top-p alone the
	// best 64, then 512, … until their probability reaches TopP. Sorting
	// all of Qwen2's 151,936 log-probs for every token would cost tens of
	// milliseconds, more than a decode step.
	row := logprobs.Data()
	if s.Temperature <= 0 {
		return []int{tensor.ArgMax(logprobs, -1)[0]}, []float32{1}
	}
	n := len(row)
	k := n
	if s.TopK > 0 && s.TopK < n {
		k = s.TopK
	}
	topP := s.TopP > 0 && s.TopP < 1
	top := row[0]
	for _, x := range row {
		top = max(top, x)
	}
	maxv := float64(top) / s.Temperature
	prob := func(id int) float64 { return math.Exp(float64(row[id])/s.Temperature - maxv) }
	if k == n && !topP {
		// No filter: every token, already in id order.
		p := make([]float64, n)
		total := 0.0
		for i := range p {
			p[i] = prob(i)
			total += p[i]
		}
		ids, probs = make([]int, n), make([]float32, n)
		for i := range p {
			ids[i], probs[i] = i, float32(p[i]/total)
		}
		return ids, probs
	}
	// Softmax of logprobs/T over the survivors of top-k, in float64: over
	// every token when top-k keeps them all.
	total := 0.0
	var ranking []int // the best tokens, most likely first, as far as built
	if k < n {
		ranking = ranked(row, k)
		for _, id := range ranking {
			total += prob(id)
		}
	} else {
		for i := range row {
			total += prob(i)
		}
	}
	m := k
	if topP {
		m = min(k, 64)
	}
	for {
		if len(ranking) < m {
			ranking = ranked(row, m)
		}
		order := ranking[:m] // a ranking's first m are the best m's ranking
		p := make([]float64, m)
		for i, id := range order {
			p[i] = prob(id) / total
		}
		kept := m
		if topP {
			// Keep tokens until the running total reaches TopP: the token
			// that crosses the threshold stays, so at least one token
			// always does.
			cum := 0.0
			kept = 0
			for kept < m {
				cum += p[kept]
				kept++
				if cum >= s.TopP {
					break
				}
			}
			if cum < s.TopP && m < k {
				m = min(k, 8*m) // not reached within the best m: look further
				continue
			}
		}
		return byID(order[:kept], p[:kept])
	}
}

// ranked returns the ids of the m largest values of row, largest first,
// equal values in increasing id order (a stable sort's order), in
// O(n log m) with a heap of the best m seen so far.
func ranked(row []float32, m int) []int {
	better := func(a, b int) bool { return row[a] > row[b] || (row[a] == row[b] && a < b) }
	if 4*m >= len(row) {
		order := make([]int, len(row))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
		return order[:m]
	}
	// A min-heap on the ranking: the worst of the best m at the root.
	h := make([]int, 0, m)
	down := func(i int) {
		for {
			w, l, r := i, 2*i+1, 2*i+2
			if l < len(h) && better(h[w], h[l]) {
				w = l
			}
			if r < len(h) && better(h[w], h[r]) {
				w = r
			}
			if w == i {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for id := range row {
		switch {
		case len(h) < m:
			h = append(h, id)
			for i := len(h) - 1; i > 0 && better(h[(i-1)/2], h[i]); i = (i - 1) / 2 {
				h[i], h[(i-1)/2] = h[(i-1)/2], h[i]
			}
		case better(id, h[0]):
			h[0] = id
			down(0)
		}
	}
	sort.Slice(h, func(a, b int) bool { return better(h[a], h[b]) })
	return h
}

// byID renormalises the kept probabilities (summed in ranking order) and
// reports them in increasing id order.
func byID(order []int, p []float64) (ids []int, probs []float32) {
	total := 0.0
	for _, v := range p {
		total += v
	}
	idx := make([]int, len(order))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return order[idx[a]] < order[idx[b]] })
	for _, i := range idx {
		ids = append(ids, order[i])
		probs = append(probs, float32(p[i]/total))
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
