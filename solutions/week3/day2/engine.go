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
	if !e.sched.HasWork() {
		return nil, nil
	}
	batch, err := e.sched.Schedule()
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if len(batch) == 0 {
		// Cannot happen while this scheduler is the only user of the
		// allocator: with nothing running, every page is free, and Add
		// refused requests larger than the pool.
		return nil, fmt.Errorf("engine: %d requests waiting but none fits in %d free pages", len(e.sched.Waiting()), e.sched.blocks.NumFreePages())
	}
	next, err := e.runner.Run(batch)
	if err == nil {
		err = checkNext(batch, next)
	}
	if err != nil {
		failed, ferr := e.sched.Fail(batch, err)
		ids := make([]int, len(failed))
		for i, s := range failed {
			ids[i] = s.ID
		}
		if ferr != nil {
			return failed, fmt.Errorf("engine: the model failed on requests %v: %w (and freeing their pages: %v)", ids, err, ferr)
		}
		return failed, fmt.Errorf("engine: the model failed on requests %v: %w", ids, err)
	}
	changed, err := e.sched.Update(batch, next)
	if err != nil {
		return changed, fmt.Errorf("engine: %w", err)
	}
	return changed, nil
}

// checkNext returns an error unless next has a token for every chunk of
// batch that samples.
func checkNext(batch Batch, next []int) error {
	if len(next) != len(batch) {
		return fmt.Errorf("model runner returned %d tokens for a batch of %d chunks", len(next), len(batch))
	}
	for i, c := range batch {
		if c.Samples() && next[i] < 0 {
			return fmt.Errorf("model runner returned token %d for request %d", next[i], c.Seq.ID)
		}
	}
	return nil
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
