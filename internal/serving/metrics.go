package serving

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the server's Prometheus metrics, in a registry of their own
// (so two servers in one process, as in the tests, do not collide):
//
//	tinyllm_requests_total{path,code}          HTTP requests answered
//	tinyllm_prompt_tokens_total                 prompt tokens of submitted requests
//	tinyllm_generation_tokens_total             tokens generated
//	tinyllm_requests_waiting / _running         the engine's queue
//	tinyllm_kv_pages_in_use / tinyllm_kv_pages_total
//	tinyllm_prefix_cache_hit_rate
//	tinyllm_time_to_first_token_seconds         histogram
//	tinyllm_inter_token_latency_seconds         histogram
//
// The token counts and latencies are measured by Instrument, around the
// engine, so the day's handler does not have to; the queue and page figures
// are read from the engine's Stats when /metrics is scraped.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	promptToks prometheus.Counter
	genToks    prometheus.Counter
	ttft       prometheus.Histogram
	itl        prometheus.Histogram
}

// NewMetrics registers the metrics, reading the gauges from engine.
func NewMetrics(engine Engine) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tinyllm_requests_total", Help: "HTTP requests answered, by path and status code.",
	}, []string{"path", "code"})
	m.promptToks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tinyllm_prompt_tokens_total", Help: "Prompt tokens of the requests submitted to the engine.",
	})
	m.genToks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tinyllm_generation_tokens_total", Help: "Tokens generated (end-of-sequence tokens included).",
	})
	// Buckets from 1 ms: a decode step of the shipped model on a CPU takes
	// about a millisecond, a 0.5B model's prefill on a CPU whole seconds.
	m.ttft = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tinyllm_time_to_first_token_seconds", Help: "From a request's submission to its first generated token.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	m.itl = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tinyllm_inter_token_latency_seconds", Help: "Between two consecutive tokens of one request.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	gauge := func(name, help string, f func(Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(engine.Stats()) })
	}
	m.reg.MustRegister(m.requests, m.promptToks, m.genToks, m.ttft, m.itl,
		gauge("tinyllm_requests_waiting", "Requests queued in the engine, not started (the queue depth).", func(s Stats) float64 { return float64(s.Waiting) }),
		gauge("tinyllm_requests_running", "Requests the engine is generating.", func(s Stats) float64 { return float64(s.Running) }),
		gauge("tinyllm_kv_pages_in_use", "Pages of the paged KV cache held by requests (0 for an engine without pages).", func(s Stats) float64 { return float64(s.KVPagesUsed) }),
		gauge("tinyllm_kv_pages_total", "Pages of the paged KV cache (0 for an engine without pages).", func(s Stats) float64 { return float64(s.KVPagesTotal) }),
		gauge("tinyllm_prefix_cache_hit_rate", "Share of prompt tokens found in the prefix cache (0 without one).", func(s Stats) float64 { return s.PrefixCacheHitRate }),
	)
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Count wraps h so that every answer is counted by path and status code.
func (m *Metrics) Count(path string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		m.requests.WithLabelValues(path, strconv.Itoa(sw.code)).Inc()
	})
}

// Instrument returns e with its streams measured: prompt and generated
// tokens, time to first token, time between tokens.
func (m *Metrics) Instrument(e Engine) Engine { return instrumented{e, m} }

type instrumented struct {
	Engine
	m *Metrics
}

func (in instrumented) Submit(ctx context.Context, req Request) (<-chan Event, error) {
	start := time.Now()
	events, err := in.Engine.Submit(ctx, req)
	if err != nil {
		return nil, err
	}
	in.m.promptToks.Add(float64(len(req.Prompt)))
	out := make(chan Event)
	go func() {
		defer close(out)
		last, n := start, 0
		for ev := range events {
			now := time.Now()
			switch {
			case ev.Done:
				// The end-of-sequence token is counted, but it arrives
				// inside the Done event: only its count is known.
				in.m.genToks.Add(float64(ev.CompletionTokens - n))
			case n == 0:
				in.m.ttft.Observe(now.Sub(start).Seconds())
				in.m.genToks.Inc()
				n++
			default:
				in.m.itl.Observe(now.Sub(last).Seconds())
				in.m.genToks.Inc()
				n++
			}
			last = now
			select {
			case out <- ev:
			case <-ctx.Done():
				// The reader is gone; drain so the engine is not
				// blocked (it stops on its own, it has the same ctx).
				for range events {
				}
				return
			}
		}
	}()
	return out, nil
}

// statusWriter remembers the status code written through it, and passes
// Flush on, which streaming needs.
type statusWriter struct {
	http.ResponseWriter
	code    int
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.code, w.written = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
