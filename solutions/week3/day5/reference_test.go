package day5

// Checks of the reference beyond the day's shared ones (internal/grade/w3d5):
// details of its answers that the chapter leaves to each implementation.

import (
	"context"
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
