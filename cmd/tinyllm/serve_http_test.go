package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/serving"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	"github.com/tinyllm-go/tinyllm/models"
)

// heldEngine is an engine whose every reply is the tokens of heldReply: the
// first at once, the others once release is closed. It tells started when
// a request has its first token; a request whose context ends first closes
// its stream without a Done event, as the real engines do.
type heldEngine struct {
	tokens  []int
	started chan struct{}
	release chan struct{}
}

const heldReply = "Paris is the capital of France."

func newHeldEngine(t *testing.T, tok *tokenizer.Tokenizer) *heldEngine {
	t.Helper()
	ids, err := tok.EncodeText(heldReply)
	if err != nil {
		t.Fatal(err)
	}
	return &heldEngine{tokens: ids, started: make(chan struct{}, 16), release: make(chan struct{})}
}

func (e *heldEngine) MaxContext() int      { return 512 }
func (e *heldEngine) Stats() serving.Stats { return serving.Stats{} }

func (e *heldEngine) Submit(ctx context.Context, req serving.Request) (<-chan serving.Event, error) {
	events := make(chan serving.Event, len(e.tokens)+1)
	go func() {
		defer close(events)
		events <- serving.Event{Token: e.tokens[0]}
		e.started <- struct{}{}
		select {
		case <-e.release:
		case <-ctx.Done():
			return
		}
		for _, id := range e.tokens[1:] {
			events <- serving.Event{Token: id}
		}
		events <- serving.Event{Done: true, Finish: serving.FinishStop, PromptTokens: len(req.Prompt), CompletionTokens: len(e.tokens) + 1}
	}()
	return events, nil
}

// shippedTokenizer is the shipped model's tokenizer.
func shippedTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	dir, err := models.Dir()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// heldServer is serve's HTTP server (the reference handler behind serve's
// routes) over a heldEngine, on a loopback port. serveUntil runs it until
// stop is called; err is its result once finished is closed. inFlight
// counts the handlers running.
type heldServer struct {
	eng      *heldEngine
	hs       *http.Server
	url      string
	stop     context.CancelFunc
	finished chan struct{}
	err      error
	inFlight atomic.Int32
}

func startHeldServer(t *testing.T, timeouts serveTimeouts, drain time.Duration) *heldServer {
	t.Helper()
	tok := shippedTokenizer(t)
	eng := newHeldEngine(t, tok)
	metrics := serving.NewMetrics(eng)
	api := impls["ref"].handler(serving.HandlerConfig{Engine: metrics.Instrument(eng), Tokenizer: tok, ModelID: models.Name, MaxBodyBytes: 1 << 20})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &heldServer{eng: eng, url: "http://" + ln.Addr().String(), stop: stop, finished: make(chan struct{})}
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		api.ServeHTTP(w, r)
	})
	s.hs = newHTTPServer(serving.NewMux(counted, metrics), timeouts)
	go func() {
		defer close(s.finished)
		s.err = serveUntil(ctx, s.hs, ln, drain, io.Discard)
	}()
	t.Cleanup(func() {
		stop()
		s.hs.Close()
		<-s.finished
	})
	return s
}

const heldChat = `{"model":"tinyqwen-chat","stream":true,"messages":[{"role":"user","content":"Where is Paris?"}]}`

// streamText reads a chat stream to its end: the text, the finish reason,
// and whether it ended with [DONE].
func streamText(r io.Reader) (text, finish string, done bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		switch {
		case !ok:
		case data == "[DONE]":
			done = true
		default:
			var c serving.ChatCompletionChunk
			if json.Unmarshal([]byte(data), &c) == nil && len(c.Choices) > 0 {
				text += c.Choices[0].Delta.Content
				if f := c.Choices[0].FinishReason; f != nil {
					finish = *f
				}
			}
		}
	}
	return text, finish, done
}

// TestServeShutdownDrains stops the server (as SIGTERM does) while a
// stream and a plain request are in flight: both must be answered whole,
// and serveUntil must return only after they were, since the engine is
// closed when it returns.
func TestServeShutdownDrains(t *testing.T) {
	s := startHeldServer(t, defaultTimeouts, time.Minute)
	type answer struct {
		status int
		body   string
		err    error
	}
	post := func(body string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			resp, err := http.Post(s.url+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				ch <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			ch <- answer{resp.StatusCode, string(b), err}
		}()
		return ch
	}
	stream := post(heldChat)
	plain := post(strings.Replace(heldChat, `"stream":true`, `"stream":false`, 1))
	<-s.eng.started
	<-s.eng.started
	// The engine goes on once the shutdown has begun: the listener is
	// closed by then, and serve's old code had already returned.
	s.hs.RegisterOnShutdown(func() { close(s.eng.release) })
	s.stop()
	<-s.finished
	if s.err != nil {
		t.Errorf("serveUntil: %v; want nil (every request finished within the drain)", s.err)
	}
	if n := s.inFlight.Load(); n != 0 {
		t.Errorf("serveUntil returned with %d requests still being answered; the engine would be closed under them", n)
	}
	st, pl := <-stream, <-plain
	if st.err != nil || pl.err != nil {
		t.Fatalf("the requests in flight failed: %v, %v", st.err, pl.err)
	}
	text, finish, done := streamText(strings.NewReader(st.body))
	if st.status != 200 || text != heldReply || finish != "stop" || !done {
		t.Errorf("the stream in flight got %d, text %q, finish %q, [DONE] %v; want 200, %q, stop and [DONE]", st.status, text, finish, done, heldReply)
	}
	if pl.status != 200 || !strings.Contains(pl.body, heldReply) || !strings.Contains(pl.body, `"finish_reason":"stop"`) {
		t.Errorf("the plain request in flight got %d %s; want 200 with the whole reply", pl.status, pl.body)
	}
	if _, err := http.Get(s.url + "/health"); err == nil {
		t.Errorf("a new connection was served after the shutdown")
	}
}

// TestServeShutdownCutsAtTheDeadline checks that a request still running
// when the drain ends is cut off (its connection closed, which ends its
// context and so its work in the engine), and that serveUntil says so.
func TestServeShutdownCutsAtTheDeadline(t *testing.T) {
	s := startHeldServer(t, defaultTimeouts, 10*time.Millisecond)
	got := make(chan string, 1)
	go func() {
		resp, err := http.Post(s.url+"/v1/chat/completions", "application/json", strings.NewReader(heldChat))
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-s.eng.started
	s.stop() // the engine is never released: only the deadline ends the request
	<-s.finished
	if err := s.err; !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "cut off") {
		t.Errorf("serveUntil with a request that outlives the drain: %v; want an error that says it was cut off", s.err)
	}
	if t.Failed() {
		s.hs.Close() // serveUntil left the request running: end it here
	}
	if body := <-got; strings.Contains(body, "[DONE]") {
		t.Errorf("the cut stream ended as if finished: %q", body)
	}
}

// TestServeTimeouts checks the server's limits on slow clients: a body that
// stalls is answered 408 and its connection closed, a stream that goes on
// far past the request's read limit is not cut, and an idle connection is
// closed. The clients give up after 10 s, 200 times the limits, so that
// only a server that never acts fails.
func TestServeTimeouts(t *testing.T) {
	const limit = 50 * time.Millisecond
	s := startHeldServer(t, serveTimeouts{header: time.Minute, request: limit, idle: limit}, time.Minute)
	dial := func() (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn, bufio.NewReader(conn)
	}
	closed := func(br *bufio.Reader) bool {
		_, err := br.ReadByte()
		return err == io.EOF
	}

	t.Run("stalled_body", func(t *testing.T) {
		conn, br := dial()
		io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\":")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer to a body that stalled: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "did not arrive in time") {
			t.Errorf("a body that stalled: %d %s; want 408 and an error object that says so", resp.StatusCode, b)
		}
		if !closed(br) {
			t.Errorf("the connection of a body that stalled is still open")
		}
	})

	t.Run("long_stream", func(t *testing.T) {
		conn, br := dial()
		io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "+
			itoa(int64(len(heldChat)))+"\r\n\r\n"+heldChat)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		<-s.eng.started
		// The reply waits until the request's read limit has passed
		// several times over: a limit still in force would end the
		// request's context now, and the stream with it.
		<-time.After(10 * limit)
		close(s.eng.release)
		text, finish, done := streamText(resp.Body)
		if text != heldReply || finish != "stop" || !done {
			t.Errorf("a stream past the read limit: text %q, finish %q, [DONE] %v; want the whole reply", text, finish, done)
		}
	})

	t.Run("idle_connection", func(t *testing.T) {
		conn, br := dial()
		io.WriteString(conn, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		if !closed(br) {
			t.Errorf("an idle connection is still open")
		}
	})
}
