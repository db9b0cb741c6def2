package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tinyllm-go/tinyllm/kernels"
)

// startServer serves the shipped model on a loopback test server, on the
// engine of o (serve's defaults for what o leaves 0).
func startServer(t *testing.T, o serverOptions) (*server, *httptest.Server) {
	t.Helper()
	var stderr bytes.Buffer
	if o.maxBody == 0 {
		o.maxBody = 1 << 20
	}
	srv, err := newServer(o, &stderr)
	if err != nil {
		t.Fatalf("newServer: %v\n%s", err, stderr.String())
	}
	hs := httptest.NewServer(srv.handler)
	t.Cleanup(func() { hs.Close(); srv.close() })
	return srv, hs
}

// TestServeCommandLineErrors checks that every mistake in serve's flags is
// one line on stderr with its exit status (2 for a usage error), never a
// panic, a runtime trace or a server that starts.
func TestServeCommandLineErrors(t *testing.T) {
	// A server that starts all the same is told to stop at once, so that
	// such a failure does not hang the test.
	defer func(f func() (context.Context, context.CancelFunc)) { serveSignals = f }(serveSignals)
	started := false
	serveSignals = func() (context.Context, context.CancelFunc) {
		started = true
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	}
	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"serve", "--port", "70000"}, "--port must be from 0 to 65535", 2},
		{[]string{"serve", "--queue", "0"}, "--queue must be from 1 to 65536, got 0", 2},
		{[]string{"serve", "--queue", "9000000000000000000"}, "--queue must be from 1 to 65536", 2},
		{[]string{"serve", "--queue", "2000000000", "--engine", "week2"}, "--queue must be from 1 to 65536", 2},
		{[]string{"serve", "--max-body", "10"}, "--max-body must be from 1024 to 1073741824", 2},
		{[]string{"serve", "--max-body", "9000000000000000000"}, "--max-body must be from 1024 to 1073741824", 2},
		{[]string{"serve", "--model", "/no/such/folder", "--port", "0"}, "--model /no/such/folder: no such folder", 2},
		{[]string{"serve", "--engine", "week9", "--port", "0"}, "--engine must be week3 or week2", 2},
		{[]string{"serve", "--max-seqs", "0"}, "need 1 <= --max-seqs <= --max-batched-tokens", 2},
		{[]string{"serve", "--max-seqs", "64", "--max-batched-tokens", "32"}, "need 1 <= --max-seqs <= --max-batched-tokens", 2},
		{[]string{"serve", "--max-seqs", "5000", "--max-batched-tokens", "8192"}, "--max-seqs must be at most 4096", 2},
		{[]string{"serve", "--kv-pages", "-1"}, "--kv-pages must be from 0 to 16777216", 2},
		{[]string{"serve", "--kv-pages", "99999999999"}, "--kv-pages must be from 0 to 16777216", 2},
		{[]string{"serve", "--kv-mib", "0"}, "--kv-mib must be from 1 to 1073741824", 2},
		{[]string{"serve", "--kv-mib", "99999999999999"}, "--kv-mib must be from 1 to 1073741824", 2},
		{[]string{"serve", "--kv-pages", "3", "--port", "0"}, "--kv-pages 3 cannot hold one request of the model's context of 512 positions", 2},
		{[]string{"serve", "--device", "auto"}, "not auto", 2},
		{[]string{"serve", "--device", "tpu"}, "--device must be auto, cpu, cuda or metal", 2},
	} {
		var stdout, stderr bytes.Buffer
		started = false
		code := run(tc.args, &stdout, &stderr)
		if started {
			t.Errorf("tinyllm %v started a server", tc.args)
		}
		// Loading the model reports it on a line of its own before the
		// error; anything else is the one line of the error.
		var lines []string
		for line := range strings.Lines(stderr.String()) {
			if !strings.HasPrefix(line, "loaded ") {
				lines = append(lines, line)
			}
		}
		if code != tc.code || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("tinyllm %v: exit %d, stderr %q; want exit %d and one line mentioning %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
}

// TestServeKVPoolMustFit checks that a page pool larger than the machine's
// memory is refused before it is allocated, whether --kv-pages or
// --kv-mib sized it, and that where the memory cannot be read nothing is
// refused.
func TestServeKVPoolMustFit(t *testing.T) {
	defer func(f func() (uint64, bool)) { physicalMemory = f }(physicalMemory)
	const gib = 1 << 30
	for _, tc := range []struct {
		name    string
		o       serverOptions
		mem     uint64 // 0: unknown
		wantErr string // "": the server starts
	}{
		{"pages_past_memory", serverOptions{kvPages: 1_000_000}, 23 * gib, "--kv-pages 1000000 needs 46875 MiB, more than this machine's 23552 MiB"},
		{"pages_that_fit", serverOptions{kvPages: 64}, 1 * gib, ""},
		{"kv_mib_past_memory", serverOptions{}, 64 << 20, "(--kv-mib 1024) needs 96 MiB, more than this machine's 64 MiB of memory: lower --kv-mib"},
		{"memory_unknown", serverOptions{kvPages: 100_000}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			physicalMemory = func() (uint64, bool) { return tc.mem, tc.mem > 0 }
			var stderr bytes.Buffer
			srv, err := newServer(tc.o, &stderr)
			if err == nil {
				srv.close()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("newServer(%+v) with %d MiB: %v; want it to start", tc.o, tc.mem>>20, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errUsage)):
				t.Errorf("newServer(%+v) with %d MiB: %v; want a usage error with %q", tc.o, tc.mem>>20, err, tc.wantErr)
			}
		})
	}
}

// TestCheckPoolFitsOverflow checks the sizes no flag reaches any more: a
// byte count past int64 is refused, on a GPU too.
func TestCheckPoolFitsOverflow(t *testing.T) {
	for _, gpu := range []bool{false, true} {
		err := checkPoolFits(1<<40, 1<<30, gpu, false, 0)
		if err == nil || !strings.Contains(err.Error(), "more memory than can be counted") {
			t.Errorf("2^40 pages of a GiB (gpu %v): %v; want an error", gpu, err)
		}
	}
}

// TestServeShippedModel runs the whole server on the shipped model with the
// official Go client, on each engine: the greedy answer streamed and not,
// the same text both ways, then the health check and the metrics the
// requests left behind.
func TestServeShippedModel(t *testing.T) {
	for _, engine := range []string{"week3", "week2"} {
		t.Run(engine, func(t *testing.T) { testServeShippedModel(t, engine) })
	}
}

func testServeShippedModel(t *testing.T, engine string) {
	srv, hs := startServer(t, serverOptions{engine: engine, queue: 4})
	client := openai.NewClient(option.WithBaseURL(hs.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:       srv.modelID,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is 348 + 275?")},
		Temperature: openai.Float(0),
		MaxTokens:   openai.Int(32),
	}
	r, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	text := r.Choices[0].Message.Content
	if !strings.Contains(text, "623") || r.Choices[0].FinishReason != "stop" {
		t.Errorf("the shipped model answered %q (%s); want 623 and finish_reason stop", text, r.Choices[0].FinishReason)
	}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	s := client.Chat.Completions.NewStreaming(ctx, params)
	var streamed strings.Builder
	var usage openai.CompletionUsage
	for s.Next() {
		c := s.Current()
		for _, ch := range c.Choices {
			streamed.WriteString(ch.Delta.Content)
		}
		if c.Usage.TotalTokens > 0 {
			usage = c.Usage
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if streamed.String() != text || usage.CompletionTokens != r.Usage.CompletionTokens || usage.PromptTokens != r.Usage.PromptTokens {
		t.Errorf("streamed %q with usage %+v; the same request unstreamed gave %q with %+v", streamed.String(), usage, text, r.Usage)
	}

	get := func(path string) string {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	if h := get("/health"); strings.TrimSpace(h) != "ok" {
		t.Errorf("/health: %q", h)
	}
	// A request is counted when its handler returns, which can be just
	// after the client has read the last byte: read /metrics until every
	// count is there, for a few seconds at most.
	wants := []string{
		`tinyllm_requests_total{code="200",path="/v1/chat/completions"} 2`,
		"tinyllm_time_to_first_token_seconds_count 2",
		"tinyllm_inter_token_latency_seconds_count",
		"tinyllm_kv_pages_in_use 0",
		"tinyllm_requests_waiting 0",
		"tinyllm_prompt_tokens_total " + itoa(2*r.Usage.PromptTokens),
		"tinyllm_generation_tokens_total " + itoa(2*r.Usage.CompletionTokens),
	}
	if engine == "week2" {
		wants = append(wants, "tinyllm_prefix_cache_hit_rate 0", "tinyllm_kv_pages_total 0")
	} else {
		// The second request's prompt is the first's: every full page of
		// it comes from the prefix cache, the last token is computed.
		p := int(r.Usage.PromptTokens)
		hits := (p - 1) / servePageSize * servePageSize
		wants = append(wants, "tinyllm_prefix_cache_hit_rate "+strconv.FormatFloat(float64(hits)/float64(2*p), 'g', -1, 64),
			"tinyllm_kv_pages_total "+strconv.Itoa(srv.engine.Stats().KVPagesTotal))
		if srv.engine.Stats().KVPagesTotal == 0 {
			t.Errorf("the week 3 engine reports no KV pages")
		}
	}
	var metrics string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		metrics = get("/metrics")
		missing := 0
		for _, want := range wants {
			if !strings.Contains(metrics, want) {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", metrics)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestServeQueueFullAndDisconnect fills the engine (one request running,
// one waiting) and checks that the next gets 429 with Retry-After, and
// that clients that go away free the engine, and on the Week 3 engine its
// pages.
func TestServeQueueFullAndDisconnect(t *testing.T) {
	for _, engine := range []string{"week3", "week2"} {
		t.Run(engine, func(t *testing.T) { testServeQueueFullAndDisconnect(t, engine) })
	}
}

func testServeQueueFullAndDisconnect(t *testing.T, engine string) {
	srv, hs := startServer(t, serverOptions{engine: engine, queue: 1, maxSeqs: 1})
	// Long replies, so that the first request is still running when the
	// third arrives: a plain continuation at temperature 2 with a seed
	// whose reply reaches max_tokens on both engines (chat replies of the
	// shipped model end after 10 to 20 tokens, which a fast sampler
	// finishes before the test has queued the others).
	body := `{"model":"tinyqwen-chat","stream":true,"temperature":2,"seed":16,"max_tokens":400,"prompt":"Once upon a time"}`
	var mu sync.Mutex // cancels grows from the waiting request's goroutine too
	var cancels []context.CancelFunc
	cancel := func(i int) {
		mu.Lock()
		defer mu.Unlock()
		cancels[i]()
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cancels {
			c()
		}
	}()
	open := func() *http.Response {
		ctx, cancel := context.WithCancel(context.Background())
		mu.Lock()
		cancels = append(cancels, cancel)
		mu.Unlock()
		req, _ := http.NewRequestWithContext(ctx, "POST", hs.URL+"/v1/completions", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	running := open() // answers at once: the stream's headers
	if running.StatusCode != 200 {
		t.Fatalf("first request: %d", running.StatusCode)
	}
	waitFor(t, "the first request to run", func() bool { return srv.engine.Stats().Running == 1 })
	if engine == "week3" {
		waitFor(t, "the first request to hold pages", func() bool { return srv.engine.Stats().KVPagesUsed > 0 })
	}
	waiting := make(chan *http.Response, 1)
	go func() { waiting <- open() }() // queued: no answer until the first ends
	waitFor(t, "the second request to wait", func() bool { return srv.engine.Stats().Waiting == 1 })
	refused := open()
	b, _ := io.ReadAll(refused.Body)
	refused.Body.Close()
	if refused.StatusCode != http.StatusTooManyRequests || refused.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"error"`) {
		t.Errorf("with the queue full: %d, Retry-After %q, body %s; want 429, Retry-After and an error object", refused.StatusCode, refused.Header.Get("Retry-After"), b)
	}
	// Both clients go away: the engine must stop generating for them.
	cancel(0)
	running.Body.Close()
	cancel(1)
	waitFor(t, "the engine to be idle after its clients left", func() bool {
		st := srv.engine.Stats()
		return st.Running == 0 && st.Waiting == 0 && st.KVPagesUsed == 0
	})
	select {
	case resp := <-waiting:
		if resp != nil {
			resp.Body.Close()
		}
	case <-time.After(5 * time.Second):
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// RequireBrowserEnv, when set to 1 (CI sets it), turns a missing Chromium
// from a check reported as not run into a failure.
const RequireBrowserEnv = "TINYLLM_REQUIRE_BROWSER"

// findChromium returns Debian's chromium (or another Chrome) on PATH.
func findChromium() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH")
}

// TestServeChatPageInChromium opens the chat page in a real headless
// Chromium, types a question, sends it, and waits for the streamed reply:
// the page, its JavaScript, the SSE parsing in the browser and the server
// together.
func TestServeChatPageInChromium(t *testing.T) {
	browser, err := findChromium()
	if err != nil {
		if os.Getenv(RequireBrowserEnv) == "1" {
			t.Fatalf("%v, and %s=1 requires the browser check (Debian: apt-get install chromium)", err, RequireBrowserEnv)
		}
		t.Skip("not run: no chromium (Debian: apt-get install chromium; CI runs it)")
	}
	_, hs := startServer(t, serverOptions{queue: 4})
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	fail := func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("driving the chat page in %s: %s: %v", browser, step, err)
		}
	}
	fail("open the page and send a question", chromedp.Do(ctx,
		chromedp.Navigate(hs.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("input")),
		chromedp.Poll[chromedp.Void](`document.getElementById("model").textContent === "tinyqwen-chat"`, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.SendKeys(chromedp.ID("input"), "What is 348 + 275?"),
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.CSS(`#messages .msg[data-done="1"]`)),
	))
	model, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("model")))
	fail("read the model", err)
	reply, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#messages .msg:last-child")))
	fail("read the reply", err)
	class, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#messages .msg:last-child"), "class"))
	fail("read the reply's class", err)
	cls := class.Value
	if model != "tinyqwen-chat" || !strings.Contains(cls, "assistant") || !strings.Contains(reply, "623") {
		t.Errorf("the page shows model %q and a reply %q (class %q); want tinyqwen-chat and an assistant reply with 623", model, reply, cls)
	}
}

// TestServeDeviceNeedsWeek3 checks that a GPU is refused for the engines
// that run on the CPU only, before any model is loaded.
func TestServeDeviceNeedsWeek3(t *testing.T) {
	gpu := kernels.PlatformBackend()
	if gpu == "" {
		gpu = kernels.CUDA // refused earlier, as not available here
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"serve", "--device", gpu, "--engine", "week2", "--port", "0"}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "--device "+gpu) || strings.Contains(stderr.String(), "goroutine ") {
		t.Errorf("tinyllm serve --device %s --engine week2: exit %d, stderr %q; want a usage error about --device", gpu, code, stderr.String())
	}
}

// TestServeRecordKeepsMaxBody runs serve with --record and a --max-body of
// 8 MiB: a body of 1.5 MB is answered as without the recording (and
// recorded), one past the limit gets the 413 it gets without it.
func TestServeRecordKeepsMaxBody(t *testing.T) {
	dir := t.TempDir()
	_, hs := startServer(t, serverOptions{record: dir, maxBody: 8 << 20, queue: 4})
	body := func(pad int) string {
		return `{"model":"tinyqwen-chat","prompt":"The capital of","max_tokens":1,"temperature":0,"user":"` + strings.Repeat("x", pad) + `"}`
	}
	for _, tc := range []struct {
		pad, status int
	}{
		{1_500_000, http.StatusOK},
		{9 << 20, http.StatusRequestEntityTooLarge},
	} {
		resp, err := http.Post(hs.URL+"/v1/completions", "application/json", strings.NewReader(body(tc.pad)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("a body of %d bytes with --max-body 8 MiB and --record: %d %.200s; want %d", len(body(tc.pad)), resp.StatusCode, b, tc.status)
		}
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "001.json")); err != nil || !bytes.Contains(raw, []byte(`"prompt": "The capital of"`)) {
		t.Errorf("the recording of the 1.5 MB request lacks its body (%v)", err)
	}
}
