// Package day6 is Week 1 Day 6 of the course: generating a reply token by
// token, without a KV cache. The guide's chapter "Week 1 Day 6" explains the
// tasks; grade your work with `make check-w1d6`.
package day6

import (
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// Model is any Week 1 model: B x L token ids in, B x L x vocab logits out.
// It is declared once, in internal/llm, for every day and the CLI.
type Model = llm.Model

// Sampler picks the next token from a row of log-probabilities (shape vocab).
type Sampler = llm.Sampler

// Greedy is the sampler of temperature 0: always the most likely token.
type Greedy struct{}

// Sample returns the index of the largest log-probability.
func (Greedy) Sample(logprobs *tensor.Tensor) int {
	// Your code here (W1D6).
	panic("TODO(W1D6): implement Greedy.Sample")
}

// LastLogProbs turns the logits of the last position of the last sequence in
// the batch (Generate runs a batch of one) into log-probabilities: logits - logsumexp(logits), computed stably.
func LastLogProbs(logits *tensor.Tensor) *tensor.Tensor {
	// Your code here (W1D6).
	panic("TODO(W1D6): implement LastLogProbs")
}

// GenerateTokens extends prompt one token at a time: run the whole sequence
// through the model, sample the next token from the last position, append,
// repeat. It stops after maxTokens tokens or after emitting any id in eos
// (which is included in the result, as Hugging Face does). onToken, if not
// nil, sees each new id as soon as it is chosen.
func GenerateTokens(model Model, prompt []int, sampler Sampler, maxTokens int, eos []int, onToken func(id int)) []int {
	// Your code here (W1D6).
	// Only the last position's logits are needed: if the model also has
	// ForwardLast (Day 5 Task 5), use it (see the chapter for how to ask an
	// interface value for a method).
	panic("TODO(W1D6): implement GenerateTokens")
}

// Options control Generate.
type Options struct {
	MaxTokens int          // the reply's length limit, in tokens
	EOS       []int        // ids that end the reply (generation_config.json's eos_token_id)
	OnText    func(string) // receives the reply's text as it is decoded, if not nil
}

// Generate answers the last message of a conversation: it encodes the
// conversation with the chat template (tok.EncodeChat with the generation
// prompt, which keeps special tokens typed inside a message as text),
// generates with GenerateTokens, and streams the decoded text to opts.OnText
// through tok.NewStreamDecoder, so no UTF-8 character is ever split. It
// returns the reply without its end-of-turn token.
func Generate(model Model, tok *tokenizer.Tokenizer, messages []tokenizer.Message, sampler Sampler, opts Options) (string, error) {
	// Your code here (W1D6).
	panic("TODO(W1D6): implement Generate")
}
