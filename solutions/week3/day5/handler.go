package day5

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/serving"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// NewHandler serves the OpenAI API over cfg.Engine:
//
//	POST /v1/chat/completions   chat, streamed (server-sent events) or not
//	POST /v1/completions        plain text completion, streamed or not
//	GET  /v1/models             the one model, and GET /v1/models/{id}
//
// A chat's messages are tokenized with Tokenizer.EncodeChat, so text a
// client writes never becomes a control token. Every mistake is answered
// with the OpenAI error object and a 4xx: 400 for a malformed or invalid
// body or a prompt past the context, 404 for another model or path, 405
// for a wrong method, 413 for a body over MaxBodyBytes, 429 with
// Retry-After when the engine's queue is full. A client that goes away
// cancels its request.
func NewHandler(cfg Config) http.Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	return &handler{cfg: cfg, created: time.Now().Unix()}
}

type handler struct {
	cfg     Config
	created int64 // when the model was loaded, for /v1/models
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/v1/chat/completions":
		if h.method(w, r, http.MethodPost) {
			h.chat(w, r)
		}
	case p == "/v1/completions":
		if h.method(w, r, http.MethodPost) {
			h.completion(w, r)
		}
	case p == "/v1/models":
		if h.method(w, r, http.MethodGet) {
			writeJSON(w, serving.ModelList{Object: "list", Data: []serving.Model{h.model()}})
		}
	case strings.HasPrefix(p, "/v1/models/"):
		if !h.method(w, r, http.MethodGet) {
			return
		}
		if id := strings.TrimPrefix(p, "/v1/models/"); id != h.cfg.ModelID {
			serving.WriteError(w, h.unknownModel(id))
			return
		}
		writeJSON(w, h.model())
	default:
		serving.WriteError(w, &APIError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found",
			Message: fmt.Sprintf("no route %s", p)})
	}
}

func (h *handler) model() serving.Model {
	return serving.Model{ID: h.cfg.ModelID, Object: "model", Created: h.created, OwnedBy: "tinyllm"}
}

func (h *handler) unknownModel(id string) *APIError {
	return &APIError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "model", Code: "model_not_found",
		Message: fmt.Sprintf("the model %q does not exist: this server serves %q", serving.Clip(id), h.cfg.ModelID)}
}

// method answers 405 unless r uses want; HEAD goes wherever GET does
// (net/http sends it the GET answer's headers, without the body).
func (h *handler) method(w http.ResponseWriter, r *http.Request, want string) bool {
	allow := want
	if want == http.MethodGet {
		if r.Method == http.MethodHead {
			return true
		}
		allow = "GET, HEAD"
	}
	if r.Method == want {
		return true
	}
	w.Header().Set("Allow", allow)
	serving.WriteError(w, &APIError{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error",
		Message: fmt.Sprintf("%s needs %s, not %s", r.URL.Path, want, r.Method)})
	return false
}

// body reads a request body of at most MaxBodyBytes.
func (h *handler) body(w http.ResponseWriter, r *http.Request) ([]byte, *APIError) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &APIError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error",
				Message: fmt.Sprintf("the request body is over the limit of %d bytes", tooBig.Limit)}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) { // the server's ReadTimeout: the client stalled
			return nil, &APIError{Status: http.StatusRequestTimeout, Type: "invalid_request_error",
				Message: "the request body did not arrive in time"}
		}
		return nil, serving.InvalidRequest("", "reading the request body: "+err.Error())
	}
	return b, nil
}

// job is a parsed request of either endpoint, tokenized.
type job struct {
	prompt       []int
	promptParam  string // the field that holds the prompt: "messages" or "prompt"
	maxTokens    int    // 0: what the context leaves
	temperature  float64
	topP         float64
	seed         *int64
	stops        []string
	stream       bool
	includeUsage bool
}

func (h *handler) chat(w http.ResponseWriter, r *http.Request) {
	var req *ChatRequest
	if !h.parse(w, r, func(b []byte) (model string, err error) {
		if req, err = ParseChatRequest(b); err != nil {
			return "", err
		}
		return req.Model, nil
	}) {
		return
	}
	msgs := make([]tokenizer.Message, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
	}
	// EncodeChat, never Encode of the rendered template: a "<|im_end|>"
	// typed in a message must stay text, not end the turn.
	prompt, err := h.cfg.Tokenizer.EncodeChat(msgs, true)
	if err != nil {
		serving.WriteError(w, serving.InvalidRequest("messages", err.Error()))
		return
	}
	j := job{prompt: prompt, promptParam: "messages", maxTokens: req.MaxTokens, temperature: req.Temperature, topP: req.TopP,
		seed: req.Seed, stops: req.Stop, stream: req.Stream, includeUsage: req.IncludeUsage}
	h.serve(w, r, j, chatFormat{id: newID("chatcmpl-"), model: h.cfg.ModelID, created: time.Now().Unix()})
}

func (h *handler) completion(w http.ResponseWriter, r *http.Request) {
	var req *CompletionRequest
	if !h.parse(w, r, func(b []byte) (model string, err error) {
		if req, err = ParseCompletionRequest(b); err != nil {
			return "", err
		}
		return req.Model, nil
	}) {
		return
	}
	// EncodeText: special tokens typed in the prompt stay text here too.
	prompt, err := h.cfg.Tokenizer.EncodeText(req.Prompt)
	if err != nil {
		serving.WriteError(w, serving.InvalidRequest("prompt", err.Error()))
		return
	}
	if len(prompt) == 0 {
		serving.WriteError(w, serving.InvalidRequest("prompt", "the prompt is empty"))
		return
	}
	j := job{prompt: prompt, promptParam: "prompt", maxTokens: req.MaxTokens, temperature: req.Temperature, topP: req.TopP,
		seed: req.Seed, stops: req.Stop, stream: req.Stream, includeUsage: req.IncludeUsage}
	h.serve(w, r, j, completionFormat{id: newID("cmpl-"), model: h.cfg.ModelID, created: time.Now().Unix()})
}

// parse reads the body, parses it with parse (which returns the model
// asked for) and checks the model. On a mistake it answers the client and
// returns false.
func (h *handler) parse(w http.ResponseWriter, r *http.Request, parse func(body []byte) (model string, err error)) bool {
	b, apiErr := h.body(w, r)
	if apiErr != nil {
		serving.WriteError(w, apiErr)
		return false
	}
	model, err := parse(b)
	if err != nil {
		serving.WriteError(w, asAPIError(err))
		return false
	}
	if model != h.cfg.ModelID {
		serving.WriteError(w, h.unknownModel(model))
		return false
	}
	return true
}

// asAPIError keeps a parser's *APIError and makes anything else a 400.
func asAPIError(err error) *APIError {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr
	}
	return serving.InvalidRequest("", err.Error())
}

// format writes one endpoint's responses: chat completions and text
// completions differ only in their JSON.
type format interface {
	chunk(text string, first bool, finish *string) any
	usageChunk(u serving.Usage) any
	whole(text, finish string, u serving.Usage) any
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, j job, f format) {
	limit := h.cfg.Engine.MaxContext()
	if len(j.prompt) >= limit {
		serving.WriteError(w, &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: j.promptParam, Code: "context_length_exceeded",
			Message: fmt.Sprintf("this model's maximum context length is %d tokens, and the prompt is %d tokens: shorten it", limit, len(j.prompt))})
		return
	}
	maxTokens := limit - len(j.prompt)
	if j.maxTokens > 0 {
		maxTokens = min(maxTokens, j.maxTokens)
	}
	seed := rand.Uint64()
	if j.seed != nil {
		seed = uint64(*j.seed)
	}
	// The request's context ends when the client goes away, and when a
	// stop sequence ends the reply: either way the engine stops at once.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	events, err := h.cfg.Engine.Submit(ctx, serving.Request{Prompt: j.prompt, MaxTokens: maxTokens,
		Temperature: j.temperature, TopP: j.topP, Seed: seed})
	switch {
	case errors.Is(err, serving.ErrQueueFull):
		w.Header().Set("Retry-After", "1")
		serving.WriteError(w, &APIError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "queue_full",
			Message: "the server is busy: too many requests are waiting; retry in a moment"})
		return
	case errors.Is(err, serving.ErrInvalidRequest):
		serving.WriteError(w, serving.InvalidRequest("", err.Error()))
		return
	case err != nil:
		serving.WriteError(w, &APIError{Status: http.StatusServiceUnavailable, Type: "server_error", Message: err.Error()})
		return
	}
	g := generation{events: events, dec: h.cfg.Tokenizer.NewStreamDecoder(), stops: NewStopBuffer(j.stops), cancel: cancel, prompt: len(j.prompt)}
	if !j.stream {
		var sb strings.Builder
		finish, usage, err := g.run(func(s string) error { sb.WriteString(s); return nil })
		if err != nil {
			if r.Context().Err() == nil { // nobody to answer if the client left
				serving.WriteError(w, &APIError{Status: http.StatusServiceUnavailable, Type: "server_error", Message: err.Error()})
			}
			return
		}
		writeJSON(w, f.whole(sb.String(), finish, usage))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // a proxy in front must not buffer the stream
	w.WriteHeader(http.StatusOK)
	if WriteSSE(w, f.chunk("", true, nil)) != nil {
		return
	}
	finish, usage, err := g.run(func(s string) error { return WriteSSE(w, f.chunk(s, false, nil)) })
	if err != nil {
		if r.Context().Err() == nil {
			// The status is sent already: the error goes in the stream.
			WriteSSE(w, map[string]any{"error": &APIError{Type: "server_error", Message: err.Error()}})
			WriteSSEDone(w)
		}
		return
	}
	if WriteSSE(w, f.chunk("", false, &finish)) != nil {
		return
	}
	if j.includeUsage && WriteSSE(w, f.usageChunk(usage)) != nil {
		return
	}
	WriteSSEDone(w)
}

// generation turns an engine's token stream into text: decoded as UTF-8
// completes, cut at the first stop sequence.
type generation struct {
	events <-chan serving.Event
	dec    *tokenizer.StreamDecoder
	stops  *StopBuffer
	cancel context.CancelFunc
	prompt int
}

// errGone is the error of a stream that ended without its Done event: the
// request was cancelled.
var errGone = errors.New("the request was cancelled")

// run reads the whole stream, passing text to emit, and returns the finish
// reason and the token counts.
func (g *generation) run(emit func(string) error) (finish string, u serving.Usage, err error) {
	n := 0
	show := func(text string) (stopped bool, err error) {
		out, stopped := g.stops.Push(text)
		if out != "" {
			err = emit(out)
		}
		return stopped, err
	}
	for ev := range g.events {
		if ev.Done {
			if ev.Err != nil {
				return "", u, ev.Err
			}
			stopped, err := show(g.dec.Flush())
			if err == nil && !stopped {
				if rest := g.stops.Flush(); rest != "" {
					err = emit(rest)
				}
			}
			finish = ev.Finish
			if stopped {
				finish = serving.FinishStop
			}
			return finish, usage(g.prompt, ev.CompletionTokens), err
		}
		n++
		text, err := g.dec.Add(ev.Token)
		if err != nil {
			g.cancel()
			return "", u, fmt.Errorf("decoding the reply: %w", err)
		}
		stopped, err := show(text)
		if err != nil {
			g.cancel() // the client is gone
			return "", u, err
		}
		if stopped {
			g.cancel() // no need for the rest of the reply
			return serving.FinishStop, usage(g.prompt, n), nil
		}
	}
	return "", u, errGone
}

func usage(prompt, completion int) serving.Usage {
	return serving.Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

type chatFormat struct {
	id, model string
	created   int64
}

func (c chatFormat) chunk(text string, first bool, finish *string) any {
	d := serving.ChatDelta{Content: text}
	if first {
		d.Role = "assistant"
	}
	return serving.ChatCompletionChunk{ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model,
		Choices: []serving.ChatChunkChoice{{Delta: d, FinishReason: finish}}}
}

func (c chatFormat) usageChunk(u serving.Usage) any {
	return serving.ChatCompletionChunk{ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model,
		Choices: []serving.ChatChunkChoice{}, Usage: &u}
}

func (c chatFormat) whole(text, finish string, u serving.Usage) any {
	return serving.ChatCompletion{ID: c.id, Object: "chat.completion", Created: c.created, Model: c.model,
		Choices: []serving.ChatChoice{{Message: ChatMessage{Role: "assistant", Content: text}, FinishReason: finish}}, Usage: &u}
}

type completionFormat struct {
	id, model string
	created   int64
}

func (c completionFormat) chunk(text string, first bool, finish *string) any {
	return serving.Completion{ID: c.id, Object: "text_completion", Created: c.created, Model: c.model,
		Choices: []serving.CompletionChoice{{Text: text, FinishReason: finish}}}
}

func (c completionFormat) usageChunk(u serving.Usage) any {
	return serving.Completion{ID: c.id, Object: "text_completion", Created: c.created, Model: c.model,
		Choices: []serving.CompletionChoice{}, Usage: &u}
}

func (c completionFormat) whole(text, finish string, u serving.Usage) any {
	return serving.Completion{ID: c.id, Object: "text_completion", Created: c.created, Model: c.model,
		Choices: []serving.CompletionChoice{{Text: text, FinishReason: &finish}}, Usage: &u}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	// The response types hold strings and numbers only: Encode cannot
	// fail but for a client that has gone.
	_ = serving.EncodeJSON(w, v)
}

// newID is a response id: prefix and 24 random hex digits.
func newID(prefix string) string {
	return fmt.Sprintf("%s%012x%012x", prefix, rand.Uint64()>>16, rand.Uint64()>>16)
}
