package day1

import (
	"fmt"
	"slices"

	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day6"
)

// Sampler picks the next token from a row of log-probabilities (shape vocab).
type Sampler = llm.Sampler

// Prefill runs a prompt through the model with fresh caches (none of their
// positions used yet), in pieces of at most chunk tokens (chunk <= 0: the
// whole prompt at once), and returns the logits of the prompt's last
// position, 1 x 1 x vocab. Afterwards every cache holds len(prompt)
// positions. It panics on an empty prompt.
func Prefill(model CachedModel, prompt []int, caches []KVCache, chunk int) *tensor.Tensor {
	if len(prompt) == 0 {
		panic("day1.Prefill: empty prompt")
	}
	if chunk <= 0 {
		chunk = len(prompt)
	}
	// The reference's caches learn the length to expect, so that they
	// allocate once instead of growing with every piece.
	for _, c := range caches {
		if fc, ok := c.(*FullCache); ok && fc.offset == 0 {
			fc.expect = len(prompt) + replyRoom
		}
	}
	var logits *tensor.Tensor
	for start := 0; start < len(prompt); start += chunk {
		end := min(start+chunk, len(prompt))
		// Every piece but the last only fills the caches; ForwardLast
		// keeps the output head's work to one row for it.
		logits = model.ForwardLast([][]int{prompt[start:end]}, start, caches)
	}
	return logits
}

// replyRoom is the room for new tokens that Prefill asks a fresh cache to
// keep behind the prompt: a reply longer than that grows the cache as
// usual, by doubling, one copy of what it holds. 64 positions of
// Qwen2-0.5B's keys and values are 1.5 MB; the 256 this was before held 6
// MB that a short reply never used, and on the 4-bit model (0.28 GB of
// weights) that was 2% of the peak resident memory.
const replyRoom = 64

// GenerateTokens extends prompt with the cache: it prefills the prompt once
// (in pieces of at most prefillChunk tokens, as Prefill does), then feeds
// the model one new token per step at the next position, never the whole
// sequence again. It stops after maxTokens tokens or after emitting any id
// in eos (which is included in the result), and runs the model no more
// often than it needs: one prefill and one step per token after the first.
// onToken, if not nil, sees each new id as soon as it is chosen.
func GenerateTokens(model CachedModel, prompt []int, sampler Sampler, maxTokens int, eos []int, prefillChunk int, onToken func(id int)) []int {
	if maxTokens <= 0 {
		return nil
	}
	caches := model.NewCaches()
	logits := Prefill(model, prompt, caches, prefillChunk)
	var out []int
	for {
		next := sampler.Sample(day6.LastLogProbs(logits))
		out = append(out, next)
		if onToken != nil {
			onToken(next)
		}
		if len(out) == maxTokens || slices.Contains(eos, next) {
			return out
		}
		// The new token is the only input: position len(prompt)+len(out)-1.
		logits = model.ForwardLast([][]int{{next}}, len(prompt)+len(out)-1, caches)
	}
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
	if opts.MaxTokens <= 0 {
		return "", fmt.Errorf("day1.Generate: MaxTokens must be positive, got %d", opts.MaxTokens)
	}
	prompt, err := tok.EncodeChat(messages, true)
	if err != nil {
		return "", fmt.Errorf("day1.Generate: encoding the prompt: %w", err)
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
	GenerateTokens(model, prompt, sampler, opts.MaxTokens, opts.EOS, opts.PrefillChunk, func(id int) {
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
		return string(reply), fmt.Errorf("day1.Generate: decoding: %w", decodeErr)
	}
	emit(stream.Flush())
	return string(reply), nil
}
