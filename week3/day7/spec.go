package day7

import (
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
	// Your code here (W3D7).
	panic("TODO(W3D7): implement AcceptGreedy")
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
	// Your code here (W3D7).
	// Keep one invariant and the rest follows: the target's caches hold
	// every token but the last; the draft's hold a prefix of the sequence,
	// and it is fed the rest before its next proposal.
	panic("TODO(W3D7): implement SpeculativeGenerate")
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
	// Your code here (W3D7).
	// Your Week 2 Generate (W2D1) is most of it.
	panic("TODO(W3D7): implement Generate")
}
