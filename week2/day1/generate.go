package day1

import (
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// Sampler picks the next token from a row of log-probabilities (shape vocab).
type Sampler = llm.Sampler

// Prefill runs a prompt through the model with fresh caches (none of their
// positions used yet), in pieces of at most chunk tokens (chunk <= 0: the
// whole prompt at once), and returns the logits of the prompt's last
// position, 1 x 1 x vocab. Afterwards every cache holds len(prompt)
// positions. It panics on an empty prompt.
func Prefill(model CachedModel, prompt []int, caches []KVCache, chunk int) *tensor.Tensor {
	// Your code here (W2D1).
	panic("TODO(W2D1): implement Prefill")
}

// GenerateTokens extends prompt with the cache: it prefills the prompt once
// (in pieces of at most prefillChunk tokens, as Prefill does), then feeds
// the model one new token per step at the next position, never the whole
// sequence again. It stops after maxTokens tokens or after emitting any id
// in eos (which is included in the result), and runs the model no more
// often than it needs: one prefill and one step per token after the first.
// onToken, if not nil, sees each new id as soon as it is chosen.
func GenerateTokens(model CachedModel, prompt []int, sampler Sampler, maxTokens int, eos []int, prefillChunk int, onToken func(id int)) []int {
	// Your code here (W2D1).
	// Your week1/day6 LastLogProbs turns the logits into what the sampler
	// takes.
	panic("TODO(W2D1): implement GenerateTokens")
}

// Options control Generate.
type Options struct {
	MaxTokens    int          // the reply's length limit, in tokens
	EOS          []int        // ids that end the reply (generation_config.json's eos_token_id)
	PrefillChunk int          // the longest piece of the prompt per forward pass; 0 or less: all at once
	OnText       func(string) // receives the reply's text as it is decoded, if not nil
}

// Generate answers the last message of a conversation as Week 1's Generate
// does, but with the cache: it encodes the conversation with
// tok.EncodeChat (with the generation prompt, so special tokens typed
// inside a message stay text), generates with GenerateTokens, and streams
// the decoded text to opts.OnText through tok.NewStreamDecoder. It returns
// the reply without its end-of-turn token.
func Generate(model CachedModel, tok *tokenizer.Tokenizer, messages []tokenizer.Message, sampler Sampler, opts Options) (string, error) {
	// Your code here (W2D1).
	panic("TODO(W2D1): implement Generate")
}
