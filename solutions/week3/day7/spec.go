package day7

import (
	"errors"
	"fmt"
	"slices"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// Argmax returns the index of the first largest entry of a row: the greedy
// choice, with ties going to the lower id as in every greedy sampler of the
// course.
func Argmax(row []float32) int {
	best := 0
	for i, x := range row {
		if x > row[best] {
			best = i
		}
	}
	return best
}

// AcceptGreedy decides a verification step. logits holds the target's
// logits at the k+1 positions it was fed, [last, d₁ … d_k], as (k+1) x vocab
// or 1 x (k+1) x vocab; draft holds the k proposed ids d₁ … d_k. Row i is
// the target's prediction for the token after position i, so d_{i+1} is
// accepted when it is row i's argmax and every earlier proposal was
// accepted. It returns how many proposals were accepted (0 … k) and the
// target's own token after them: row accepted's argmax (a correction, or a
// bonus token when all k were accepted). It panics if logits does not have
// k+1 rows.
func AcceptGreedy(logits *tensor.Tensor, draft []int) (accepted, next int) {
	shape := logits.Shape()
	rows, vocab := 1, shape[len(shape)-1]
	for _, d := range shape[:len(shape)-1] {
		rows *= d
	}
	if rows != len(draft)+1 {
		panic(fmt.Sprintf("day7.AcceptGreedy: logits %v have %d rows for %d proposed tokens, want %d", shape, rows, len(draft), len(draft)+1))
	}
	data := logits.Data()
	for accepted < len(draft) && Argmax(data[accepted*vocab:(accepted+1)*vocab]) == draft[accepted] {
		accepted++
	}
	return accepted, Argmax(data[accepted*vocab : (accepted+1)*vocab])
}

// Stats counts what speculative decoding did.
type Stats struct {
	Steps     int // verification passes of the target (after the prefill)
	Proposed  int // draft tokens proposed
	Accepted  int // draft tokens the target agreed with
	Generated int // tokens emitted
}

// AcceptanceRate is Accepted / Proposed (0 when nothing was proposed).
func (s Stats) AcceptanceRate() float64 {
	if s.Proposed == 0 {
		return 0
	}
	return float64(s.Accepted) / float64(s.Proposed)
}

// TokensPerStep is the mean number of tokens one target pass produced,
// counting the prefill's first token as a pass of its own.
func (s Stats) TokensPerStep() float64 {
	return float64(s.Generated) / float64(s.Steps+1)
}

// SpecOptions control SpeculativeGenerate.
type SpecOptions struct {
	K         int          // tokens the draft proposes per step, at least 1
	MaxTokens int          // the most tokens to generate
	EOS       []int        // ids that end generation (included in the result)
	OnToken   func(id int) // sees each emitted id in order, if not nil
}

// rewindable returns model's own caches when all of them can rewind, and
// SpecCaches otherwise (Week 2's FullCache cannot).
func rewindable(model CachedModel) []KVCache {
	caches := model.NewCaches()
	for _, c := range caches {
		if _, ok := c.(RewindCache); !ok {
			return NewSpecCaches(len(caches))
		}
	}
	return caches
}

// rewind drops the last n positions of every cache.
func rewind(caches []KVCache, n int) error {
	for i, c := range caches {
		if err := c.(RewindCache).Rewind(n); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return nil
}

// lastRow returns the last row of B x L x vocab logits (B = 1).
func lastRow(logits *tensor.Tensor) []float32 {
	data := logits.Data()
	vocab := logits.Dim(logits.NDim() - 1)
	return data[len(data)-vocab:]
}

// SpeculativeGenerate continues prompt greedily with target, using draft to
// guess ahead. The target prefills the prompt and picks the first token;
// the draft sees the prompt with its first proposal. Then each step: the draft
// proposes up to K tokens one at a time (greedy), the target runs once over
// the last emitted token and the K proposals (Forward at the next offset:
// K+1 rows of logits), AcceptGreedy keeps the agreeing prefix plus the
// target's own next token, and both caches rewind the positions of the
// rejected proposals. The result is token for token what greedy decoding
// with target alone gives: every emitted token is the target's argmax after
// the tokens before it.
//
// It stops after opts.MaxTokens tokens or after an id in opts.EOS (included),
// and never feeds the target past the position plain decoding would reach
// (the last step proposes fewer tokens when fewer are wanted). It returns
// an error for K < 1, an empty prompt, or models whose vocabularies differ;
// MaxTokens <= 0 gives no tokens.
func SpeculativeGenerate(target, draft CachedModel, prompt []int, opts SpecOptions) ([]int, Stats, error) {
	var st Stats
	switch {
	case opts.K < 1:
		return nil, st, fmt.Errorf("day7.SpeculativeGenerate: K must be at least 1, got %d", opts.K)
	case len(prompt) == 0:
		return nil, st, errors.New("day7.SpeculativeGenerate: empty prompt")
	case opts.MaxTokens <= 0:
		return nil, st, nil
	}
	tc, dc := rewindable(target), rewindable(draft)
	tLogits := target.ForwardLast([][]int{prompt}, 0, tc)
	vocab := tLogits.Dim(tLogits.NDim() - 1)
	// seq is the prompt and every emitted token. The target's caches hold
	// all of seq but its last token; the draft's hold seq[:dOffset], and
	// it is fed seq[dOffset:] before its next proposal.
	seq := slices.Clone(prompt)
	dOffset := 0
	emit := func(id int) bool {
		seq = append(seq, id)
		st.Generated++
		if opts.OnToken != nil {
			opts.OnToken(id)
		}
		return st.Generated == opts.MaxTokens || slices.Contains(opts.EOS, id)
	}
	done := emit(Argmax(lastRow(tLogits)))
	for !done {
		// One step emits at most k+1 tokens: propose no more than are
		// wanted, so the target never runs past plain decoding's positions.
		k := min(opts.K, opts.MaxTokens-st.Generated-1)
		proposal := make([]int, 0, k)
		for len(proposal) < k {
			var dLogits *tensor.Tensor
			if len(proposal) == 0 {
				dLogits = draft.ForwardLast([][]int{seq[dOffset:]}, dOffset, dc)
				if dv := dLogits.Dim(dLogits.NDim() - 1); dv != vocab {
					return seq[len(prompt):], st, fmt.Errorf("day7.SpeculativeGenerate: the draft's vocabulary has %d ids, the target's %d", dv, vocab)
				}
				dOffset = len(seq)
			} else {
				dLogits = draft.ForwardLast([][]int{{proposal[len(proposal)-1]}}, dOffset, dc)
				dOffset++
			}
			proposal = append(proposal, Argmax(lastRow(dLogits)))
		}
		// One target pass scores the last token and every proposal: k+1
		// rows, row i predicting the token after proposal i.
		n := len(seq) - 1
		tLogits = target.Forward([][]int{append([]int{seq[n]}, proposal...)}, n, tc)
		accepted, next := AcceptGreedy(tLogits, proposal)
		st.Steps++
		st.Proposed += k
		st.Accepted += accepted
		// The target keeps the last token and the accepted proposals.
		if err := rewind(tc, k-accepted); err != nil {
			return seq[len(prompt):], st, fmt.Errorf("day7.SpeculativeGenerate: target cache: %w", err)
		}
		// The draft has seen proposals 1 … k-1 (not the last one it made):
		// it keeps the accepted ones among them.
		if k > 0 {
			drop := k - 1 - min(accepted, k-1)
			if err := rewind(dc, drop); err != nil {
				return seq[len(prompt):], st, fmt.Errorf("day7.SpeculativeGenerate: draft cache: %w", err)
			}
			dOffset -= drop
		}
		for _, id := range append(proposal[:accepted], next) {
			if done = emit(id); done {
				break
			}
		}
	}
	return seq[len(prompt):], st, nil
}

// Options control Generate.
type Options struct {
	K         int          // tokens the draft proposes per step, at least 1
	MaxTokens int          // the reply's length limit, in tokens
	EOS       []int        // ids that end the reply
	OnText    func(string) // receives the reply's text as it is decoded, if not nil
}

// Generate answers the last message of a conversation greedily with target,
// speculating with draft: Week 2's Generate (the chat template through
// tok.EncodeChat, streaming through tok.NewStreamDecoder, the end-of-turn
// token left out of the reply) on top of SpeculativeGenerate. The reply is
// the one plain greedy decoding gives; the Stats say how the draft did.
func Generate(target, draft CachedModel, tok *tokenizer.Tokenizer, messages []tokenizer.Message, opts Options) (string, Stats, error) {
	if opts.MaxTokens <= 0 {
		return "", Stats{}, fmt.Errorf("day7.Generate: MaxTokens must be positive, got %d", opts.MaxTokens)
	}
	prompt, err := tok.EncodeChat(messages, true)
	if err != nil {
		return "", Stats{}, fmt.Errorf("day7.Generate: encoding the prompt: %w", err)
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
	_, st, err := SpeculativeGenerate(target, draft, prompt, SpecOptions{K: opts.K, MaxTokens: opts.MaxTokens, EOS: opts.EOS, OnToken: func(id int) {
		if slices.Contains(opts.EOS, id) || decodeErr != nil {
			return // the end-of-turn token is not part of the reply
		}
		text, err := stream.Add(id)
		if err != nil {
			decodeErr = err
			return
		}
		emit(text)
	}})
	if err != nil {
		return string(reply), st, fmt.Errorf("day7.Generate: %w", err)
	}
	if decodeErr != nil {
		return string(reply), st, fmt.Errorf("day7.Generate: decoding: %w", decodeErr)
	}
	emit(stream.Flush())
	return string(reply), st, nil
}
