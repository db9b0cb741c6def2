package serving

import (
	"encoding/json"
	"io"
	"net/http"
)

// The OpenAI API's JSON, as far as this server speaks it. Field names and
// shapes follow the API reference of /v1/chat/completions, /v1/completions
// and /v1/models; fields the server does not use are ignored on input and
// absent on output.

// ChatMessage is one turn of a conversation.
type ChatMessage struct {
	Role    string `json:"role"`    // "system", "user" or "assistant"
	Content string `json:"content"` // the text; a list of text parts is joined into it
}

// ChatRequest is a parsed and checked body of POST /v1/chat/completions.
type ChatRequest struct {
	Model    string
	Messages []ChatMessage
	// MaxTokens is max_completion_tokens, or else max_tokens; 0 when the
	// client gave neither (the server then allows what the context has left).
	MaxTokens    int
	Temperature  float64 // default 1, as OpenAI's
	TopP         float64 // default 1
	Seed         *int64  // nil when absent
	Stop         []string
	Stream       bool
	IncludeUsage bool // stream_options.include_usage
}

// CompletionRequest is a parsed and checked body of POST /v1/completions.
type CompletionRequest struct {
	Model        string
	Prompt       string
	MaxTokens    int // default 16, as OpenAI's
	Temperature  float64
	TopP         float64
	Seed         *int64
	Stop         []string
	Stream       bool
	IncludeUsage bool
}

// Usage counts a request's tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// ChatCompletion is the body of a non-streaming chat completion.
type ChatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"` // "chat.completion"
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   *Usage       `json:"usage,omitempty"`
}

// ChatChoice is the one answer of a chat completion.
type ChatChoice struct {
	Index        int         `json:"index"`
	Message      ChatMessage `json:"message"`
	FinishReason string      `json:"finish_reason"`
	Logprobs     *struct{}   `json:"logprobs"` // always null: not supported
}

// ChatCompletionChunk is one server-sent event of a streaming chat
// completion. The last, with stream_options.include_usage, has no choices
// and carries Usage.
type ChatCompletionChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"` // "chat.completion.chunk"
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []ChatChunkChoice `json:"choices"`
	Usage   *Usage            `json:"usage,omitempty"`
}

// ChatChunkChoice is a chunk's piece of the answer.
type ChatChunkChoice struct {
	Index        int       `json:"index"`
	Delta        ChatDelta `json:"delta"`
	FinishReason *string   `json:"finish_reason"` // null until the last content chunk
	Logprobs     *struct{} `json:"logprobs"`
}

// ChatDelta is what a chunk adds to the message: the role in the first
// chunk, text in the others.
type ChatDelta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content"`
}

// Completion is the body of a non-streaming text completion, and, with
// object "text_completion" too, each chunk of a streaming one.
type Completion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"` // "text_completion"
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   *Usage             `json:"usage,omitempty"`
}

// CompletionChoice is a text completion's answer, or a chunk's piece of it.
type CompletionChoice struct {
	Index        int       `json:"index"`
	Text         string    `json:"text"`
	FinishReason *string   `json:"finish_reason"`
	Logprobs     *struct{} `json:"logprobs"`
}

// Model is one entry of GET /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "model"
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// ModelList is the body of GET /v1/models.
type ModelList struct {
	Object string  `json:"object"` // "list"
	Data   []Model `json:"data"`
}

// APIError is an error as the OpenAI API reports it, with the HTTP status
// it is sent with. It is the error type of the request parsers.
type APIError struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`  // "invalid_request_error", "server_error", …
	Param   string `json:"param"` // the offending field, or "" (sent as null)
	Code    string `json:"code"`  // "model_not_found", "context_length_exceeded", …, or "" (sent as null)
}

func (e *APIError) Error() string { return e.Message }

// MarshalJSON writes an empty Param or Code as null, as the OpenAI API
// does: clients test them against null (None in Python), not "".
func (e APIError) MarshalJSON() ([]byte, error) {
	orNull := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return json.Marshal(struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}{e.Message, e.Type, orNull(e.Param), orNull(e.Code)})
}

// InvalidRequest is a 400 invalid_request_error about param.
func InvalidRequest(param, message string) *APIError {
	return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Message: message}
}

// WriteError sends e as {"error": {...}} with its status (500 when it has
// none). It sets no other header; a caller adds Retry-After before it.
func WriteError(w http.ResponseWriter, e *APIError) {
	status := e.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A struct of strings cannot fail to encode; a failed write means the
	// client is gone, and there is nobody left to tell.
	_ = json.NewEncoder(w).Encode(struct {
		Error *APIError `json:"error"`
	}{e})
}

// EncodeJSON writes v as JSON followed by a newline.
func EncodeJSON(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }
