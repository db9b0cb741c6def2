// Package w3d5 holds the checks of Week 3 Day 5 (the OpenAI-compatible
// server), written once and run against both trees. The independent
// references are the official OpenAI clients: request bodies recorded from
// the Python and Node clients (testdata/w3d5/exchanges) are replayed
// against the day's handler, and the Go client (openai-go) talks to it
// over HTTP. The engine behind the handler is scripted: it answers every
// request with known tokens, so each check knows the exact text, finish
// reason and token counts the handler must report.
package w3d5

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/serving"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// Stopper is the day's StopBuffer.
type Stopper interface {
	Push(text string) (out string, stopped bool)
	Flush() string
}

// Day is the day's API, wired in by each tree's tests.
type Day struct {
	ParseChat       func(body []byte) (*serving.ChatRequest, error)
	ParseCompletion func(body []byte) (*serving.CompletionRequest, error)
	NewStopBuffer   func(stops []string) Stopper
	WriteSSE        func(w io.Writer, v any) error
	WriteSSEDone    func(w io.Writer) error
	NewHandler      func(cfg serving.HandlerConfig) http.Handler
}

// modelID is the shipped model's name in the API.
const modelID = "tinyqwen-chat"

// scriptText is what the scripted engine answers: several words, a
// character of three bytes and one of four (so tokens cut characters), and
// a stop sequence or two that fall across token boundaries.
const scriptText = "Paris is the capital of France. 348 + 275 = 623. Café ☕ and 🙂 done."

var (
	tokOnce sync.Once
	tok     *tokenizer.Tokenizer
	tokErr  error
)

// shippedTokenizer is the shipped model's tokenizer, read once.
func shippedTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tokOnce.Do(func() {
		root, err := fixture.RepoRoot()
		if err != nil {
			tokErr = err
			return
		}
		tok, tokErr = tokenizer.LoadDir(filepath.Join(root, "models", modelID))
	})
	if tokErr != nil {
		t.Fatal(tokErr)
	}
	return tok
}

// newScripted is an engine that answers with scriptText.
func newScripted(t *testing.T) *scripted {
	t.Helper()
	ids, err := shippedTokenizer(t).EncodeText(scriptText)
	if err != nil {
		t.Fatal(err)
	}
	return &scripted{script: ids, maxContext: 512}
}

// expected is what the handler must report for a request over the
// scripted engine: computed here from the script and the request, with
// the tokenizer's Decode and strings.Index, not with the day's code.
type expected struct {
	text       string
	finish     string
	completion int
}

func (s *scripted) expect(t *testing.T, maxTokens int, stops []string) expected {
	t.Helper()
	tk := shippedTokenizer(t)
	decode := func(ids []int) string {
		text, err := tk.Decode(ids)
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	n := min(len(s.script), maxTokens)
	// The handler sees the text grow token by token and stops at the
	// first token after which a stop sequence is complete.
	for k := 1; k <= n; k++ {
		if cut := firstStop(decode(s.script[:k]), stops); cut >= 0 {
			return expected{text: decode(s.script[:k])[:cut], finish: serving.FinishStop, completion: k}
		}
	}
	full := decode(s.script[:n])
	if len(s.script) >= maxTokens {
		return expected{text: full, finish: serving.FinishLength, completion: maxTokens}
	}
	return expected{text: full, finish: serving.FinishStop, completion: len(s.script) + 1}
}

// firstStop is where the earliest stop sequence in text begins, or -1.
func firstStop(text string, stops []string) int {
	first := -1
	for _, stop := range stops {
		if i := strings.Index(text, stop); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	return first
}

// exchange is one recorded request and response (serving.Exchange).
type exchange struct {
	serving.Exchange
	name string
}

// exchanges reads testdata/w3d5/exchanges.
func exchanges(t testing.TB) []exchange {
	t.Helper()
	dir, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "w3d5", "exchanges", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded exchanges in testdata/w3d5/exchanges (%v)", err)
	}
	sort.Strings(files)
	var out []exchange
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ex exchange
		if err := json.Unmarshal(raw, &ex.Exchange); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ex.name = strings.TrimSuffix(filepath.Base(f), ".json")
		out = append(out, ex)
	}
	return out
}

// apiError asserts that err is a 4xx *serving.APIError and returns it.
func apiError(t *testing.T, what string, err error) *serving.APIError {
	t.Helper()
	var ae *serving.APIError
	if !errors.As(err, &ae) {
		t.Errorf("%s: the error %v (%T) is not a *serving.APIError (the OpenAI error object)", what, err, err)
		return nil
	}
	if ae.Status < 400 || ae.Status > 499 {
		t.Errorf("%s: status %d, want a 4xx", what, ae.Status)
	}
	if ae.Message == "" || ae.Type == "" {
		t.Errorf("%s: the error needs a message and a type, got %+v", what, ae)
	}
	return ae
}

// show is a value in a report, cut to a readable length.
func show(v any) string {
	s := fmt.Sprintf("%q", fmt.Sprint(v))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// run is grade.Run with the chapter pointer every check of the day gets.
func run(t *testing.T, task string, fn func()) bool {
	t.Helper()
	grade.PointToChapter(t, task)
	return grade.Run(t, task, fn)
}

// tokenizerMessage is a chat turn as the tokenizer takes it.
type tokenizerMessage = tokenizer.Message
