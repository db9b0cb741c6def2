package serving

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

const vocab = 16

// counter is a model whose next token is always the last one plus 1
// (mod vocab); it panics on token 13, and can be slowed down or blocked.
type counter struct {
	mu    sync.Mutex
	calls int
	gate  chan struct{} // when set, each forward pass waits for it
}

func (c *counter) Forward(tokens [][]int, offset int, caches []llm.KVCache) *tensor.Tensor {
	return c.ForwardLast(tokens, offset, caches)
}

func (c *counter) ForwardLast(tokens [][]int, offset int, caches []llm.KVCache) *tensor.Tensor {
	c.mu.Lock()
	c.calls++
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		<-gate
	}
	last := tokens[0][len(tokens[0])-1]
	if last == 13 {
		panic("token 13 is unlucky")
	}
	out := make([]float32, vocab)
	out[(last+1)%vocab] = 10
	return tensor.New(out, 1, 1, vocab)
}

func (c *counter) NewCaches() []llm.KVCache { return nil }

type greedy struct{}

// identity passes the logits on: greedy needs only their order.
func identity(logits *tensor.Tensor) *tensor.Tensor { return logits }

func (greedy) Sample(logprobs *tensor.Tensor) int {
	d := logprobs.Data()
	return slices.Index(d, slices.Max(d))
}

func newEngine(t *testing.T, m *counter, queue int) *SerialEngine {
	t.Helper()
	e, err := NewSerialEngine(SerialConfig{Model: m, NewSampler: func(float64, float64, uint64) llm.Sampler { return greedy{} }, LogProbs: identity,
		EOS: []int{9}, MaxContext: 12, QueueSize: queue, PrefillChunk: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// collect reads a stream to its end.
func collect(t *testing.T, ch <-chan Event) (tokens []int, last Event) {
	t.Helper()
	for ev := range ch {
		if ev.Done {
			last = ev
			continue
		}
		tokens = append(tokens, ev.Token)
	}
	return tokens, last
}

func TestSerialEngineStopsAtEOSAndAtTheLimit(t *testing.T) {
	e := newEngine(t, &counter{}, 4)
	for _, tc := range []struct {
		prompt    []int
		maxTokens int
		want      []int
		finish    string
		count     int
	}{
		{[]int{1, 2, 5}, 10, []int{6, 7, 8}, FinishStop, 4}, // 9 is the end-of-sequence token
		{[]int{1, 2, 5}, 2, []int{6, 7}, FinishLength, 2},   // max tokens
	} {
		ch, err := e.Submit(context.Background(), Request{Prompt: tc.prompt, MaxTokens: tc.maxTokens, TopP: 1})
		if err != nil {
			t.Fatal(err)
		}
		got, last := collect(t, ch)
		if !slices.Equal(got, tc.want) || last.Finish != tc.finish || last.CompletionTokens != tc.count || last.PromptTokens != len(tc.prompt) {
			t.Errorf("prompt %v, max %d: tokens %v, %+v; want %v, finish %s, %d tokens", tc.prompt, tc.maxTokens, got, last, tc.want, tc.finish, tc.count)
		}
	}
	// A model that panics (on token 13) fails its request, not the server.
	ch, err := e.Submit(context.Background(), Request{Prompt: []int{10}, MaxTokens: 10, TopP: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, last := collect(t, ch); !slices.Equal(got, []int{11, 12, 13}) || last.Err == nil || !strings.Contains(last.Err.Error(), "unlucky") {
		t.Errorf("a panicking model: %v, last event %+v; want 11 12 13 and the panic as the error", got, last)
	}
	// The context clamp, on a prompt that does not reach 13.
	ch, err = e.Submit(context.Background(), Request{Prompt: []int{14, 14, 14, 14, 14, 14, 14, 14, 14, 14}, MaxTokens: 50, TopP: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, last := collect(t, ch)
	if !slices.Equal(got, []int{15, 0}) || last.Finish != FinishLength || last.CompletionTokens != 2 {
		t.Errorf("a prompt of 10 in a context of 12: %v, %+v; want [15 0], length, 2", got, last)
	}
}

func TestSerialEngineRefusesBadRequests(t *testing.T) {
	e := newEngine(t, &counter{}, 4)
	for _, r := range []Request{
		{Prompt: nil, MaxTokens: 1, TopP: 1},
		{Prompt: make([]int, 12), MaxTokens: 1, TopP: 1},
		{Prompt: []int{1}, MaxTokens: 0, TopP: 1},
		{Prompt: []int{1}, MaxTokens: 1, TopP: 0},
		{Prompt: []int{1}, MaxTokens: 1, TopP: 1, Temperature: -1},
	} {
		if _, err := e.Submit(context.Background(), r); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Submit(%+v): %v, want ErrInvalidRequest", r, err)
		}
	}
}

func TestSerialEngineQueueAndCancel(t *testing.T) {
	m := &counter{gate: make(chan struct{})}
	e := newEngine(t, m, 1)
	ctx1, cancel1 := context.WithCancel(context.Background())
	req := Request{Prompt: []int{1}, MaxTokens: 5, TopP: 1}
	first, err := e.Submit(ctx1, req)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return e.Stats().Running == 1 })
	ctx2, cancel2 := context.WithCancel(context.Background())
	second, err := e.Submit(ctx2, req)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Waiting != 1 || st.KVPagesUsed != 0 || st.KVPagesTotal != 0 {
		t.Errorf("Stats %+v, want 1 waiting and no pages", st)
	}
	if _, err := e.Submit(context.Background(), req); !errors.Is(err, ErrQueueFull) {
		t.Errorf("a third request with a queue of 1: %v, want ErrQueueFull", err)
	}
	cancel2() // leaves while waiting: never run
	cancel1() // leaves while running
	close(m.gate)
	for _, ch := range []<-chan Event{first, second} {
		if _, last := collect(t, ch); last.Done {
			t.Errorf("a cancelled request ended with %+v; want its stream closed without a Done event", last)
		}
	}
	waitUntil(t, func() bool { st := e.Stats(); return st.Running == 0 && st.Waiting == 0 })
	m.mu.Lock()
	calls := m.calls
	m.mu.Unlock()
	if calls > 2 {
		t.Errorf("the model ran %d times for two cancelled requests; want at most the pass in flight and one more", calls)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out")
}

func TestMetricsInstrumentAndRoutes(t *testing.T) {
	e := newEngine(t, &counter{}, 4)
	m := NewMetrics(e)
	inst := m.Instrument(e)
	ch, err := inst.Submit(context.Background(), Request{Prompt: []int{1, 2, 5}, MaxTokens: 10, TopP: 1})
	if err != nil {
		t.Fatal(err)
	}
	collect(t, ch)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := NewMux(api, m)
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	if r := get("/v1/models"); r.Code != http.StatusTeapot {
		t.Errorf("/v1/models did not reach the API handler: %d", r.Code)
	}
	if r := get("/"); r.Code != 200 || !strings.Contains(r.Body.String(), "/v1/chat/completions") {
		t.Errorf("the chat page: %d", r.Code)
	}
	if r := get("/nowhere"); r.Code != 404 || !strings.Contains(r.Body.String(), `"error"`) {
		t.Errorf("an unknown path: %d %s", r.Code, r.Body.String())
	}
	body := get("/metrics").Body.String()
	for _, want := range []string{
		"tinyllm_prompt_tokens_total 3",
		"tinyllm_generation_tokens_total 4", // 6, 7, 8 and the end-of-sequence token
		"tinyllm_time_to_first_token_seconds_count 1",
		"tinyllm_inter_token_latency_seconds_count 2",
		`tinyllm_requests_total{code="418",path="/v1/models"} 1`,
		`tinyllm_requests_total{code="404",path="other"} 1`,
		"tinyllm_kv_pages_in_use 0",
		"tinyllm_requests_waiting 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

func TestRecordWritesExchanges(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	})
	h, err := Record(dir, 0, api)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
	req.Header.Set("Authorization", "Bearer secret")
	req.Header.Set("User-Agent", "OpenAI/Test 1.0")
	h.ServeHTTP(httptest.NewRecorder(), req)
	b, err := os.ReadFile(filepath.Join(dir, "001.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.Contains(s, `"client": "OpenAI/Test 1.0"`) || !strings.Contains(s, `"response_body": "{\"ok\":true}"`) || strings.Contains(s, "secret") {
		t.Errorf("the recording:\n%s", s)
	}
}

// TestRecordNeverOverwrites records into a folder that holds recordings of
// an earlier run: the numbers go on after the highest, the old files stay
// as they were, and a second run goes on after the first.
func TestRecordNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	old := map[string]string{"001.json": "first run, 1", "007.json": "first run, 7", "notes.json": "not a recording", "12a.json": "nor this"}
	for name, text := range old {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) })
	send := func(h http.Handler) {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/models", nil))
	}
	for range 2 { // two runs of the server
		h, err := Record(dir, 0, api)
		if err != nil {
			t.Fatal(err)
		}
		send(h)
		send(h)
	}
	for name, text := range old {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != text {
			t.Errorf("%s was %q, is now %q (%v)", name, text, b, err)
		}
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if _, ok := old[e.Name()]; !ok {
			names = append(names, e.Name())
		}
	}
	if want := []string{"008.json", "009.json", "010.json", "011.json"}; !slices.Equal(names, want) {
		t.Errorf("two runs of two requests each wrote %v; want %v", names, want)
	}
}

// TestRecordKeepsTheBodyLimit checks that recording changes no answer: a
// body under the handler's limit reaches it whole (and is recorded), one
// over it gets the handler's 413, as without the recording.
func TestRecordKeepsTheBodyLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		limit    int64
		bodySize int
		status   int
	}{
		{"past_a_mib_under_the_limit", 8 << 20, 1_500_000, http.StatusOK},
		{"over_the_limit", 1 << 10, 2 << 10, http.StatusRequestEntityTooLarge},
		{"over_a_limit_past_a_mib", 2 << 20, 3 << 20, http.StatusRequestEntityTooLarge},
		{"at_the_limit", 1 << 10, 1 << 10, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, tc.limit))
				var tooBig *http.MaxBytesError
				switch {
				case errors.As(err, &tooBig):
					w.WriteHeader(http.StatusRequestEntityTooLarge)
				case err != nil || !json.Valid(b):
					w.WriteHeader(http.StatusBadRequest)
				}
			})
			// A JSON string of bodySize bytes.
			body := `"` + strings.Repeat("x", tc.bodySize-2) + `"`
			dir := t.TempDir()
			h, err := Record(dir, tc.limit, api)
			if err != nil {
				t.Fatal(err)
			}
			for what, h := range map[string]http.Handler{"without the recording": api, "with it": h} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/completions", strings.NewReader(body)))
				if rec.Code != tc.status {
					t.Errorf("a body of %d bytes, limit %d, %s: %d; want %d", len(body), tc.limit, what, rec.Code, tc.status)
				}
			}
			raw, err := os.ReadFile(filepath.Join(dir, "001.json"))
			if err != nil {
				t.Fatal(err)
			}
			var ex Exchange
			if err := json.Unmarshal(raw, &ex); err != nil {
				t.Fatal(err)
			}
			if recorded := len(ex.Body) > 0; recorded != (tc.status == http.StatusOK) || ex.Status != tc.status {
				t.Errorf("the recording has status %d and a body of %d bytes; want %d, and the body only when it was accepted", ex.Status, len(ex.Body), tc.status)
			}
		})
	}
}

// TestMuxMethods checks the methods of the routes around the API: GET and
// HEAD (headers, no body) on the page, /health and /metrics, a 405 with
// Allow and the error object for any other method there, and a 404 for an
// unknown path whatever the method.
func TestMuxMethods(t *testing.T) {
	e := newEngine(t, &counter{}, 4)
	m := NewMetrics(e)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	hs := httptest.NewServer(NewMux(api, m))
	defer hs.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/", 200, ""},
		{"HEAD", "/", 200, ""},
		{"POST", "/", 405, "GET, HEAD"},
		{"GET", "/health", 200, ""},
		{"HEAD", "/health", 200, ""},
		{"POST", "/health", 405, "GET, HEAD"},
		{"HEAD", "/metrics", 200, ""},
		{"POST", "/metrics", 405, "GET, HEAD"},
		{"DELETE", "/metrics", 405, "GET, HEAD"},
		{"POST", "/nowhere", 404, ""},
		{"HEAD", "/v1/models", http.StatusTeapot, ""}, // the API's own
	} {
		req, _ := http.NewRequest(tc.method, hs.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d, Allow %q; want %d, Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.status, tc.allow)
		}
		switch {
		case tc.method == "HEAD" && len(b) != 0:
			t.Errorf("HEAD %s sent a body of %d bytes", tc.path, len(b))
		case tc.status == 405 && !strings.Contains(string(b), `"error"`):
			t.Errorf("%s %s: %s; want the error object", tc.method, tc.path, b)
		}
	}
}

// TestWriteErrorNulls checks that an error without a param or a code sends
// null for them, as the OpenAI API does, and the values when they are set.
func TestWriteErrorNulls(t *testing.T) {
	for _, tc := range []struct {
		err  APIError
		want string
	}{
		{APIError{Status: 400, Type: "invalid_request_error", Message: "bad"},
			`{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}`},
		{APIError{Status: 400, Type: "invalid_request_error", Message: "n must be 1", Param: "n"},
			`{"error":{"message":"n must be 1","type":"invalid_request_error","param":"n","code":null}}`},
		{APIError{Status: 404, Type: "invalid_request_error", Message: "no", Param: "model", Code: "model_not_found"},
			`{"error":{"message":"no","type":"invalid_request_error","param":"model","code":"model_not_found"}}`},
	} {
		rec := httptest.NewRecorder()
		WriteError(rec, &tc.err)
		if got := strings.TrimSpace(rec.Body.String()); got != tc.want || rec.Code != tc.err.Status {
			t.Errorf("WriteError(%+v): %d %s; want %d %s", tc.err, rec.Code, got, tc.err.Status, tc.want)
		}
	}
}
