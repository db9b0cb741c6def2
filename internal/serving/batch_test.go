package serving

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// stepper is a scripted llm.Engine: each step gives every request the
// token after its last (mod vocab), token 9 is the end of sequence, token
// 13 panics and token 11 fails the step. Each running request holds one
// page of its allocator. A gate, when set, holds every step until it
// receives.
type stepper struct {
	seqs   []*llm.Sequence
	nextID int
	gate   chan struct{}
	// Touched by the step loop only, and read by the test after the
	// engine is closed or idle.
	samplers []llm.Sampler
}

func (s *stepper) AddRequest(prompt []int, maxTokens int) (*llm.Sequence, error) {
	if len(prompt) > 6 {
		return nil, errors.New("a prompt longer than 6 needs more pages than the pool has")
	}
	seq := llm.NewSequence(s.nextID, prompt, maxTokens)
	s.nextID++
	s.seqs = append(s.seqs, seq)
	return seq, nil
}

func (s *stepper) finish(seq *llm.Sequence, why llm.FinishReason) {
	seq.Status, seq.Finish = llm.SeqFinished, why
	s.seqs = slices.DeleteFunc(s.seqs, func(o *llm.Sequence) bool { return o == seq })
}

func (s *stepper) Step() ([]*llm.Sequence, error) {
	if s.gate != nil {
		<-s.gate
	}
	var changed []*llm.Sequence
	var failed error
	for _, seq := range slices.Clone(s.seqs) {
		if seq.Status == llm.SeqWaiting {
			s.samplers = append(s.samplers, seq.Sampler)
		}
		seq.Status = llm.SeqRunning
		tok := (seq.Tokens[seq.Len()-1] + 1) % vocab
		switch tok {
		case 13:
			panic("token 13 is unlucky")
		case 11:
			failed = errors.New("token 11 fails the step")
			seq.Err = failed
			s.finish(seq, llm.FinishError)
			changed = append(changed, seq)
			continue
		}
		seq.Tokens = append(seq.Tokens, tok)
		changed = append(changed, seq)
		switch {
		case tok == 9:
			s.finish(seq, llm.FinishStop)
		case seq.NumOutput() >= seq.MaxTokens:
			s.finish(seq, llm.FinishLength)
		}
	}
	return changed, failed
}

func (s *stepper) Cancel(id int) error {
	for _, seq := range s.seqs {
		if seq.ID == id {
			s.finish(seq, llm.FinishCancelled)
			return nil
		}
	}
	return errors.New("no such request")
}

func (s *stepper) HasWork() bool { return len(s.seqs) > 0 }

// pages is the stepper's allocator as the BatchEngine sees it: 8 pages of
// 4 positions, one held by each running request.
type pages struct{ s *stepper }

func (p pages) PageSize() int { return 4 }
func (p pages) NumPages() int { return 8 }
func (p pages) NumFreePages() int {
	n := 8
	for _, seq := range p.s.seqs {
		if seq.Status == llm.SeqRunning {
			n--
		}
	}
	return n
}
func (p pages) Allocate(*llm.Sequence, int) error { return errors.New("not used") }
func (p pages) Free(*llm.Sequence) error          { return errors.New("not used") }

func newBatch(t *testing.T, s *stepper, running, queue int) *BatchEngine {
	t.Helper()
	e, err := NewBatchEngine(BatchConfig{Engine: s, Blocks: pages{s}, MaxContext: 12, MaxRunning: running, QueueSize: queue,
		NewSampler: func(float64, float64, uint64) llm.Sampler { return greedy{} }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func TestBatchEngineStreams(t *testing.T) {
	s := &stepper{}
	e := newBatch(t, s, 4, 4)
	for _, tc := range []struct {
		prompt    []int
		maxTokens int
		want      []int
		finish    string
		count     int
	}{
		{[]int{1, 2, 5}, 10, []int{6, 7, 8}, FinishStop, 4}, // 9 ends the reply and is not sent
		{[]int{1, 2, 5}, 2, []int{6, 7}, FinishLength, 2},
	} {
		ch, err := e.Submit(context.Background(), Request{Prompt: tc.prompt, MaxTokens: tc.maxTokens, TopP: 1})
		if err != nil {
			t.Fatal(err)
		}
		got, last := collect(t, ch)
		if !slices.Equal(got, tc.want) || last.Finish != tc.finish || last.CompletionTokens != tc.count || last.PromptTokens != len(tc.prompt) || last.Err != nil {
			t.Errorf("prompt %v, max %d: tokens %v, %+v; want %v, finish %s, %d tokens", tc.prompt, tc.maxTokens, got, last, tc.want, tc.finish, tc.count)
		}
	}
	// Several at once: each gets its own tokens.
	var wg sync.WaitGroup
	for _, start := range []int{0, 2, 4} {
		ch, err := e.Submit(context.Background(), Request{Prompt: []int{start}, MaxTokens: 3, TopP: 1})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, last := collect(t, ch)
			if want := []int{start + 1, start + 2, start + 3}; !slices.Equal(got, want) || last.Finish != FinishLength {
				t.Errorf("prompt %d among others: %v %+v; want %v", start, got, last, want)
			}
		}()
	}
	wg.Wait()
}

func TestBatchEngineFailures(t *testing.T) {
	s := &stepper{}
	e := newBatch(t, s, 4, 4)
	// A step that fails ends its requests with the error; a panic of the
	// model ends every request in the engine; both leave it serving.
	for _, tc := range []struct {
		prompt []int
		want   []int
		err    string
	}{
		{[]int{8}, []int{9}, ""}, // 9 is the end: no token, finish stop
		{[]int{9}, []int{10}, "token 11 fails the step"},
		{[]int{11}, []int{12}, "token 13 is unlucky"},
		{[]int{1}, []int{2, 3}, ""},
	} {
		ch, err := e.Submit(context.Background(), Request{Prompt: tc.prompt, MaxTokens: 2, TopP: 1})
		if err != nil {
			t.Fatal(err)
		}
		got, last := collect(t, ch)
		if tc.err == "" {
			if last.Err != nil || !last.Done {
				t.Errorf("prompt %v: %+v, want no error", tc.prompt, last)
			}
			if tc.prompt[0] == 8 && (len(got) != 0 || last.Finish != FinishStop || last.CompletionTokens != 1) {
				t.Errorf("prompt 8: %v %+v; want no token, finish stop, 1 completion token", got, last)
			}
			continue
		}
		if !slices.Equal(got, tc.want) || last.Err == nil || !strings.Contains(last.Err.Error(), tc.err) {
			t.Errorf("prompt %v: %v, %+v; want %v and an error with %q", tc.prompt, got, last, tc.want, tc.err)
		}
	}
	// The engine refuses a request (too many pages): its stream says so.
	ch, err := e.Submit(context.Background(), Request{Prompt: []int{1, 1, 1, 1, 1, 1, 1}, MaxTokens: 2, TopP: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, last := collect(t, ch); last.Err == nil || !strings.Contains(last.Err.Error(), "pages") {
		t.Errorf("a request the engine refuses: %+v", last)
	}
	// Refused before the engine sees them.
	for _, req := range []Request{{Prompt: make([]int, 12), MaxTokens: 1, TopP: 1}, {MaxTokens: 1, TopP: 1}, {Prompt: []int{1}, TopP: 1}} {
		if _, err := e.Submit(context.Background(), req); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("prompt of %d, max %d: %v; want ErrInvalidRequest", len(req.Prompt), req.MaxTokens, err)
		}
	}
	if _, err := NewBatchEngine(BatchConfig{Engine: s, Blocks: pages{s}, MaxContext: 64, MaxRunning: 1}); err == nil || !strings.Contains(err.Error(), "cannot hold one request") {
		t.Errorf("a pool of 8 pages of 4 for a context of 64: %v; want an error", err)
	}
}

func TestBatchEngineQueueCancelAndStats(t *testing.T) {
	s := &stepper{gate: make(chan struct{})}
	e := newBatch(t, s, 1, 1)
	open := sync.OnceFunc(func() { close(s.gate) })
	t.Cleanup(open) // before Close, which waits for the step in flight
	ctx1, cancel1 := context.WithCancel(context.Background())
	first, err := e.Submit(ctx1, Request{Prompt: []int{0}, MaxTokens: 8, TopP: 1, Temperature: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	second, err := e.Submit(ctx2, Request{Prompt: []int{2}, MaxTokens: 8, TopP: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Submit(context.Background(), Request{Prompt: []int{1}, MaxTokens: 1, TopP: 1}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a third request with one running and one waiting: %v; want ErrQueueFull", err)
	}
	s.gate <- struct{}{} // the first step
	if ev := <-first; ev.Token != 1 {
		t.Fatalf("first token %+v, want 1", ev)
	}
	// The second request joined the first step or waits for the next.
	waitUntil(t, func() bool {
		st := e.Stats()
		return st.Running >= 1 && st.Running+st.Waiting == 2 && st.KVPagesUsed == st.Running && st.KVPagesTotal == 8
	})
	// The first client goes away: its stream closes without a Done event,
	// and its page is free before the next step.
	cancel1()
	go func() { s.gate <- struct{}{} }()
	for ev := range first {
		if ev.Done {
			t.Errorf("a cancelled request got its Done event %+v", ev)
		}
	}
	waitUntil(t, func() bool {
		st := e.Stats()
		return st.Running == 1 && st.Waiting == 0 && st.KVPagesUsed == 1
	})
	cancel2()
	go func() { s.gate <- struct{}{} }()
	for range second {
	}
	waitUntil(t, func() bool { return e.Stats() == Stats{KVPagesTotal: 8} })
	// The queue has room again.
	open()
	third, err := e.Submit(context.Background(), Request{Prompt: []int{1}, MaxTokens: 1, TopP: 1})
	if err != nil {
		t.Fatal(err)
	}
	collect(t, third)
	e.Close()
	if len(s.samplers) != 3 || s.samplers[0] == nil || s.samplers[1] != nil || s.samplers[2] != nil {
		t.Errorf("samplers of the requests at temperature 0.5, 0, 0: %v; want one for the first only", s.samplers)
	}
	if _, err := e.Submit(context.Background(), Request{Prompt: []int{1}, MaxTokens: 1, TopP: 1}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("Submit after Close: %v; want ErrQueueFull", err)
	}
}

// TestEnginesRefuseHugeQueues checks that a queue or a batch past the
// limits is an error, not a panic of make nor gigabytes of channel.
func TestEnginesRefuseHugeQueues(t *testing.T) {
	s := &stepper{}
	for _, tc := range []struct {
		name           string
		running, queue int
		want           string
	}{
		{"queue_past_the_limit", 1, QueueLimit + 1, "QueueSize must be from 0 to"},
		{"queue_past_makechan", 1, 9_000_000_000_000_000_000, "QueueSize must be from 0 to"},
		{"running_past_the_limit", RunningLimit + 1, 1, "MaxRunning must be from 1 to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewBatchEngine(BatchConfig{Engine: s, Blocks: pages{s}, MaxContext: 12, MaxRunning: tc.running, QueueSize: tc.queue})
			if err == nil {
				e.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewBatchEngine(MaxRunning %d, QueueSize %d): %v; want an error with %q", tc.running, tc.queue, err, tc.want)
			}
		})
	}
	for _, queue := range []int{QueueLimit + 1, 9_000_000_000_000_000_000} {
		e, err := NewSerialEngine(SerialConfig{Model: &counter{}, NewSampler: func(float64, float64, uint64) llm.Sampler { return greedy{} },
			LogProbs: identity, MaxContext: 12, QueueSize: queue})
		if err == nil {
			e.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "QueueSize must be at most") {
			t.Errorf("NewSerialEngine(QueueSize %d): %v; want an error", queue, err)
		}
	}
	// The limits themselves are accepted.
	e, err := NewBatchEngine(BatchConfig{Engine: s, Blocks: pages{s}, MaxContext: 12, MaxRunning: RunningLimit, QueueSize: QueueLimit})
	if err != nil {
		t.Fatalf("NewBatchEngine at the limits: %v", err)
	}
	e.Close()
}
