package serving

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// BatchConfig configures a BatchEngine.
type BatchConfig struct {
	// Engine is a Week 3 engine (Day 2's step loop over a block manager
	// and a model runner). It is not safe for concurrent use: only the
	// BatchEngine's step loop calls it from now on.
	Engine llm.Engine
	// Blocks is the engine's block allocator, read by the step loop for
	// the page figures of Stats; when it is an llm.PrefixCache, its hit
	// rate too.
	Blocks llm.BlockAllocator
	// NewSampler returns the sampler of a request with a temperature above
	// 0 (set as its sequence's llm.Sequence.Sampler, which the model runner
	// uses before its own). Requests at temperature 0 get no sampler of
	// their own: the runner decodes them greedily. nil: every request is
	// decoded greedily, whatever its temperature.
	NewSampler func(temperature, topP float64, seed uint64) llm.Sampler
	// MaxContext is the model's context (max_position_embeddings).
	MaxContext int
	// MaxRunning is the most requests the engine runs at once (its
	// EngineConfig.MaxNumSeqs); QueueSize the most that wait besides. One
	// more than both together is refused with ErrQueueFull. QueueSize 0
	// means 16. They are at most RunningLimit and QueueLimit.
	MaxRunning, QueueSize int
}

// BatchEngine runs a Week 3 engine behind the Engine interface: many
// requests at once, each step's tokens streamed to their requests as the
// step produces them.
//
// One goroutine, the step loop, owns the engine and its block allocator.
// Submit hands it requests through a channel; the loop adds them to the
// engine, runs steps while there is work, sends each new token to its
// request's stream, cancels in the engine the requests whose context is
// done (freeing their pages at once), and copies the figures Stats reports,
// so that /metrics never reads the allocator from its own goroutine.
type BatchEngine struct {
	cfg      BatchConfig
	pageSize int
	intake   chan *batchJob
	admitted atomic.Int32 // accepted requests whose stream is not closed yet
	stats    atomic.Pointer[Stats]
	// mu orders Submit's hand-over before Close's stop: once stop is
	// closed, no request enters intake that the loop would not see.
	mu   sync.RWMutex
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type batchJob struct {
	ctx    context.Context
	req    Request
	events chan Event
	seq    *llm.Sequence
	sent   int // output tokens sent so far
}

// NewBatchEngine starts the step loop; Close stops it. The allocator must
// hold at least one request of the whole context, so that the engine never
// refuses a request that passed CheckRequest.
func NewBatchEngine(cfg BatchConfig) (*BatchEngine, error) {
	switch {
	case cfg.Engine == nil || cfg.Blocks == nil:
		return nil, fmt.Errorf("serving: NewBatchEngine needs an engine and its block allocator")
	case cfg.MaxContext < 2:
		return nil, fmt.Errorf("serving: NewBatchEngine: MaxContext must be at least 2, got %d", cfg.MaxContext)
	case cfg.MaxRunning < 1 || cfg.MaxRunning > RunningLimit:
		return nil, fmt.Errorf("serving: NewBatchEngine: MaxRunning must be from 1 to %d, got %d", RunningLimit, cfg.MaxRunning)
	case cfg.QueueSize < 0 || cfg.QueueSize > QueueLimit:
		return nil, fmt.Errorf("serving: NewBatchEngine: QueueSize must be from 0 to %d, got %d", QueueLimit, cfg.QueueSize)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 16
	}
	ps := cfg.Blocks.PageSize()
	if need := llm.PagesFor(cfg.MaxContext-1, ps); cfg.Blocks.NumPages() < need {
		return nil, fmt.Errorf("serving: the KV cache's %d pages of %d positions cannot hold one request of the model's context of %d (%d pages)",
			cfg.Blocks.NumPages(), ps, cfg.MaxContext, need)
	}
	e := &BatchEngine{cfg: cfg, pageSize: ps, intake: make(chan *batchJob, cfg.MaxRunning+cfg.QueueSize),
		stop: make(chan struct{}), done: make(chan struct{})}
	e.stats.Store(&Stats{KVPagesTotal: cfg.Blocks.NumPages()})
	go e.loop()
	return e, nil
}

// MaxContext implements Engine.
func (e *BatchEngine) MaxContext() int { return e.cfg.MaxContext }

// Stats implements Engine: the figures the step loop copied after its last
// change, and the requests submitted since that it has not taken yet.
func (e *BatchEngine) Stats() Stats {
	s := *e.stats.Load()
	s.Waiting += len(e.intake)
	return s
}

// Submit implements Engine. A request is refused with ErrQueueFull when
// MaxRunning + QueueSize requests are in the engine already (running,
// waiting or being handed over). Each request gets a stream with room for
// every event it can produce, so the step loop never waits for a slow
// reader.
func (e *BatchEngine) Submit(ctx context.Context, req Request) (<-chan Event, error) {
	if err := CheckRequest(req, e.cfg.MaxContext); err != nil {
		return nil, err
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	select {
	case <-e.stop:
		return nil, fmt.Errorf("serving: the engine is closed: %w", ErrQueueFull)
	default:
	}
	limit := int32(cap(e.intake))
	for {
		n := e.admitted.Load()
		if n >= limit {
			return nil, fmt.Errorf("serving: %d requests are running or waiting: %w", n, ErrQueueFull)
		}
		if e.admitted.CompareAndSwap(n, n+1) {
			break
		}
	}
	// The most events: one per token generated, and the Done event.
	n := min(req.MaxTokens, e.cfg.MaxContext-len(req.Prompt)) + 1
	j := &batchJob{ctx: ctx, req: req, events: make(chan Event, n)}
	e.intake <- j // never blocks: at most cap(intake) are admitted
	return j.events, nil
}

// Close stops the step loop. Requests still running or waiting are
// cancelled in the engine (their pages freed) and their streams closed
// without a Done event.
func (e *BatchEngine) Close() {
	e.mu.Lock()
	e.once.Do(func() { close(e.stop) })
	e.mu.Unlock()
	<-e.done
}

// end closes j's stream (after ev, when ev is not nil) and gives its place
// in the queue back.
func (e *BatchEngine) end(j *batchJob, ev *Event) {
	if ev != nil {
		j.events <- *ev // there is room: see Submit
	}
	close(j.events)
	e.admitted.Add(-1)
}

func (e *BatchEngine) loop() {
	defer close(e.done)
	jobs := map[int]*batchJob{} // by sequence id
	for {
		// Take new requests: wait for one when the engine is idle.
		if len(jobs) == 0 {
			select {
			case <-e.stop:
				e.shutdown(jobs)
				return
			case j := <-e.intake:
				e.add(jobs, j)
			}
		}
		for more := true; more; {
			select {
			case j := <-e.intake:
				e.add(jobs, j)
			default:
				more = false
			}
		}
		select {
		case <-e.stop:
			e.shutdown(jobs)
			return
		default:
		}
		// Requests whose client went away (or found a stop sequence)
		// leave the engine before the next step, freeing their pages.
		for id, j := range jobs {
			if j.ctx.Err() != nil {
				e.cancel(jobs, id, nil)
			}
		}
		e.copyStats(jobs) // new requests wait, cancelled ones are gone
		if e.cfg.Engine.HasWork() {
			e.step(jobs)
		} else {
			// Requests the engine no longer has, yet never reported
			// finished: end them rather than wait for them forever.
			for id, j := range jobs {
				e.cancel(jobs, id, &Event{Done: true, PromptTokens: len(j.req.Prompt), CompletionTokens: j.seq.NumOutput(),
					Err: errors.New("serving: the engine dropped the request")})
			}
		}
		e.copyStats(jobs)
	}
}

// add puts j's request into the engine, or ends it at once: cancelled
// while it was handed over, or refused by the engine.
func (e *BatchEngine) add(jobs map[int]*batchJob, j *batchJob) {
	if j.ctx.Err() != nil {
		e.end(j, nil)
		return
	}
	seq, err := e.cfg.Engine.AddRequest(j.req.Prompt, j.req.MaxTokens)
	if err != nil {
		e.end(j, &Event{Done: true, PromptTokens: len(j.req.Prompt), Err: fmt.Errorf("serving: %w", err)})
		return
	}
	if j.req.Temperature > 0 && e.cfg.NewSampler != nil {
		seq.Sampler = e.cfg.NewSampler(j.req.Temperature, j.req.TopP, j.req.Seed)
	}
	j.seq = seq
	jobs[seq.ID] = j
}

// cancel takes request id out of the engine, which frees its pages, and
// ends its stream: with ev, or with no Done event when ev is nil (its
// client has gone).
func (e *BatchEngine) cancel(jobs map[int]*batchJob, id int, ev *Event) {
	j := jobs[id]
	delete(jobs, id)
	if !j.seq.Finished() {
		if err := e.cfg.Engine.Cancel(id); err != nil && ev == nil {
			ev = &Event{Done: true, PromptTokens: len(j.req.Prompt), CompletionTokens: j.seq.NumOutput(), Err: fmt.Errorf("serving: %w", err)}
		}
	}
	e.end(j, ev)
}

// step runs one step of the engine and streams what it produced. A panic of
// the model fails every request in the engine (the step's batch is not
// known once the engine has panicked), cancelling them so that their pages
// are freed; the server goes on.
func (e *BatchEngine) step(jobs map[int]*batchJob) {
	var changed []*llm.Sequence
	var stepErr error
	panicked := func() (p any) {
		defer func() { p = recover() }()
		changed, stepErr = e.cfg.Engine.Step()
		return nil
	}()
	if panicked != nil {
		err := fmt.Errorf("serving: the model failed: %v", panicked)
		for id, j := range jobs {
			e.cancel(jobs, id, &Event{Done: true, PromptTokens: len(j.req.Prompt), CompletionTokens: j.seq.NumOutput(), Err: err})
		}
		return
	}
	if stepErr != nil && len(changed) == 0 {
		// The engine could not schedule (not the model's failure, which
		// finishes the batch's requests): end every request rather than
		// retry the same step forever.
		err := fmt.Errorf("serving: %w", stepErr)
		for id, j := range jobs {
			e.cancel(jobs, id, &Event{Done: true, PromptTokens: len(j.req.Prompt), CompletionTokens: j.seq.NumOutput(), Err: err})
		}
		return
	}
	for _, seq := range changed {
		j := jobs[seq.ID]
		if j == nil {
			continue // not ours: cannot happen while the loop owns the engine
		}
		out := seq.Output()
		for ; j.sent < len(out); j.sent++ {
			if seq.Finish == llm.FinishStop && j.sent == len(out)-1 {
				break // the end-of-sequence token is not sent as text
			}
			j.events <- Event{Token: out[j.sent]}
		}
		if !seq.Finished() {
			continue
		}
		done := Event{Done: true, PromptTokens: seq.NumPrompt, CompletionTokens: seq.NumOutput()}
		switch seq.Finish {
		case llm.FinishStop:
			done.Finish = FinishStop
		case llm.FinishLength:
			done.Finish = FinishLength
		default:
			switch {
			case seq.Err != nil:
				done.Err = fmt.Errorf("serving: the model failed: %w", seq.Err)
			case stepErr != nil:
				done.Err = fmt.Errorf("serving: %w", stepErr)
			default:
				done.Err = fmt.Errorf("serving: the request ended with %q", seq.Finish)
			}
		}
		delete(jobs, seq.ID)
		e.end(j, &done)
	}
}

// copyStats publishes the engine's figures for Stats.
func (e *BatchEngine) copyStats(jobs map[int]*batchJob) {
	s := Stats{KVPagesTotal: e.cfg.Blocks.NumPages()}
	s.KVPagesUsed = s.KVPagesTotal - e.cfg.Blocks.NumFreePages()
	for _, j := range jobs {
		if j.seq.Status == llm.SeqRunning {
			s.Running++
		} else {
			s.Waiting++
		}
	}
	if pc, ok := e.cfg.Blocks.(llm.PrefixCache); ok {
		s.PrefixCacheHitRate = pc.Stats().HitRate()
	}
	e.stats.Store(&s)
}

// shutdown cancels every request in the engine and every one not taken yet.
func (e *BatchEngine) shutdown(jobs map[int]*batchJob) {
	for id := range jobs {
		e.cancel(jobs, id, nil)
	}
	for {
		select {
		case j := <-e.intake:
			e.end(j, nil)
		default:
			e.copyStats(jobs)
			return
		}
	}
}
