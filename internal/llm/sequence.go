package llm

import "fmt"

// This file holds the types that cross between the parts of the Week 3
// engine: the engine's step loop, the scheduler, the block manager and the
// model runner. A Sequence is one request as all of them see it; a Batch is
// what the scheduler hands the model runner for one step.

// SeqStatus is where a sequence is in the scheduler's life cycle.
type SeqStatus int

// The states of a sequence. A new request is waiting; the scheduler moves it
// to running when it schedules its first chunk, back to waiting when it
// preempts it, and to finished when it ends for any reason.
const (
	SeqWaiting SeqStatus = iota
	SeqRunning
	SeqFinished
)

func (s SeqStatus) String() string {
	switch s {
	case SeqWaiting:
		return "waiting"
	case SeqRunning:
		return "running"
	case SeqFinished:
		return "finished"
	}
	return fmt.Sprintf("SeqStatus(%d)", int(s))
}

// FinishReason says why a sequence finished; "" while it has not. The
// strings are the OpenAI API's finish_reason where it has one.
type FinishReason string

// The reasons a sequence finishes.
const (
	FinishStop      FinishReason = "stop"      // it generated an end-of-sequence token
	FinishLength    FinishReason = "length"    // its max tokens, or the model's context, is reached
	FinishCancelled FinishReason = "cancelled" // the caller cancelled it
	FinishError     FinishReason = "error"     // the model failed on a step that included it (see Err)
)

// Sequence is one request: its tokens, how far the model has computed them,
// the pages that hold their keys and values, and its state.
//
// The scheduler and the block manager change it; the model runner only
// reads it (the chunk it is given says which positions to compute).
type Sequence struct {
	// ID names the request; the engine gives each request its own.
	ID int
	// Tokens is the prompt followed by the tokens generated so far.
	Tokens []int
	// NumPrompt is the length of the prompt, the first NumPrompt Tokens.
	NumPrompt int
	// MaxTokens is the most tokens the request may generate.
	MaxTokens int
	// NumCached is the number of positions whose keys and values are
	// stored in the sequence's pages: the model has computed Tokens[:NumCached].
	NumCached int
	// BlockTable lists the sequence's pages in position order: position p
	// lives in page BlockTable[p / pageSize], slot p % pageSize. It may hold
	// more pages than NumCached needs (the pages reserved for the positions
	// being computed in this step).
	BlockTable []int
	// Status is waiting, running or finished.
	Status SeqStatus
	// Finish is why it finished, "" until it does.
	Finish FinishReason
	// Err is the model's error when Finish is FinishError.
	Err error
	// Preemptions counts how often the scheduler took the sequence's pages
	// back and sent it to the waiting queue to be recomputed.
	Preemptions int
	// Sampler picks this sequence's tokens from the log-probabilities of
	// its last position: a server's per-request temperature, top-p and
	// seed. nil leaves the choice to the model runner (greedy unless the
	// runner has a sampler of its own). A sampler of its own keeps a
	// seeded request's tokens the same whatever it is batched with, and
	// a preempted sequence draws from it only for new tokens.
	Sampler Sampler
}

// NewSequence returns a waiting sequence of a copy of prompt.
func NewSequence(id int, prompt []int, maxTokens int) *Sequence {
	return &Sequence{ID: id, Tokens: append([]int(nil), prompt...), NumPrompt: len(prompt), MaxTokens: maxTokens}
}

// Len is the number of tokens, prompt and output.
func (s *Sequence) Len() int { return len(s.Tokens) }

// Prompt is the prompt's tokens.
func (s *Sequence) Prompt() []int { return s.Tokens[:s.NumPrompt] }

// Output is the tokens generated so far (an end-of-sequence token that
// stopped the sequence is its last).
func (s *Sequence) Output() []int { return s.Tokens[s.NumPrompt:] }

// NumOutput is len(Output()).
func (s *Sequence) NumOutput() int { return len(s.Tokens) - s.NumPrompt }

// Uncached is the number of tokens the model has not computed yet: the rest
// of the prompt during prefill, 1 (the last token) during decode, the whole
// sequence after a preemption.
func (s *Sequence) Uncached() int { return len(s.Tokens) - s.NumCached }

// Finished reports whether the sequence has finished.
func (s *Sequence) Finished() bool { return s.Status == SeqFinished }

// ScheduledChunk is one sequence's share of a step: the model computes the
// positions Start … Start+Len-1 of Seq, writing their keys and values into
// its pages. Start is Seq.NumCached when the step is scheduled.
type ScheduledChunk struct {
	Seq        *Sequence
	Start, Len int
}

// Tokens is the chunk's token ids, Seq.Tokens[Start:Start+Len].
func (c ScheduledChunk) Tokens() []int { return c.Seq.Tokens[c.Start : c.Start+c.Len] }

// Samples reports whether the chunk ends at the sequence's last token, so
// that its last position's logits give the sequence's next token. A decode
// chunk always samples; a prefill chunk only when it is the prompt's last.
func (c ScheduledChunk) Samples() bool { return c.Start+c.Len == c.Seq.Len() }

// Batch is the scheduler's output for one step: the chunks the model runs
// together, at most one per sequence.
type Batch []ScheduledChunk

// NumTokens is the number of positions the step computes, the sum of the
// chunks' lengths: what the token budget limits.
func (b Batch) NumTokens() int {
	n := 0
	for _, c := range b {
		n += c.Len
	}
	return n
}

// PagesFor is the number of pages of pageSize positions that hold n
// positions.
func PagesFor(n, pageSize int) int {
	return (n + pageSize - 1) / pageSize
}
