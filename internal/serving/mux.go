package serving

import (
	"embed"
	"fmt"
	"net/http"
)

//go:embed page/index.html
var page embed.FS

// NewMux puts the routes around the day's OpenAI handler api:
//
//	GET /          the chat page (embedded in the binary)
//	GET /health    200 "ok"
//	GET /metrics   Prometheus metrics
//	/v1/…          api, counted in the metrics
//
// Anything else gets a 404 in the OpenAI error format.
func NewMux(api http.Handler, m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", m.Count("/", http.HandlerFunc(servePage)))
	mux.Handle("GET /health", m.Count("/health", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})))
	mux.Handle("GET /metrics", m.Handler())
	for _, p := range []string{"/v1/chat/completions", "/v1/completions", "/v1/models"} {
		mux.Handle(p, m.Count(p, api))
	}
	mux.Handle("/v1/models/", m.Count("/v1/models/", api))
	mux.Handle("/", m.Count("other", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, &APIError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found",
			Message: fmt.Sprintf("no route %s %s: this server has /v1/chat/completions, /v1/completions, /v1/models, /health, /metrics and the chat page at /", r.Method, r.URL.Path)})
	})))
	return mux
}

func servePage(w http.ResponseWriter, r *http.Request) {
	b, err := page.ReadFile("page/index.html")
	if err != nil { // embedded at build time: cannot happen in a built binary
		WriteError(w, &APIError{Status: http.StatusInternalServerError, Type: "server_error", Message: "the chat page is missing from this build"})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}
