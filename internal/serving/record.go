package serving

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
//
// The numbers go on from the highest NNN.json already in dir, and a file is
// never overwritten: a second run into the same folder adds to it.
//
// Bodies up to maxBody bytes (the handler's own limit, HandlerConfig's
// MaxBodyBytes; 0 means its default of 1 MiB) are read and recorded; h is
// given the body whole, so that it answers a larger one as it would
// without the recording (413).
func Record(dir string, maxBody int64, h http.Handler) (http.Handler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	last, err := lastRecording(dir)
	if err != nil {
		return nil, err
	}
	if maxBody <= 0 {
		maxBody = 1 << 20
	}
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") {
			h.ServeHTTP(w, r)
			return
		}
		// One byte past the limit tells a body over it; what is not
		// read here, h reads after what was.
		body, _ := io.ReadAll(io.LimitReader(r.Body, min(maxBody, math.MaxInt64-1)+1))
		r.Body = readCloser{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		rec := &recordingWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		ex := Exchange{Client: r.UserAgent(), Method: r.Method, Path: r.URL.Path, Headers: map[string]string{},
			Status: rec.status, ContentType: w.Header().Get("Content-Type"), ResponseBody: rec.buf.String()}
		if int64(len(body)) <= maxBody && json.Valid(body) {
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
		f, err := createNext(dir, &last)
		mu.Unlock()
		if err == nil {
			_, err = f.Write(append(out, '\n'))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "recording:", err)
		}
	}), nil
}

// readCloser is a request body read from r and closed with c.
type readCloser struct {
	io.Reader
	io.Closer
}

// lastRecording is the highest number of a recording (NNN.json) in dir, or
// 0 when it has none.
func lastRecording(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	last := 0
	for _, e := range entries {
		digits, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || digits == "" || strings.Trim(digits, "0123456789") != "" {
			continue
		}
		if n, err := strconv.Atoi(digits); err == nil && n > last {
			last = n
		}
	}
	return last, nil
}

// createNext creates the recording after *last and moves *last to it. A
// name that exists already (a file written into dir since it was read) is
// skipped, never truncated.
func createNext(dir string, last *int) (*os.File, error) {
	for {
		*last++
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%03d.json", *last)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
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
