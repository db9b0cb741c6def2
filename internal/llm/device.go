package llm

import "github.com/tinyllm-go/tinyllm/internal/tensor"

// StepModel is a language model that keeps one sequence's cache itself,
// where the caller cannot see it (Week 2 Day 7's model on the GPU, whose
// cache lives in device memory), and chooses the greedy next token itself,
// so that a step returns one token id instead of a row of logits.
type StepModel interface {
	// Reset empties the cache for a new sequence.
	Reset()
	// Prefill feeds ids behind what the cache holds and returns the
	// greedy choice after the last of them.
	Prefill(ids []int) (int, error)
	// Decode feeds one token at the next position and returns the greedy
	// choice after it.
	Decode(token int) (int, error)
	// Logits returns the last position's logits of the last Prefill or
	// Decode, 1 x 1 x vocab, for a sampler that needs more than the
	// greedy choice.
	Logits() (*tensor.Tensor, error)
	// MaxContext is the number of positions the cache can hold.
	MaxContext() int
}
