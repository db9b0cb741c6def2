// Package serving holds what the OpenAI-compatible server of Week 3 Day 5
// stands on and what it does not teach: the engine seam the HTTP handler
// talks to, an engine that runs the Week 2 model one request at a time, the
// OpenAI wire types, the Prometheus metrics, the chat page and the routes
// around the day's handler.
//
// The handler (the day's work, in week3/day5) sees an engine only through
// Engine: a request of token ids in, a stream of generated tokens out. The
// Week 2 engine (SerialEngine) and the Week 3 batching engine both sit
// behind it, so the handler does not change when the engine does.
package serving

import (
	"context"
	"errors"

	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// Request is one generation request, in tokens: what the HTTP handler asks
// of an engine once it has parsed and tokenized a client's request.
type Request struct {
	// Prompt is the token ids of the prompt (the chat template already
	// applied). At least one, and shorter than the engine's MaxContext.
	Prompt []int
	// MaxTokens is the most tokens to generate, at least 1. The engine
	// generates fewer when the model's context fills first (finish
	// reason "length").
	MaxTokens int
	// Temperature 0 is greedy decoding; above 0 the engine samples.
	Temperature float64
	// TopP is nucleus sampling's probability mass, in (0, 1].
	TopP float64
	// Seed makes sampling repeatable: the same request with the same seed
	// gives the same tokens.
	Seed uint64
}

// Finish reasons, as the OpenAI API names them.
const (
	FinishStop   = "stop"   // an end-of-sequence token (or a stop sequence, found by the handler)
	FinishLength = "length" // MaxTokens or the model's context reached
)

// Event is one step of a request's stream. Every event but the last carries
// one generated token; the last has Done set and carries the request's
// totals. An end-of-sequence token is not sent as a token: it ends the
// stream with FinishStop.
type Event struct {
	Token int // the generated token id (when !Done)

	Done             bool   // the request is over; no event follows
	Finish           string // FinishStop or FinishLength (when Done and Err == nil)
	PromptTokens     int    // len(Request.Prompt) (when Done)
	CompletionTokens int    // tokens generated, an end-of-sequence token included (when Done)
	Err              error  // the engine failed on this request (when Done)
}

// Stats is a snapshot of an engine's load, for /metrics.
type Stats struct {
	Waiting int // requests queued, not started
	Running int // requests being generated
	// KVPagesUsed and KVPagesTotal are the paged KV cache's pages in use
	// and in all. An engine without a page pool (the Week 2 engine keeps
	// one dense cache per request) reports 0 and 0.
	KVPagesUsed, KVPagesTotal int
	// PrefixCacheHitRate is the share of prompt tokens whose keys and
	// values were found in the prefix cache, in [0, 1]; 0 without one.
	PrefixCacheHitRate float64
}

// Engine is what the HTTP handler needs of an inference engine.
type Engine interface {
	// Submit queues a request and returns its stream of events. The
	// channel is closed after the Done event, or, when ctx is cancelled
	// (the client went away, or a stop sequence was found), as soon as the
	// engine notices; the engine then stops generating for the request and
	// frees what it held. Submit returns an error that wraps ErrQueueFull
	// when the engine cannot take another request now, and one that wraps
	// ErrInvalidRequest for a request it can never run.
	Submit(ctx context.Context, req Request) (<-chan Event, error)
	// MaxContext is the most positions (prompt and generated tokens) a
	// request may hold.
	MaxContext() int
	// Stats reports the engine's load.
	Stats() Stats
}

// QueueLimit and RunningLimit bound an engine's QueueSize and MaxRunning.
// An engine sets aside room for every request it may hold when it starts,
// so a mistyped limit must not reserve gigabytes (or panic in make); the
// bounds are far above the load one machine running these engines serves.
const (
	QueueLimit   = 1 << 16
	RunningLimit = 1 << 12
)

// ErrQueueFull is wrapped by Submit's error when the queue of waiting
// requests is full: the client should retry later (HTTP 429).
var ErrQueueFull = errors.New("the engine's queue is full")

// ErrInvalidRequest is wrapped by Submit's error for a request the engine
// can never run: an empty prompt, one past the context, MaxTokens below 1.
var ErrInvalidRequest = errors.New("invalid request")

// HandlerConfig is what the day's handler (week3/day5's NewHandler) serves.
type HandlerConfig struct {
	Engine    Engine
	Tokenizer *tokenizer.Tokenizer
	// ModelID is the model's name in the API (its folder's name); a
	// request for another model is a 404.
	ModelID string
	// MaxBodyBytes bounds a request body; a larger one is a 413. 0 means
	// 1 MiB.
	MaxBodyBytes int64
}
