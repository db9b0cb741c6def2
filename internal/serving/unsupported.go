package serving

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// unsupported are the request fields of the OpenAI API that ask for what
// this server does not do, each with the values that ask for nothing (the
// API's defaults, which a client may send all the same) and the reason.
var unsupported = []struct {
	field    string
	defaults []any // as encoding/json decodes them into an any
	why      string
}{
	{"logprobs", []any{false}, "this server does not return log probabilities"},
	{"top_logprobs", []any{0.0}, "this server does not return log probabilities"},
	{"echo", []any{false}, "this server does not repeat the prompt in its answer"},
	{"best_of", []any{1.0}, "this server generates one completion per request"},
	{"suffix", []any{""}, "this server does not insert text before a suffix"},
	{"tools", []any{[]any{}}, "this server does not call tools"},
	{"tool_choice", []any{"none", "auto"}, "this server does not call tools"},
	{"functions", []any{[]any{}}, "this server does not call functions"},
	{"function_call", []any{"none", "auto"}, "this server does not call functions"},
	{"response_format", []any{map[string]any{"type": "text"}}, "this server answers in plain text only"},
	{"logit_bias", []any{map[string]any{}}, "this server does not bias tokens"},
	{"presence_penalty", []any{0.0}, "this server applies no penalties"},
	{"frequency_penalty", []any{0.0}, "this server applies no penalties"},
}

// CheckUnsupported refuses a request body that asks for what this server
// does not do: log probabilities, echo, best_of above 1, a suffix, tools
// or functions, a response_format other than text, logit_bias, penalties
// other than 0, and stream_options without stream. Silently ignoring them
// would answer another question than the one asked. A field at its default
// value (logprobs false, response_format {"type": "text"}, …) asks for
// nothing and passes; fields the API has and that change nothing in the
// answer (user, metadata, store, …) are not looked at.
//
// fields is the body's top-level object, each field still raw JSON, with
// null fields taken as absent. The error is a 400 that names the field.
func CheckUnsupported(fields map[string]json.RawMessage) *APIError {
	for _, u := range unsupported {
		raw, ok := fields[u.field]
		if !ok || string(raw) == "null" {
			continue
		}
		var v any
		if json.Unmarshal(raw, &v) == nil && slices.ContainsFunc(u.defaults, func(d any) bool { return reflect.DeepEqual(v, d) }) {
			continue
		}
		return InvalidRequest(u.field, fmt.Sprintf("%s %s is not supported: %s", u.field, Clip(string(raw)), u.why))
	}
	if raw, ok := fields["stream_options"]; ok && string(raw) != "null" {
		var stream bool
		_ = json.Unmarshal(fields["stream"], &stream) // absent, or not a boolean: false
		if !stream {
			return InvalidRequest("stream_options", "stream_options is only allowed when stream is true")
		}
	}
	return nil
}

// Clip shortens a client's value (a string, or raw JSON) to at most 40
// bytes for an error message, cut on a character boundary.
func Clip(s string) string {
	if len(s) > 40 {
		return strings.ToValidUTF8(s[:40], "") + "…"
	}
	return s
}
