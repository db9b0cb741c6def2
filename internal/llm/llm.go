// Package llm declares the types that cross between the days of the course,
// the command-line program, the benchmarks and the grader: a model, a sampler,
// a KV cache. Each is declared here once; a day package that needs one aliases
// it (type Model = llm.Model), so the learner tree and the solutions tree
// export the very same type and the command-line program can hold either.
//
// The package holds interfaces and the few helpers that only use them. It
// imports the tensor package and nothing of the course's days.
package llm

import "github.com/tinyllm-go/tinyllm/internal/tensor"

// Model is a language model without a cache (Week 1): B x L token ids in,
// B x L x vocab logits out, recomputing the whole sequence on every call.
type Model interface {
	Forward(tokens [][]int) *tensor.Tensor
}

// LastModel is a Model that can compute the logits of the last position only
// (Week 1 Day 5 Task 5): B x L token ids in, B x 1 x vocab logits out. A
// generation loop needs nothing more, and skipping the output head for every
// other position saves about a quarter of a small model's prefill.
type LastModel interface {
	Model
	ForwardLast(tokens [][]int) *tensor.Tensor
}

// LastLogits runs one sequence through m and returns logits whose last row is
// the last position's: from ForwardLast when m has it, else from Forward.
func LastLogits(m Model, seq []int) *tensor.Tensor {
	if lm, ok := m.(LastModel); ok {
		return lm.ForwardLast([][]int{seq})
	}
	return m.Forward([][]int{seq})
}

// Sampler picks the next token from a row of log-probabilities (shape vocab).
type Sampler interface {
	Sample(logprobs *tensor.Tensor) int
}

// KVCache is the key/value cache of one attention layer (Week 2 onwards).
// Keys and values are B x H x L x D, H the key/value heads.
type KVCache interface {
	// UpdateAndFetch appends this step's keys and values (L new positions)
	// and returns every key and value cached so far, B x H x S x D with S the
	// new Offset. The returned tensors are valid until the next call.
	UpdateAndFetch(k, v *tensor.Tensor) (keys, values *tensor.Tensor)
	// Offset is the number of positions cached so far: the position of the
	// next token fed to the model.
	Offset() int
}

// RewindCache is a KVCache that can also forget its newest positions (Week 3
// Day 7): speculative decoding caches the keys and values of proposed tokens
// before it knows whether they are kept, and drops the rejected ones. It is
// an optional interface: a cache that cannot rewind (Week 2's) is still a
// KVCache, and code that needs Rewind asks for it with a type assertion.
type RewindCache interface {
	KVCache
	// Rewind drops the last n cached positions, so that Offset decreases by
	// n and the next UpdateAndFetch writes where the first dropped position
	// was. n must be between 0 and Offset(); anything else is an error and
	// changes nothing.
	Rewind(n int) error
}

// CachedModel is a language model with a key/value cache (Week 2 onwards).
// Each call feeds only the new tokens: the cache already holds the keys and
// values of every earlier position, so a decode step costs one position's
// work instead of the whole sequence's.
type CachedModel interface {
	// Forward runs B x L new token ids, whose first position is offset,
	// through the model, appending their keys and values to caches (one per
	// layer, each holding offset positions so far), and returns their
	// logits, B x L x vocab.
	Forward(tokens [][]int, offset int, caches []KVCache) *tensor.Tensor
	// ForwardLast is Forward that computes only the last position's
	// logits, B x 1 x vocab; the caches grow by all L positions.
	ForwardLast(tokens [][]int, offset int, caches []KVCache) *tensor.Tensor
	// NewCaches returns an empty cache for every layer, for one batch of
	// sequences.
	NewCaches() []KVCache
}

// AttendInCache, when set, appends k and v (B x H x L x D) to cache and
// returns the grouped-query attention of q (B x Hq x L x D) over every
// position cached, mask as in the Week 2 attention (nil or L x S additive),
// with ok true; for a cache it cannot read in place it does nothing and
// returns ok false. The result is written into dst (q's shape), or a new
// tensor when dst is nil. The Week 2 Day 1 reference sets it to the
// in-place attention over its own FullCache, so that the later days'
// reference engines read that cache where it lies instead of gathering it
// on every step (UpdateAndFetch), without the cache exporting its storage.
var AttendInCache func(q, k, v *tensor.Tensor, cache KVCache, mask, dst *tensor.Tensor) (o *tensor.Tensor, ok bool)
