package llm

import (
	"fmt"
	"math"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// BatchSeq is one request's share of a batched step (Week 3 onwards): the
// tokens it brings to this step, the position of the first of them, and the
// request's own caches. A prefill (or a piece of one) brings several tokens,
// a decode step brings one; requests of both kinds may share a step.
type BatchSeq struct {
	// Tokens are the new token ids, at positions Offset … Offset+len-1 of
	// the request. At least one.
	Tokens []int
	// Offset is the number of positions the request's caches hold already:
	// the position of Tokens[0].
	Offset int
	// Caches holds one cache per layer, belonging to this request alone,
	// each with Offset positions; a step appends len(Tokens) to each.
	Caches []KVCache
}

// ModelShape is what an engine needs to know of a model to size and check a
// batch before it runs one: how many caches a request needs and how large
// their pages are, how long a request may grow, and how wide a logits row is.
type ModelShape struct {
	NumLayers  int // one KV cache per layer
	NumKVHeads int // key/value heads of a layer (H)
	HeadDim    int // D
	MaxContext int // the most positions a request may hold (max_position_embeddings)
	VocabSize  int // the width of a logits row
}

// ShapeOf is the ModelShape of a Qwen2 checkpoint's configuration.
func ShapeOf(c checkpoint.Config) ModelShape {
	return ModelShape{NumLayers: c.NumHiddenLayers, NumKVHeads: c.NumKeyValueHeads, HeadDim: c.HeadDim(),
		MaxContext: c.MaxPositionEmbeddings, VocabSize: c.VocabSize}
}

// BatchModel is a language model that runs the new tokens of several
// requests in one step (continuous batching, Week 3). Each request keeps
// its own caches and offset, so requests join and leave at any step, and a
// prefill and the decode steps of other requests share one call.
type BatchModel interface {
	// ForwardBatch runs one step. The linear layers (projections, MLP)
	// take the new tokens of every sequence at once, so each weight matrix
	// is read once per step, not once per request; attention runs per
	// sequence against its own caches, its queries at its own offset under
	// the bottom-right causal mask. It returns the logits of each
	// sequence's last new position, len(seqs) x VocabSize, row i for
	// seqs[i]. It panics with CheckBatch's message on a malformed batch.
	// It calls the caches from the calling goroutine, one at a time (a
	// cache implementation may share state between requests, such as a
	// page pool, without locks); what UpdateAndFetch returned may be read
	// concurrently until that cache's next call.
	ForwardBatch(seqs []BatchSeq) *tensor.Tensor
	// NewCaches returns one request's empty caches, one per layer.
	NewCaches() []KVCache
	// Shape returns the model's dimensions and limits.
	Shape() ModelShape
}

// CheckBatch says what is wrong with a step's batch for a model of layers
// layers and maxContext positions, or returns nil: a step with no sequence,
// a sequence with no tokens, a token id outside [0, vocab), the wrong number
// of caches, a cache that does not hold Offset positions, a request that
// would outgrow maxContext, or one cache given to two sequences (or to two
// layers), which would append one request's keys to another's. A model
// panics with this message; an engine may call it first to turn a bad
// batch into an error.
func CheckBatch(seqs []BatchSeq, layers, maxContext, vocab int) error {
	if len(seqs) == 0 {
		return fmt.Errorf("a batch of no sequences")
	}
	owner := map[KVCache]string{}
	for i, s := range seqs {
		if len(s.Tokens) == 0 {
			return fmt.Errorf("sequence %d brings no tokens", i)
		}
		if s.Offset < 0 {
			return fmt.Errorf("sequence %d has a negative offset %d", i, s.Offset)
		}
		if end := s.Offset + len(s.Tokens); maxContext > 0 && end > maxContext {
			return fmt.Errorf("sequence %d would hold %d positions (offset %d + %d tokens), more than the model's %d",
				i, end, s.Offset, len(s.Tokens), maxContext)
		}
		for j, id := range s.Tokens {
			if id < 0 || id >= vocab {
				return fmt.Errorf("sequence %d: token %d is id %d, outside the vocabulary of %d", i, j, id, vocab)
			}
		}
		if len(s.Caches) != layers {
			return fmt.Errorf("sequence %d has %d caches for a model of %d layers", i, len(s.Caches), layers)
		}
		for l, c := range s.Caches {
			if c == nil {
				return fmt.Errorf("sequence %d: the cache of layer %d is nil", i, l)
			}
			at := fmt.Sprintf("sequence %d's cache of layer %d", i, l)
			if prev, dup := owner[c]; dup {
				return fmt.Errorf("%s is also %s: every request needs caches of its own (NewCaches)", at, prev)
			}
			owner[c] = at
			if got := c.Offset(); got != s.Offset {
				return fmt.Errorf("%s holds %d positions, but the sequence says its tokens start at position %d", at, got, s.Offset)
			}
		}
	}
	return nil
}

// BatchTokens is the number of new tokens of a batch: the rows its linear
// layers multiply in one step.
func BatchTokens(seqs []BatchSeq) int {
	n := 0
	for _, s := range seqs {
		n += len(s.Tokens)
	}
	return n
}

// LogProbs turns one row of logits into log-probabilities: x minus its
// log-sum-exp, the sum in float64. What a runner hands a Sampler.
func LogProbs(x *tensor.Tensor) *tensor.Tensor {
	d := x.Data()
	top := float32(math.Inf(-1))
	for _, v := range d {
		top = max(top, v)
	}
	var sum float64
	for _, v := range d {
		sum += math.Exp(float64(v - top))
	}
	lse := top + float32(math.Log(sum))
	out := make([]float32, len(d))
	for i, v := range d {
		out[i] = v - lse
	}
	return tensor.New(out, x.Shape()...)
}
