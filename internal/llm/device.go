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

// AheadDecoder is a StepModel that can run several decode steps back to
// back, each fed the choice of the step before it, without the host
// reading every choice before it queues the next step: the device never
// waits for the host between steps, and the choices come back together.
type AheadDecoder interface {
	// DecodeAhead feeds token at the next position, then runs n steps
	// (n >= 1) and returns their n choices, as n calls of Decode, each
	// fed the choice of the one before, would.
	DecodeAhead(token, n int) ([]int, error)
}

// AheadWindow is how many decode steps a greedy loop queues at once on an
// AheadDecoder: a reply's tokens arrive this many at a time (about 10 ms
// at 1,500 tokens a second), and after an end-of-turn token up to this many
// steps were computed for nothing.
const AheadWindow = 16
