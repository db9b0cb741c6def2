package day5

// Checks of the reference beyond the day's shared ones (internal/grade/w3d5):
// details of its answers that the chapter leaves to each implementation.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/serving"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// oneToken is an engine that answers every request with one token and
// "length".
type oneToken struct{}

func (oneToken) MaxContext() int      { return 64 }
func (oneToken) Stats() serving.Stats { return serving.Stats{} }
func (oneToken) Submit(ctx context.Context, req serving.Request) (<-chan serving.Event, error) {
	ch := make(chan serving.Event, 2)
	ch <- serving.Event{Token: 1}
	ch <- serving.Event{Done: true, Finish: serving.FinishLength, PromptTokens: len(req.Prompt), CompletionTokens: 1}
	close(ch)
	return ch, nil
}

// newReference is the reference handler over oneToken with the shipped
// model's tokenizer.
func newReference(t *testing.T) http.Handler {
	t.Helper()
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.LoadDir(filepath.Join(root, "models", "tinyqwen-chat"))
	if err != nil {
		t.Fatal(err)
	}
	return NewHandler(Config{Engine: oneToken{}, Tokenizer: tok, ModelID: "tinyqwen-chat"})
}

// TestHandlerMethods checks that HEAD goes wherever GET does, and that a
// wrong method's 405 lists the methods allowed.
func TestHandlerMethods(t *testing.T) {
	h := newReference(t)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/v1/models", 200, ""},
		{"HEAD", "/v1/models", 200, ""},
		{"HEAD", "/v1/models/tinyqwen-chat", 200, ""},
		{"POST", "/v1/models", 405, "GET, HEAD"},
		{"DELETE", "/v1/models/tinyqwen-chat", 405, "GET, HEAD"},
		{"GET", "/v1/chat/completions", 405, "POST"},
		{"HEAD", "/v1/completions", 405, "POST"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status || rec.Header().Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d, Allow %q; want %d, Allow %q", tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), tc.status, tc.allow)
		}
		if tc.status == 405 && !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("%s %s: %s; want the error object", tc.method, tc.path, rec.Body.String())
		}
	}
}

// TestContextLengthParam checks that a prompt past the context is blamed on
// the field that holds it: messages for a chat, prompt for a completion.
func TestContextLengthParam(t *testing.T) {
	h := newReference(t)
	long := strings.Repeat("word ", 100) // past oneToken's context of 64
	for _, tc := range []struct {
		path, body, param string
	}{
		{"/v1/chat/completions", `{"model":"tinyqwen-chat","messages":[{"role":"user","content":"` + long + `"}]}`, "messages"},
		{"/v1/completions", `{"model":"tinyqwen-chat","prompt":"` + long + `"}`, "prompt"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body)))
		var e struct{ Error struct{ Param, Code string } }
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != 400 || e.Error.Code != "context_length_exceeded" || e.Error.Param != tc.param {
			t.Errorf("POST %s past the context: %d %s; want 400, context_length_exceeded, param %q", tc.path, rec.Code, rec.Body.String(), tc.param)
		}
	}
}

// goTerms are words of Go's, not of JSON's: a client's error message must
// not show them.
var goTerms = []string{"Go value", "Go struct", "day5.", "serving.", "json: ", "float64", "int64", "map[", "[]string", "RawMessage", "bool"}

// TestParseErrorsSpeakJSON checks that a body of the wrong JSON type, and a
// field of the wrong JSON type, get a message in the client's terms: the
// field and the JSON type it must be, no Go type.
func TestParseErrorsSpeakJSON(t *testing.T) {
	const hi = `"messages":[{"role":"user","content":"hi"}]`
	for _, tc := range []struct {
		body, param, want string
	}{
		{`[]`, "", "the body must be one JSON object, not an array"},
		{`[{"model":"m"}]`, "", "the body must be one JSON object, not an array"},
		{`"hi"`, "", "the body must be one JSON object, not a string"},
		{`42`, "", "the body must be one JSON object, not a number"},
		{`true`, "", "the body must be one JSON object, not true or false"},
		{`null`, "", "the body must be one JSON object, not null"},
		{`{"model": "m", ` + hi, "", "the body must be one JSON object: unexpected end of JSON input"},
		{`{"model":["m"],` + hi + `}`, "model", "model must be a string"},
		{`{"model":"m","messages":{"role":"user"}}`, "messages", "messages must be a list"},
		{`{"model":"m","messages":[{"role":7,"content":"hi"}]}`, "messages[0].role", "messages[0].role must be a string"},
		{`{"model":"m",` + hi + `,"max_tokens":"10"}`, "max_tokens", "max_tokens must be an integer"},
		{`{"model":"m",` + hi + `,"temperature":"hot"}`, "temperature", "temperature must be a number"},
		{`{"model":"m",` + hi + `,"seed":"7"}`, "seed", "seed must be an integer"},
		{`{"model":"m",` + hi + `,"stop":[1]}`, "stop", "stop must be a string or a list of strings"},
		{`{"model":"m",` + hi + `,"stream":"yes"}`, "stream", "stream must be true or false"},
		{`{"model":"m",` + hi + `,"stream":true,"stream_options":[]}`, "stream_options", "stream_options must be an object"},
		{`{"model":"m",` + hi + `,"stream":true,"stream_options":{"include_usage":"yes"}}`, "stream_options.include_usage", "stream_options.include_usage must be true or false"},
	} {
		_, err := ParseChatRequest([]byte(tc.body))
		var ae *APIError
		if !errors.As(err, &ae) {
			t.Errorf("ParseChatRequest(%s): %v; want an *APIError", tc.body, err)
			continue
		}
		if ae.Status != 400 || ae.Param != tc.param || !strings.Contains(ae.Message, tc.want) {
			t.Errorf("ParseChatRequest(%s): %d, param %q, %q; want 400, param %q, a message with %q", tc.body, ae.Status, ae.Param, ae.Message, tc.param, tc.want)
		}
		for _, term := range goTerms {
			if strings.Contains(ae.Message, term) {
				t.Errorf("ParseChatRequest(%s): the message %q shows Go's %q", tc.body, ae.Message, term)
			}
		}
	}
}
