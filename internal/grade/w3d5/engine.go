package w3d5

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/serving"
)

// scripted is an engine that answers every request with the same tokens,
// so that a check knows exactly what the handler must make of them: the
// script (cut at MaxTokens, finish "length"), then an end-of-sequence
// token (finish "stop", counted in the usage). It keeps every request it
// was given and whether its context was cancelled.
type scripted struct {
	script     []int
	maxContext int
	delay      time.Duration // between two tokens
	full       bool          // refuse every request with ErrQueueFull

	mu        sync.Mutex
	requests  []serving.Request
	cancelled int // requests whose context ended before their stream did
	sent      int // tokens delivered, all requests together
}

func (s *scripted) MaxContext() int { return s.maxContext }

func (s *scripted) Stats() serving.Stats { return serving.Stats{} }

func (s *scripted) Submit(ctx context.Context, req serving.Request) (<-chan serving.Event, error) {
	if s.full {
		return nil, fmt.Errorf("scripted engine: %w", serving.ErrQueueFull)
	}
	if err := serving.CheckRequest(req, s.maxContext); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	out := make(chan serving.Event)
	go func() {
		defer close(out)
		send := func(ev serving.Event) bool {
			if s.delay > 0 {
				select {
				case <-time.After(s.delay):
				case <-ctx.Done():
				}
			}
			select {
			case out <- ev:
				if !ev.Done {
					s.mu.Lock()
					s.sent++
					s.mu.Unlock()
				}
				return true
			case <-ctx.Done():
				s.mu.Lock()
				s.cancelled++
				s.mu.Unlock()
				return false
			}
		}
		for i, tok := range s.script {
			if i == req.MaxTokens {
				send(serving.Event{Done: true, Finish: serving.FinishLength, PromptTokens: len(req.Prompt), CompletionTokens: i})
				return
			}
			if !send(serving.Event{Token: tok}) {
				return
			}
		}
		// The end-of-sequence token: counted, not sent.
		n := len(s.script) + 1
		if n > req.MaxTokens {
			send(serving.Event{Done: true, Finish: serving.FinishLength, PromptTokens: len(req.Prompt), CompletionTokens: req.MaxTokens})
			return
		}
		send(serving.Event{Done: true, Finish: serving.FinishStop, PromptTokens: len(req.Prompt), CompletionTokens: n})
	}()
	return out, nil
}

func (s *scripted) last() serving.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return serving.Request{}
	}
	return s.requests[len(s.requests)-1]
}

func (s *scripted) sentTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

func (s *scripted) cancels() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancelled
}
