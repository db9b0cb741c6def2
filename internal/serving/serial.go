package serving

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// SerialConfig configures a SerialEngine.
type SerialConfig struct {
	// Model is a Week 2 model (with a KV cache). It is used by one
	// goroutine at a time.
	Model llm.CachedModel
	// NewSampler returns the sampler of one request; temperature 0 must
	// give greedy decoding.
	NewSampler func(temperature, topP float64, seed uint64) llm.Sampler
	// LogProbs turns a forward pass's logits into the log-probabilities of
	// its last position, the sampler's input (W1D6's LastLogProbs).
	LogProbs func(logits *tensor.Tensor) *tensor.Tensor
	// EOS are the token ids that end a reply.
	EOS []int
	// MaxContext is the model's context (max_position_embeddings).
	MaxContext int
	// QueueSize is the most requests that wait while one runs; one more
	// is refused with ErrQueueFull. 0 means 16; at most QueueLimit.
	QueueSize int
	// PrefillChunk is the longest piece of a prompt fed in one forward
	// pass; 0 or less: the whole prompt at once.
	PrefillChunk int
}

// SerialEngine runs a Week 2 model behind the Engine interface: one request
// at a time, the others waiting in a bounded queue. It is the engine of
// `tinyllm serve --engine week2` (BatchEngine runs the Week 3 one); the
// handler cannot tell the two apart.
type SerialEngine struct {
	cfg     SerialConfig
	jobs    chan *job
	running atomic.Int32
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

type job struct {
	ctx    context.Context
	req    Request
	events chan Event
}

// NewSerialEngine starts the engine's worker; Close stops it.
func NewSerialEngine(cfg SerialConfig) (*SerialEngine, error) {
	if cfg.Model == nil || cfg.NewSampler == nil || cfg.LogProbs == nil {
		return nil, fmt.Errorf("serving: NewSerialEngine needs a model, a sampler and LogProbs")
	}
	if cfg.MaxContext < 2 {
		return nil, fmt.Errorf("serving: NewSerialEngine: MaxContext must be at least 2, got %d", cfg.MaxContext)
	}
	if cfg.QueueSize > QueueLimit {
		return nil, fmt.Errorf("serving: NewSerialEngine: QueueSize must be at most %d, got %d", QueueLimit, cfg.QueueSize)
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 16
	}
	e := &SerialEngine{cfg: cfg, jobs: make(chan *job, cfg.QueueSize), stop: make(chan struct{}), done: make(chan struct{})}
	go e.work()
	return e, nil
}

// Close stops the worker after the request it is running; waiting requests
// are dropped (their streams are closed without a Done event).
func (e *SerialEngine) Close() {
	e.once.Do(func() { close(e.stop) })
	<-e.done
}

// MaxContext implements Engine.
func (e *SerialEngine) MaxContext() int { return e.cfg.MaxContext }

// Stats implements Engine. The Week 2 engine has no page pool and no prefix
// cache: those figures are 0.
func (e *SerialEngine) Stats() Stats {
	return Stats{Waiting: len(e.jobs), Running: int(e.running.Load())}
}

// Submit implements Engine.
func (e *SerialEngine) Submit(ctx context.Context, req Request) (<-chan Event, error) {
	if err := CheckRequest(req, e.cfg.MaxContext); err != nil {
		return nil, err
	}
	j := &job{ctx: ctx, req: req, events: make(chan Event, 1)}
	select {
	case <-e.stop:
		return nil, fmt.Errorf("serving: the engine is closed: %w", ErrQueueFull)
	default:
	}
	select {
	case e.jobs <- j:
		return j.events, nil
	default:
		return nil, fmt.Errorf("serving: %d requests are waiting: %w", cap(e.jobs), ErrQueueFull)
	}
}

// CheckRequest is the check every engine makes before it queues a request:
// a prompt of at least one token, shorter than the context, MaxTokens at
// least 1, TopP in (0, 1], Temperature not negative.
func CheckRequest(req Request, maxContext int) error {
	switch {
	case len(req.Prompt) == 0:
		return fmt.Errorf("serving: empty prompt: %w", ErrInvalidRequest)
	case len(req.Prompt) >= maxContext:
		return fmt.Errorf("serving: the prompt is %d tokens and the model's context is %d: %w", len(req.Prompt), maxContext, ErrInvalidRequest)
	case req.MaxTokens < 1:
		return fmt.Errorf("serving: MaxTokens must be at least 1, got %d: %w", req.MaxTokens, ErrInvalidRequest)
	case !(req.TopP > 0 && req.TopP <= 1):
		return fmt.Errorf("serving: TopP must be in (0, 1], got %g: %w", req.TopP, ErrInvalidRequest)
	case !(req.Temperature >= 0):
		return fmt.Errorf("serving: Temperature must not be negative, got %g: %w", req.Temperature, ErrInvalidRequest)
	}
	return nil
}

func (e *SerialEngine) work() {
	defer close(e.done)
	for {
		select {
		case <-e.stop:
			for {
				select {
				case j := <-e.jobs:
					close(j.events)
				default:
					return
				}
			}
		case j := <-e.jobs:
			e.running.Store(1)
			e.run(j)
			e.running.Store(0)
		}
	}
}

// run generates one request, sending its events, and stops as soon as its
// context is cancelled. A panic of the model becomes the request's error,
// so one bad request does not take the server down.
func (e *SerialEngine) run(j *job) {
	defer close(j.events)
	if j.ctx.Err() != nil {
		return // cancelled while it waited
	}
	req := j.req
	generated := 0
	final := Event{Done: true, PromptTokens: len(req.Prompt)}
	defer func() {
		if r := recover(); r != nil {
			final.Err = fmt.Errorf("serving: the model failed: %v", r)
			final.CompletionTokens = generated
			send(j, final)
		}
	}()
	maxTokens := min(req.MaxTokens, e.cfg.MaxContext-len(req.Prompt))
	sampler := e.cfg.NewSampler(req.Temperature, req.TopP, req.Seed)
	m := e.cfg.Model
	caches := m.NewCaches()
	chunk := e.cfg.PrefillChunk
	if chunk <= 0 {
		chunk = len(req.Prompt)
	}
	var logits *tensor.Tensor
	for start := 0; start < len(req.Prompt); start += chunk {
		if j.ctx.Err() != nil {
			return
		}
		end := min(start+chunk, len(req.Prompt))
		logits = m.ForwardLast([][]int{req.Prompt[start:end]}, start, caches)
	}
	for {
		next := sampler.Sample(e.cfg.LogProbs(logits))
		generated++
		if slices.Contains(e.cfg.EOS, next) {
			final.Finish = FinishStop
			break
		}
		if !send(j, Event{Token: next}) {
			return
		}
		if generated == maxTokens {
			final.Finish = FinishLength
			break
		}
		if j.ctx.Err() != nil {
			return
		}
		logits = m.ForwardLast([][]int{{next}}, len(req.Prompt)+generated-1, caches)
	}
	final.CompletionTokens = generated
	send(j, final)
}

// send delivers ev unless the request's context is cancelled first.
func send(j *job, ev Event) bool {
	select {
	case j.events <- ev:
		return true
	case <-j.ctx.Done():
		return false
	}
}
