package serving

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Exchange is one recorded request and its response, as the official
// clients sent and received it: the fixtures of Week 3 Day 5's checks are
// exchanges recorded from the OpenAI Python, Node and Go clients.
type Exchange struct {
	Client       string            `json:"client"` // the client's User-Agent
	Method       string            `json:"method"`
	Path         string            `json:"path"`
	Headers      map[string]string `json:"headers"` // the request's headers that describe the client and the body
	Body         json.RawMessage   `json:"body,omitempty"`
	Status       int               `json:"status"`
	ContentType  string            `json:"content_type"`
	ResponseBody string            `json:"response_body"`
}

// recordedHeaders are the request headers kept in a recording; none of
// them carries a secret (the clients' Authorization header is left out).
var recordedHeaders = []string{"Content-Type", "Accept", "User-Agent", "X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-Runtime", "X-Stainless-Runtime-Version"}

// Record wraps h so that every request to /v1/ and its response are
// written to dir as NNN.json (an Exchange). It is for maintainers
// re-recording the fixtures (`tinyllm serve --record DIR`); a server does
// not run with it otherwise.
func Record(dir string, h http.Handler) (http.Handler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	n := 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") {
			h.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recordingWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		ex := Exchange{Client: r.UserAgent(), Method: r.Method, Path: r.URL.Path, Headers: map[string]string{},
			Status: rec.status, ContentType: w.Header().Get("Content-Type"), ResponseBody: rec.buf.String()}
		if json.Valid(body) {
			ex.Body = body
		}
		for _, k := range recordedHeaders {
			if v := r.Header.Get(k); v != "" {
				ex.Headers[k] = v
			}
		}
		out, err := json.MarshalIndent(ex, "", "  ")
		if err != nil {
			return
		}
		mu.Lock()
		n++
		name := filepath.Join(dir, fmt.Sprintf("%03d.json", n))
		mu.Unlock()
		if err := os.WriteFile(name, append(out, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "recording:", err)
		}
	}), nil
}

type recordingWriter struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (w *recordingWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	w.buf.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *recordingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
