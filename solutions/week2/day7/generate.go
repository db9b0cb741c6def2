package day7

import (
	"fmt"
	"slices"

	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day6"
)

// GenerateOptions control GenerateTokens and Generate. (Provided.)
type GenerateOptions struct {
	MaxTokens int   // the reply's length limit, in tokens
	EOS       []int // ids that end the reply
	// Sampler, if not nil, picks each token from the log-probs of a
	// logits row copied back from the device (Week 1's sampler: temperature,
	// top-k, top-p). nil is greedy decoding on the device: one token id
	// comes back per step, not the logits.
	Sampler llm.Sampler
	OnToken func(id int)   // sees each new id as soon as it is chosen, if not nil
	OnText  func(s string) // receives the reply's text as it is decoded, if not nil
}

// StepModel is a model that keeps its cache and makes its greedy choice
// itself: the GPU model.
type StepModel = llm.StepModel

// GenerateTokens extends prompt with m: Reset, one Prefill of the prompt,
// then one Decode per new token, fed the token just chosen, stopping after
// MaxTokens tokens or an id in EOS (which is included in the result).
// Greedy (Sampler nil), the token is the one Prefill or Decode returned,
// and the logits never leave the device; with a Sampler, each token is
// drawn from the log-probs of Logits. OnToken sees each token as it is
// chosen. An error of the model ends generation and is returned with the
// tokens chosen before it. (The reference also drives a greedy model that
// is an llm.AheadDecoder, the GPU model, llm.AheadWindow steps at a time,
// so that the device does not wait for the host between steps; a loop of
// Decode calls is all the checks ask for.)
func GenerateTokens(m StepModel, prompt []int, opts GenerateOptions) ([]int, error) {
	if opts.MaxTokens <= 0 {
		return nil, fmt.Errorf("day7: MaxTokens must be positive, got %d", opts.MaxTokens)
	}
	m.Reset()
	next, err := m.Prefill(prompt)
	if err != nil {
		return nil, err
	}
	var out []int
	// take keeps a chosen token and says whether the reply is complete.
	take := func(id int) bool {
		out = append(out, id)
		if opts.OnToken != nil {
			opts.OnToken(id)
		}
		return len(out) == opts.MaxTokens || slices.Contains(opts.EOS, id)
	}
	if opts.Sampler != nil {
		for {
			logits, err := m.Logits()
			if err != nil {
				return out, err
			}
			next = opts.Sampler.Sample(day6.LastLogProbs(logits))
			if take(next) {
				return out, nil
			}
			if _, err := m.Decode(next); err != nil {
				return out, err
			}
		}
	}
	ahead, _ := m.(llm.AheadDecoder)
	if take(next) {
		return out, nil
	}
	for {
		// Positions cached: the prompt and every token but the last.
		n := min(llm.AheadWindow, opts.MaxTokens-len(out), m.MaxContext()-len(prompt)-len(out)+1)
		var ids []int
		if ahead != nil && n > 1 {
			ids, err = ahead.DecodeAhead(next, n)
		} else {
			next, err = m.Decode(next)
			if err == nil {
				ids = []int{next}
			}
		}
		for _, id := range ids {
			if take(id) {
				return out, nil
			}
		}
		if err != nil {
			return out, err
		}
		next = ids[len(ids)-1]
	}
}

// Generate answers the last message of a conversation on the device, as
// Week 2's Generate does on the CPU: the chat template, GenerateTokens, and
// the reply's text streamed to OnText without its end-of-turn token.
// (Provided.)
func Generate(m StepModel, tok *tokenizer.Tokenizer, messages []tokenizer.Message, opts GenerateOptions) (string, error) {
	prompt, err := tok.EncodeChat(messages, true)
	if err != nil {
		return "", fmt.Errorf("day7: encoding the prompt: %w", err)
	}
	if len(prompt)+1 > m.MaxContext() {
		return "", fmt.Errorf("day7: the conversation is %d tokens and the device cache holds %d positions", len(prompt), m.MaxContext())
	}
	opts.MaxTokens = min(opts.MaxTokens, m.MaxContext()-len(prompt))
	stream := tok.NewStreamDecoder()
	var reply []byte
	var decodeErr error
	emit := func(text string) {
		reply = append(reply, text...)
		if opts.OnText != nil && text != "" {
			opts.OnText(text)
		}
	}
	onToken := opts.OnToken
	opts.OnToken = func(id int) {
		if onToken != nil {
			onToken(id)
		}
		if slices.Contains(opts.EOS, id) || decodeErr != nil {
			return
		}
		text, err := stream.Add(id)
		if err != nil {
			decodeErr = err
			return
		}
		emit(text)
	}
	if _, err := GenerateTokens(m, prompt, opts); err != nil {
		return string(reply), err
	}
	if decodeErr != nil {
		return string(reply), fmt.Errorf("day7: decoding: %w", decodeErr)
	}
	emit(stream.Flush())
	return string(reply), nil
}
