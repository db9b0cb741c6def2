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
// HEAD is answered wherever GET is, and another method on those three
// paths gets a 405 with Allow, as api's routes do. Anything else gets a
// 404 in the OpenAI error format.
func NewMux(api http.Handler, m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/{$}", m.Count("/", getOnly(http.HandlerFunc(servePage))))
	mux.Handle("/health", m.Count("/health", getOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	}))))
	mux.Handle("/metrics", getOnly(m.Handler()))
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

// getOnly serves GET and HEAD with h (net/http sends a HEAD request the
// headers of the GET answer, without its body) and answers anything else
// 405. A "GET /path" pattern would not do: the mux would then give other
// methods to the catch-all route, a 404.
func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			WriteError(w, &APIError{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error",
				Message: fmt.Sprintf("%s needs GET, not %s", r.URL.Path, r.Method)})
			return
		}
		h.ServeHTTP(w, r)
	})
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
