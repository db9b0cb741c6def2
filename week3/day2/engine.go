package day2

import (
	"fmt"

	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// Engine is the step loop: it takes requests, and on each Step asks the
// scheduler for a batch, has the model runner compute it, and gives the
// sampled tokens back to the scheduler. It implements llm.Engine.
//
// An Engine is not safe for concurrent use: one goroutine (a server's step
// loop) calls all its methods.
type Engine struct {
	sched  *Scheduler
	runner ModelRunner
	nextID int
}

var _ llm.Engine = (*Engine)(nil)

// NewEngine returns an engine with no requests, or an error if cfg is not a
// working configuration (see NewScheduler) or runner is nil.
func NewEngine(cfg EngineConfig, runner ModelRunner, blocks BlockAllocator) (*Engine, error) {
	if runner == nil {
		return nil, fmt.Errorf("engine: no model runner")
	}
	sched, err := NewScheduler(cfg, blocks)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return &Engine{sched: sched, runner: runner}, nil
}

// Scheduler is the engine's scheduler, for inspecting its queues.
func (e *Engine) Scheduler() *Scheduler { return e.sched }

// AddRequest queues a request of prompt that generates at most maxTokens
// tokens, with the next free id. A request that can never run is refused
// with an error and allocates nothing (see Scheduler.Add).
func (e *Engine) AddRequest(prompt []int, maxTokens int) (*Sequence, error) {
	seq := llm.NewSequence(e.nextID, prompt, maxTokens)
	if err := e.sched.Add(seq); err != nil {
		return nil, err
	}
	e.nextID++
	return seq, nil
}

// Step runs one batch and returns the requests it changed: each gained a
// token, or finished, or both. With nothing to do it returns nothing. When
// the model runner fails, the requests of the batch finish with FinishError,
// their pages are freed, and Step returns them with the runner's error; the
// other requests are not affected.
func (e *Engine) Step() ([]*Sequence, error) {
	// Your code here (W3D2).
	// Schedule, Run, then Update; or Fail when Run returns an error or a
	// result of the wrong length. Wrap the runner's error with %w: the
	// checks look for it with errors.Is.
	panic("TODO(W3D2): implement Engine.Step")
}

// Cancel finishes the waiting or running request id with FinishCancelled
// and frees its pages at once.
func (e *Engine) Cancel(id int) error {
	_, err := e.sched.Cancel(id)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	return nil
}

// HasWork reports whether a request is waiting or running.
func (e *Engine) HasWork() bool { return e.sched.HasWork() }
