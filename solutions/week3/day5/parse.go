package day5

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/tinyllm-go/tinyllm/internal/serving"
)

// maxStops is the OpenAI API's limit on stop sequences.
const maxStops = 4

// ParseChatRequest parses and checks the body of POST /v1/chat/completions.
// Every mistake is an *APIError with status 400 that names the field:
// a body that is not a JSON object, a missing model, no messages, a role
// other than system/user/assistant (OpenAI's "developer" counts as
// system), content that is neither a string nor a list of text parts, a
// max_tokens or max_completion_tokens below 1, a temperature outside
// [0, 2], a top_p outside (0, 1], n other than 1, more than 4 stop
// sequences, and a field that asks for what the server does not do
// (serving.CheckUnsupported: logprobs, tools, stream_options without
// stream, …). Other fields the server does not use are ignored, as clients
// send many.
func ParseChatRequest(body []byte) (*ChatRequest, error) {
	f, apiErr := fields(body)
	if apiErr != nil {
		return nil, apiErr
	}
	req := &ChatRequest{}
	var err *APIError
	if req.Model, err = f.model(); err != nil {
		return nil, err
	}
	if req.Messages, err = f.messages(); err != nil {
		return nil, err
	}
	if req.MaxTokens, err = f.maxTokens("max_completion_tokens", 0); err != nil {
		return nil, err
	}
	if req.MaxTokens == 0 {
		if req.MaxTokens, err = f.maxTokens("max_tokens", 0); err != nil {
			return nil, err
		}
	}
	if err = f.common(&req.Temperature, &req.TopP, &req.Seed, &req.Stop, &req.Stream, &req.IncludeUsage); err != nil {
		return nil, err
	}
	if err = serving.CheckUnsupported(f); err != nil {
		return nil, err
	}
	return req, nil
}

// ParseCompletionRequest parses and checks the body of POST
// /v1/completions, as ParseChatRequest does; the prompt is a string (or a
// list holding one string), and max_tokens defaults to 16, as OpenAI's.
func ParseCompletionRequest(body []byte) (*CompletionRequest, error) {
	f, apiErr := fields(body)
	if apiErr != nil {
		return nil, apiErr
	}
	req := &CompletionRequest{}
	var err *APIError
	if req.Model, err = f.model(); err != nil {
		return nil, err
	}
	if req.Prompt, err = f.prompt(); err != nil {
		return nil, err
	}
	if req.MaxTokens, err = f.maxTokens("max_tokens", 16); err != nil {
		return nil, err
	}
	if err = f.common(&req.Temperature, &req.TopP, &req.Seed, &req.Stop, &req.Stream, &req.IncludeUsage); err != nil {
		return nil, err
	}
	if err = serving.CheckUnsupported(f); err != nil {
		return nil, err
	}
	return req, nil
}

// object is a request body's fields, each still raw JSON. A field that is
// null counts as absent, as in the OpenAI API.
type object map[string]json.RawMessage

func fields(body []byte) (object, *APIError) {
	var f object
	// Unmarshal, not a Decoder: it refuses anything after the object
	// (a Decoder stops at the object's end and More misses a stray "}").
	err := json.Unmarshal(body, &f)
	if err != nil || f == nil {
		// encoding/json's syntax errors say where the JSON breaks; its
		// type errors name Go types, which mean nothing to a client.
		msg := "the body must be one JSON object"
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			msg += ": " + syntax.Error()
		case errors.As(err, &typ):
			msg += ", not " + jsonKind(typ.Value)
		case err == nil:
			msg += ", not null"
		}
		return nil, serving.InvalidRequest("", msg)
	}
	for k, v := range f {
		if string(v) == "null" {
			delete(f, k)
		}
	}
	return f, nil
}

// jsonKind names a kind of JSON value as encoding/json's
// UnmarshalTypeError.Value does ("array", "string", "number", "bool"), for
// a message.
func jsonKind(value string) string {
	switch value {
	case "array":
		return "an array"
	case "string":
		return "a string"
	case "number":
		return "a number"
	case "bool":
		return "true or false"
	}
	return "a JSON " + value
}

// decode reads field key into v, or reports it as a 400 that says what
// the field should have been.
func (f object) decode(key string, v any, want string) *APIError {
	if err := json.Unmarshal(f[key], v); err != nil {
		return serving.InvalidRequest(key, fmt.Sprintf("%s must be %s, got %s", key, want, serving.Clip(string(f[key]))))
	}
	return nil
}

func (f object) model() (string, *APIError) {
	if _, ok := f["model"]; !ok {
		return "", serving.InvalidRequest("model", "model is required (GET /v1/models lists this server's model)")
	}
	var m string
	if err := f.decode("model", &m, "a string"); err != nil {
		return "", err
	}
	return m, nil
}

func (f object) messages() ([]ChatMessage, *APIError) {
	if _, ok := f["messages"]; !ok {
		return nil, serving.InvalidRequest("messages", "messages is required: a list of {role, content}")
	}
	var raw []map[string]json.RawMessage
	if err := f.decode("messages", &raw, "a list of {role, content} objects"); err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, serving.InvalidRequest("messages", "messages must hold at least one message")
	}
	out := make([]ChatMessage, len(raw))
	for i, m := range raw {
		param := fmt.Sprintf("messages[%d]", i)
		if m == nil {
			return nil, serving.InvalidRequest(param, param+" must be an object with role and content")
		}
		var role string
		if err := json.Unmarshal(m["role"], &role); err != nil {
			return nil, serving.InvalidRequest(param+".role", param+".role must be a string: system, user or assistant")
		}
		switch role {
		case "system", "user", "assistant":
		case "developer": // OpenAI's newer name for the system turn
			role = "system"
		default:
			return nil, serving.InvalidRequest(param+".role", fmt.Sprintf("%s.role must be system, user or assistant, got %q", param, serving.Clip(role)))
		}
		content, err := messageContent(m["content"], role, param)
		if err != nil {
			return nil, err
		}
		out[i] = ChatMessage{Role: role, Content: content}
	}
	return out, nil
}

// messageContent reads a message's content: a string, or a list of parts
// of which only text parts are understood ({"type": "text", "text": …}),
// joined. An assistant turn may have no content (null).
func messageContent(raw json.RawMessage, role, param string) (string, *APIError) {
	if len(raw) == 0 || string(raw) == "null" {
		if role == "assistant" {
			return "", nil
		}
		return "", serving.InvalidRequest(param+".content", param+".content is required")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return "", serving.InvalidRequest(param+".content", param+".content must be a string or a list of text parts")
	}
	var sb strings.Builder
	for j, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return "", serving.InvalidRequest(fmt.Sprintf("%s.content[%d]", param, j),
				fmt.Sprintf("%s.content[%d] must be a text part {\"type\": \"text\", \"text\": …}; this model reads text only", param, j))
		}
		sb.WriteString(*p.Text)
	}
	return sb.String(), nil
}

func (f object) prompt() (string, *APIError) {
	if _, ok := f["prompt"]; !ok {
		return "", serving.InvalidRequest("prompt", "prompt is required")
	}
	var s string
	if json.Unmarshal(f["prompt"], &s) == nil {
		return s, nil
	}
	var list []string
	if json.Unmarshal(f["prompt"], &list) == nil && len(list) == 1 {
		return list[0], nil
	}
	return "", serving.InvalidRequest("prompt", "prompt must be a string (or a list of one string); token-id prompts and batches are not supported")
}

// maxTokens reads a token limit: an integer of at least 1, or def when
// absent.
func (f object) maxTokens(key string, def int) (int, *APIError) {
	if _, ok := f[key]; !ok {
		return def, nil
	}
	var n float64
	if err := f.decode(key, &n, "an integer of at least 1"); err != nil {
		return 0, err
	}
	// Above 2^31 no context is that long; the engine stops at the context.
	if n != math.Trunc(n) || n < 1 || n > math.MaxInt32 {
		return 0, serving.InvalidRequest(key, fmt.Sprintf("%s must be an integer from 1 to %d, got %s", key, math.MaxInt32, serving.Clip(string(f[key]))))
	}
	return int(n), nil
}

// common reads the sampling and streaming fields the two endpoints share.
func (f object) common(temperature, topP *float64, seed **int64, stop *[]string, stream, includeUsage *bool) *APIError {
	*temperature, *topP = 1, 1
	if _, ok := f["temperature"]; ok {
		if err := f.decode("temperature", temperature, "a number from 0 to 2"); err != nil {
			return err
		}
		if !(*temperature >= 0 && *temperature <= 2) {
			return serving.InvalidRequest("temperature", fmt.Sprintf("temperature must be from 0 to 2, got %g", *temperature))
		}
	}
	if _, ok := f["top_p"]; ok {
		if err := f.decode("top_p", topP, "a number in (0, 1]"); err != nil {
			return err
		}
		if !(*topP > 0 && *topP <= 1) {
			return serving.InvalidRequest("top_p", fmt.Sprintf("top_p must be above 0 and at most 1, got %g", *topP))
		}
	}
	if _, ok := f["n"]; ok {
		var n float64
		if err := f.decode("n", &n, "1"); err != nil {
			return err
		}
		if n != 1 {
			return serving.InvalidRequest("n", fmt.Sprintf("n must be 1: this server returns one choice per request, got %s", serving.Clip(string(f["n"]))))
		}
	}
	if _, ok := f["seed"]; ok {
		var s int64
		if err := f.decode("seed", &s, "an integer"); err != nil {
			return err
		}
		*seed = &s
	}
	if raw, ok := f["stop"]; ok {
		var one string
		if json.Unmarshal(raw, &one) == nil {
			*stop = []string{one}
		} else if err := f.decode("stop", stop, "a string or a list of strings"); err != nil {
			return err
		}
		if len(*stop) > maxStops {
			return serving.InvalidRequest("stop", fmt.Sprintf("stop may hold at most %d sequences, got %d", maxStops, len(*stop)))
		}
		for _, s := range *stop {
			if s == "" {
				return serving.InvalidRequest("stop", "a stop sequence must not be empty")
			}
		}
	}
	if _, ok := f["stream"]; ok {
		if err := f.decode("stream", stream, "true or false"); err != nil {
			return err
		}
	}
	if _, ok := f["stream_options"]; ok {
		var so object
		if err := f.decode("stream_options", &so, `an object such as {"include_usage": true}`); err != nil {
			return err
		}
		if raw, ok := so["include_usage"]; ok && string(raw) != "null" {
			if json.Unmarshal(raw, includeUsage) != nil {
				return serving.InvalidRequest("stream_options.include_usage", "stream_options.include_usage must be true or false, got "+serving.Clip(string(raw)))
			}
		}
	}
	return nil
}
