// Package day6 is the reference solution of Week 1 Day 6: generating a reply
// token by token, without a KV cache.
package day6

import (
	"fmt"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"math"
	"slices"

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
	return tensor.ArgMax(logprobs, -1)[0]
}

// LastLogProbs turns the logits of the last position of the last sequence in
// the batch (Generate runs a batch of one) into log-probabilities: logits - logsumexp(logits), computed stably.
func LastLogProbs(logits *tensor.Tensor) *tensor.Tensor {
	v := logits.Dim(-1)
	data := logits.Data()
	row := data[len(data)-v:]
	m := slices.Max(row)
	sum := 0.0
	for _, x := range row {
		sum += math.Exp(float64(x - m))
	}
	lse := float64(m) + math.Log(sum)
	out := make([]float32, v)
	for i, x := range row {
		out[i] = float32(float64(x) - lse)
	}
	return tensor.New(out, v)
}

// GenerateTokens extends prompt one token at a time: run the whole sequence
// through the model, sample the next token from the last position, append,
// repeat. It stops after maxTokens tokens or after emitting any id in eos
// (which is included in the result, as Hugging Face does). onToken, if not
// nil, sees each new id as soon as it is chosen.
func GenerateTokens(model Model, prompt []int, sampler Sampler, maxTokens int, eos []int, onToken func(id int)) []int {
	// Without a KV cache every step recomputes the whole prefix: step n costs
	// O(n) in the layers and O(n²) in attention. Week 2 removes that.
	seq := slices.Clone(prompt)
	var out []int
	for len(out) < maxTokens {
		next := sampler.Sample(LastLogProbs(llm.LastLogits(model, seq)))
		seq = append(seq, next)
		out = append(out, next)
		if onToken != nil {
			onToken(next)
		}
		if slices.Contains(eos, next) {
			break
		}
	}
	return out
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
	if opts.MaxTokens <= 0 {
		return "", fmt.Errorf("day6.Generate: MaxTokens must be positive, got %d", opts.MaxTokens)
	}
	prompt, err := tok.EncodeChat(messages, true)
	if err != nil {
		return "", fmt.Errorf("day6.Generate: encoding the prompt: %w", err)
	}
	stream := tok.NewStreamDecoder()
	var reply []byte
	var decodeErr error
	emit := func(text string) {
		reply = append(reply, text...)
		if opts.OnText != nil && text != "" {
			opts.OnText(text)
		}
	}
	GenerateTokens(model, prompt, sampler, opts.MaxTokens, opts.EOS, func(id int) {
		if slices.Contains(opts.EOS, id) || decodeErr != nil {
			return // the end-of-turn token is not part of the reply
		}
		text, err := stream.Add(id)
		if err != nil {
			decodeErr = err
			return
		}
		emit(text)
	})
	if decodeErr != nil {
		return string(reply), fmt.Errorf("day6.Generate: decoding: %w", decodeErr)
	}
	emit(stream.Flush())
	return string(reply), nil
}
