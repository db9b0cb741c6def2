package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/serving"
	"github.com/tinyllm-go/tinyllm/models"
	refday6 "github.com/tinyllm-go/tinyllm/solutions/week1/day6"
)

// runServe is `tinyllm serve`: the OpenAI API, the metrics and the chat
// page over the Week 2 engine, until interrupted.
func runServe(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	modelFlag := fs.String("model", "", "Hugging Face model folder; default: the shipped "+models.Name)
	implFlag := fs.String("impl", "ref", "implementation: ref (the solutions) or learner (your week3/day5 handler over your Week 2 engine, built on demand)")
	host := fs.String("host", "127.0.0.1", "address to listen on (0.0.0.0: every interface)")
	port := fs.Int("port", 8000, "port to listen on")
	queue := fs.Int("queue", 16, "requests that may wait while one runs; one more gets 429")
	maxBody := fs.Int64("max-body", 1<<20, "largest request body, in bytes; a larger one gets 413")
	record := fs.String("record", "", "write every /v1/ exchange to this folder as JSON (maintainers: recording the W3D5 fixtures)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *port < 0 || *port > 65535 {
		return fmt.Errorf("%w: --port must be from 0 to 65535, got %d", errUsage, *port)
	}
	if *queue < 1 {
		return fmt.Errorf("%w: --queue must be at least 1, got %d", errUsage, *queue)
	}
	if *maxBody < 1024 {
		return fmt.Errorf("%w: --max-body must be at least 1024, got %d", errUsage, *maxBody)
	}
	srv, err := newServer(serverOptions{modelDir: *modelFlag, impl: *implFlag, queue: *queue, maxBody: *maxBody, record: *record}, stderr)
	if err != nil {
		return err
	}
	defer srv.close()
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.handler, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "serving %s on http://%s (chat page at /, OpenAI API at /v1, metrics at /metrics)\n", srv.modelID, ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(shutdown)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type serverOptions struct {
	modelDir string // "" for the shipped model
	impl     string // "ref" or "learner"; "" is ref
	queue    int
	maxBody  int64
	record   string
}

// server is a loaded model behind the reference handler.
type server struct {
	handler http.Handler
	modelID string
	engine  serving.Engine
	close   func()
}

// newServer loads the model (the implementation's Week 2 engine, one
// request at a time) and builds the routes around its W3D5 handler.
func newServer(o serverOptions, stderr io.Writer) (*server, error) {
	if o.impl == "" {
		o.impl = "ref"
	}
	// The CPU's Week 2 model: the serial engine drives an llm.CachedModel.
	// (The GPU engine of W2D7 and the Week 3 batching engine plug in
	// behind serving.Engine later.)
	f := &engineFlags{modelDir: o.modelDir, impl: o.impl, week: 2, topP: 1, maxTokens: 1, device: "cpu"}
	if err := f.validate(stderr); err != nil {
		return nil, err
	}
	e, err := loadEngine(f, stderr)
	if err != nil {
		return nil, err
	}
	id := modelID(o.modelDir, f.modelDir)
	eng, err := serving.NewSerialEngine(serving.SerialConfig{
		Model: e.model.cached,
		NewSampler: func(t, p float64, seed uint64) llm.Sampler {
			return e.impl.sampler(t, p, 0, seed)
		},
		LogProbs:     refday6.LastLogProbs,
		EOS:          e.eos,
		MaxContext:   e.ck.Config.MaxPositionEmbeddings,
		QueueSize:    o.queue,
		PrefillChunk: defaultPrefillChunk,
	})
	if err != nil {
		e.close()
		return nil, err
	}
	metrics := serving.NewMetrics(eng)
	var api http.Handler
	if err := learnerGuard(o.impl, func() error {
		api = e.impl.handler(serving.HandlerConfig{Engine: metrics.Instrument(eng), Tokenizer: e.tok, ModelID: id, MaxBodyBytes: o.maxBody})
		return nil
	}); err != nil {
		eng.Close()
		e.close()
		return nil, err
	}
	h := serving.NewMux(api, metrics)
	if o.record != "" {
		if h, err = serving.Record(o.record, h); err != nil {
			eng.Close()
			e.close()
			return nil, err
		}
	}
	return &server{handler: h, modelID: id, engine: eng, close: func() { eng.Close(); e.close() }}, nil
}

// modelID is the model's name in the API: its folder's name, and the
// shipped model's own name (its unpacked folder carries a hash).
func modelID(flagValue, dir string) string {
	if flagValue == "" {
		return models.Name
	}
	return filepath.Base(filepath.Clean(dir))
}
