package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/gpurunner"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/serving"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devsample"
	"github.com/tinyllm-go/tinyllm/models"
	refday6 "github.com/tinyllm-go/tinyllm/solutions/week1/day6"
	w3day1 "github.com/tinyllm-go/tinyllm/solutions/week3/day1"
	w3day2 "github.com/tinyllm-go/tinyllm/solutions/week3/day2"
	w3day3 "github.com/tinyllm-go/tinyllm/solutions/week3/day3"
	w3day4 "github.com/tinyllm-go/tinyllm/solutions/week3/day4"
	w3day6 "github.com/tinyllm-go/tinyllm/solutions/week3/day6"
)

// runServe is `tinyllm serve`: the OpenAI API, the metrics and the chat
// page over the Week 3 engine (or the Week 2 one), until interrupted.
func runServe(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	modelFlag := fs.String("model", "", "Hugging Face model folder; default: the shipped "+models.Name)
	implFlag := fs.String("impl", "ref", "implementation: ref (the solutions) or learner (your week3/day5 handler over your Week 2 engine, built on demand)")
	host := fs.String("host", "127.0.0.1", "address to listen on (0.0.0.0: every interface)")
	port := fs.Int("port", 8000, "port to listen on")
	engineFlag := fs.String("engine", "", "engine: week3 (the batching engine with the paged KV cache and the prefix cache; the default with --impl ref) or week2 (one request at a time; the default with --impl learner)")
	queue := fs.Int("queue", 16, "requests that may wait while the engine runs its others (week2: one; week3: --max-seqs); one more gets 429")
	maxSeqs := fs.Int("max-seqs", 64, "week3: the most requests generated at once (max_num_seqs)")
	budget := fs.Int("max-batched-tokens", 512, "week3: the token budget of one step (max_num_batched_tokens): prompt chunks and decodes together")
	kvPages := fs.Int("kv-pages", 0, "week3: pages of 16 positions in the KV cache pool (0: room for --max-seqs requests of the whole context, at most --kv-mib)")
	kvMiB := fs.Int("kv-mib", 1024, "week3, with --kv-pages 0: the most memory of the KV cache pool, MiB")
	device := fs.String("device", "cpu", "week3: where the model runner runs: cpu, or cuda (the GPU runner: weights, KV pages and activations in device memory)")
	maxBody := fs.Int64("max-body", 1<<20, "largest request body, in bytes; a larger one gets 413")
	record := fs.String("record", "", "write every /v1/ exchange to this folder as JSON, numbered on from the recordings already there (maintainers: recording the W3D5 fixtures)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *port < 0 || *port > 65535 {
		return fmt.Errorf("%w: --port must be from 0 to 65535, got %d", errUsage, *port)
	}
	if *queue < 1 || *queue > serving.QueueLimit {
		return fmt.Errorf("%w: --queue must be from 1 to %d, got %d", errUsage, serving.QueueLimit, *queue)
	}
	if *maxBody < 1024 || *maxBody > maxBodyLimit {
		return fmt.Errorf("%w: --max-body must be from 1024 to %d, got %d", errUsage, int64(maxBodyLimit), *maxBody)
	}
	switch {
	case *maxSeqs > serving.RunningLimit:
		return fmt.Errorf("%w: --max-seqs must be at most %d, got %d", errUsage, serving.RunningLimit, *maxSeqs)
	case *maxSeqs < 1 || *budget < *maxSeqs:
		return fmt.Errorf("%w: need 1 <= --max-seqs <= --max-batched-tokens, got %d and %d", errUsage, *maxSeqs, *budget)
	case *kvPages < 0 || *kvPages > kvPagesLimit:
		return fmt.Errorf("%w: --kv-pages must be from 0 to %d, got %d", errUsage, kvPagesLimit, *kvPages)
	case *kvMiB < 1 || *kvMiB > kvMiBLimit:
		return fmt.Errorf("%w: --kv-mib must be from 1 to %d, got %d", errUsage, kvMiBLimit, *kvMiB)
	}
	switch {
	case *device == "auto":
		return fmt.Errorf("%w: serve takes --device cpu or cuda, not auto: the server says where it runs", errUsage)
	case checkDeviceFlag(*device) != nil:
		return checkDeviceFlag(*device)
	}
	srv, err := newServer(serverOptions{modelDir: *modelFlag, impl: *implFlag, engine: *engineFlag, queue: *queue, maxBody: *maxBody, record: *record,
		maxSeqs: *maxSeqs, budget: *budget, kvPages: *kvPages, kvMiB: *kvMiB, device: *device}, stderr)
	if err != nil {
		return err
	}
	defer srv.close()
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "serving %s on http://%s (chat page at /, OpenAI API at /v1, metrics at /metrics)\n", srv.modelID, ln.Addr())
	ctx, stop := serveSignals()
	defer stop()
	// Once a signal has come, the next one ends the process at once
	// rather than wait for the drain.
	context.AfterFunc(ctx, stop)
	return serveUntil(ctx, newHTTPServer(srv.handler, defaultTimeouts), ln, shutdownDrain, stderr)
}

// serveSignals is what stops `tinyllm serve`: SIGINT (Ctrl-C) or SIGTERM.
// Tests replace it.
var serveSignals = func() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// shutdownDrain is how long the requests in flight get to finish once serve
// is told to stop.
const shutdownDrain = 5 * time.Second

// serveTimeouts are the HTTP server's limits on slow clients: one that
// sends its headers and then stalls mid-body must not hold a connection
// (and a goroutine) forever.
type serveTimeouts struct {
	header  time.Duration // to send the request's headers
	request time.Duration // to send the whole request, body included
	idle    time.Duration // between two requests on one connection
}

// defaultTimeouts are serve's: a request of the default --max-body (1 MiB)
// arrives within the minute over a link of 150 kbit/s.
var defaultTimeouts = serveTimeouts{header: 10 * time.Second, request: 60 * time.Second, idle: 120 * time.Second}

// newHTTPServer is the HTTP server around h. Nothing bounds the time a
// response takes: net/http lifts the request's read deadline (ReadTimeout)
// once the handler has read the body to its end, before its background
// read that notices a client going away, so a long stream is not cut
// (TestServeTimeouts checks it).
func newHTTPServer(h http.Handler, t serveTimeouts) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: t.header, ReadTimeout: t.request, IdleTimeout: t.idle}
}

// serveUntil serves hs on ln until ctx is done, then shuts it down: the
// listener closes at once, and the requests in flight get drain to finish
// (a stream to its finish reason and [DONE]) before their connections are
// closed. It returns when that is over, so that the caller closes the
// engine only once no request needs it: hs.Serve itself returns as soon as
// the shutdown begins. Requests cut off at the deadline make an error.
func serveUntil(ctx context.Context, hs *http.Server, ln net.Listener, drain time.Duration, log io.Writer) error {
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err // before any Shutdown: the listener failed
	case <-ctx.Done():
	}
	fmt.Fprintf(log, "shutting down: the requests in flight have %s to finish\n", drain)
	deadline, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := hs.Shutdown(deadline)
	if err != nil {
		// Their clients see the connection close; their requests'
		// contexts end, which stops the engine's work for them.
		hs.Close()
		err = fmt.Errorf("shutting down: requests still running after %s were cut off: %w", drain, err)
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

type serverOptions struct {
	modelDir string // "" for the shipped model
	impl     string // "ref" or "learner"; "" is ref
	engine   string // "week3" or "week2"; "": week3 for ref, week2 for learner
	queue    int
	maxBody  int64
	record   string
	// The Week 3 engine's limits: 0 takes serve's defaults (64 requests
	// at once, 512 tokens a step, pages for every request's whole context
	// within 1 GiB).
	maxSeqs, budget, kvPages, kvMiB int
	// device is where the Week 3 engine's model runner runs: "" or
	// "cpu", or a GPU backend (the GPU runner).
	device string
}

// server is a loaded model behind the reference handler.
type server struct {
	handler http.Handler
	modelID string
	engine  serving.Engine
	close   func()
}

// newServer loads the model and its engine (the Week 3 batching engine, or
// the Week 2 model one request at a time) and builds the routes around the
// implementation's W3D5 handler.
func newServer(o serverOptions, stderr io.Writer) (*server, error) {
	if o.impl == "" {
		o.impl = "ref"
	}
	if o.engine == "" {
		o.engine = "week3"
		if o.impl == "learner" {
			o.engine = "week2" // the learner's handler over their own Week 2 engine
		}
	}
	if o.engine != "week3" && o.engine != "week2" {
		return nil, fmt.Errorf("%w: --engine must be week3 or week2, got %q", errUsage, o.engine)
	}
	if o.device != "" && o.device != "cpu" && (o.engine != "week3" || o.impl != "ref") {
		return nil, fmt.Errorf("%w: --device %s runs the reference Week 3 engine's GPU runner; --engine %s --impl %s runs on the CPU", errUsage, o.device, o.engine, o.impl)
	}
	f := &engineFlags{modelDir: o.modelDir, impl: o.impl, week: 2, topP: 1, maxTokens: 1, device: "cpu", noModel: o.engine == "week3"}
	if err := f.validate(stderr); err != nil {
		return nil, err
	}
	e, err := loadEngine(f, stderr)
	if err != nil {
		return nil, err
	}
	id := modelID(o.modelDir, f.modelDir)
	var eng interface {
		serving.Engine
		Close()
	}
	if o.engine == "week3" {
		eng, err = newWeek3Engine(e, o, stderr)
	} else {
		// The CPU's Week 2 model: the serial engine drives an
		// llm.CachedModel, one request at a time.
		eng, err = serving.NewSerialEngine(serving.SerialConfig{
			Model: e.model.cached,
			NewSampler: func(t, p float64, seed uint64) llm.Sampler {
				return tokenizerSampler{e.impl.sampler(t, p, 0, seed), e.tok.VocabSize()}
			},
			LogProbs:     refday6.LastLogProbs,
			EOS:          e.eos,
			MaxContext:   e.ck.Config.MaxPositionEmbeddings,
			QueueSize:    o.queue,
			PrefillChunk: prefillChunk(e.ck.Config),
		})
	}
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
		if h, err = serving.Record(o.record, o.maxBody, h); err != nil {
			eng.Close()
			e.close()
			return nil, err
		}
	}
	return &server{handler: h, modelID: id, engine: eng, close: func() { eng.Close(); e.close() }}, nil
}

// servePageSize is the positions of a page of serve's KV cache pool.
const servePageSize = 16

// The bounds of serve's memory flags. A body is read into memory whole, so
// --max-body is what one request may cost; a GiB is far past any prompt.
// The page pool keeps a free list and a reference count of every page in
// host memory even when the pages are on a GPU: 2^24 pages of 16 positions
// (268 million positions) is past any pool these engines serve, and a
// pebibyte of --kv-mib turns into bytes without overflow.
const (
	maxBodyLimit = 1 << 30
	kvPagesLimit = 1 << 24
	kvMiBLimit   = 1 << 30
)

// newWeek3Engine builds the reference Week 3 engine on e's checkpoint: Day
// 1's batched model, Day 3's page pool, Day 6's prefix-caching block
// manager, Day 4's paged model runner and Day 2's scheduler and step loop,
// behind serving.BatchEngine. The pool holds o.kvPages pages, or (0) room
// for o.maxSeqs requests of the whole context within o.kvMiB, and never
// less than one such request.
func newWeek3Engine(e *engine, o serverOptions, stderr io.Writer) (week3Engine, error) {
	if o.maxSeqs == 0 {
		o.maxSeqs = 64
	}
	if o.budget == 0 {
		o.budget = 512
	}
	if o.kvMiB == 0 {
		o.kvMiB = 1024
	}
	if o.queue == 0 {
		o.queue = 16
	}
	gpu := o.device != "" && o.device != "cpu"
	// On the CPU, a model with many ids beyond its tokenizer's (a random
	// one from mkmodel) draws among the tokenizer's ids alone, as generate
	// and chat do; the GPU runner draws on the device.
	few := !gpu && fewTokenizerIDs(e.tok.VocabSize(), e.ck.Config.VocabSize)
	sh := llm.ShapeOf(e.ck.Config)
	pc := w3day3.PoolConfig{PageSize: servePageSize, Layers: sh.NumLayers, KVHeads: sh.NumKVHeads, HeadDim: sh.HeadDim}
	perPage := pc.BytesPerPage()
	if gpu {
		perPage = gpurunner.DeviceBytesPerPage(e.ck.Config, gpurunner.Options{PageSize: servePageSize})
	}
	one := llm.PagesFor(sh.MaxContext-1, servePageSize)
	pc.NumPages = o.kvPages
	if pc.NumPages == 0 {
		pc.NumPages = max(one, min(o.maxSeqs*one, int(int64(o.kvMiB)<<20/perPage)))
	}
	if pc.NumPages < one {
		return nil, fmt.Errorf("%w: --kv-pages %d cannot hold one request of the model's context of %d positions (%d pages of %d)",
			errUsage, pc.NumPages, sh.MaxContext, one, servePageSize)
	}
	if err := checkPoolFits(pc.NumPages, perPage, gpu, o.kvPages == 0, o.kvMiB); err != nil {
		return nil, err
	}
	pool, err := w3day3.NewPagePool(pc)
	if err != nil {
		return nil, err
	}
	var runner llm.ModelRunner
	release, where := func() {}, "the CPU"
	if gpu {
		dev, err := kernels.Open()
		if err != nil {
			return nil, fmt.Errorf("--device %s: %w", o.device, err)
		}
		m, err := gpurunner.Load(dev, e.ck, gpurunner.Options{MaxTokens: o.budget, MaxSeqs: o.maxSeqs, NumPages: pc.NumPages, PageSize: servePageSize})
		if err != nil {
			dev.Close()
			return nil, err
		}
		release, where = func() { m.Close(); dev.Close() }, dev.String()
		if runner, err = m.Runner(pool); err != nil {
			release()
			return nil, err
		}
	} else {
		model, err := w3day1.NewQwen2ModelWeek3(e.ck)
		if err != nil {
			return nil, err
		}
		r, err := w3day4.NewRunner(model, pool)
		if err != nil {
			return nil, err
		}
		if few {
			r.Sampler = tokenizerSampler{vocab: e.tok.VocabSize()}
		}
		runner = r
	}
	blocks := w3day6.NewPrefixBlockManager(pool)
	core, err := w3day2.NewEngine(llm.EngineConfig{MaxNumBatchedTokens: o.budget, MaxNumSeqs: o.maxSeqs, MaxContext: sh.MaxContext, EOS: e.eos}, runner, blocks)
	if err != nil {
		release()
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	fmt.Fprintf(stderr, "week 3 engine on %s: up to %d requests at once, %d tokens a step, %d KV pages of %d positions (%.0f MiB), prefix cache on\n",
		where, o.maxSeqs, o.budget, pc.NumPages, servePageSize, float64(int64(pc.NumPages)*perPage)/(1<<20))
	be, err := serving.NewBatchEngine(serving.BatchConfig{
		Engine: core, Blocks: blocks,
		// The reference engine samples with the reference sampler, also
		// under --impl learner (whose handler alone is the learner's). The
		// GPU runner draws on the device with its settings instead.
		NewSampler: func(t, p float64, seed uint64) llm.Sampler {
			s := impls["ref"].sampler(t, p, 0, seed)
			if few {
				return tokenizerSampler{s, e.tok.VocabSize()}
			}
			return settingsSampler{s, devsample.Params{Temperature: t, TopP: p, Seed: seed}}
		},
		MaxContext: sh.MaxContext, MaxRunning: o.maxSeqs, QueueSize: o.queue,
	})
	if err != nil {
		release()
		return nil, err
	}
	return closingEngine{be, release}, nil
}

// checkPoolFits refuses, before anything is allocated, a pool of pages of
// perPage bytes that cannot fit: one whose size overflows, and on the CPU
// one larger than the machine's memory, which would otherwise start and die
// with the runtime's out-of-memory trace at the first request that touches
// the pages. fromMiB says the size came from --kv-mib, not --kv-pages. A
// GPU pool is in device memory, which the GPU runner checks itself.
func checkPoolFits(pages int, perPage int64, gpu, fromMiB bool, kvMiB int) error {
	what, hint := fmt.Sprintf("--kv-pages %d", pages), "ask for fewer pages"
	if fromMiB {
		what = fmt.Sprintf("the KV cache pool of %d pages (--kv-mib %d)", pages, kvMiB)
		hint = "lower --kv-mib or --max-seqs, or set --kv-pages"
	}
	hi, bytes := bits.Mul64(uint64(pages), uint64(perPage))
	if hi != 0 || bytes > math.MaxInt64 {
		return fmt.Errorf("%w: %s of %d bytes each is more memory than can be counted", errUsage, what, perPage)
	}
	if gpu {
		return nil
	}
	if mem, ok := physicalMemory(); ok && bytes > mem {
		return fmt.Errorf("%w: %s needs %d MiB, more than this machine's %d MiB of memory: %s",
			errUsage, what, bytes>>20, mem>>20, hint)
	}
	return nil
}

// settingsSampler is Week 1's sampler that also tells its settings
// (devsample.Settings), so that the GPU runner can draw the request's
// tokens on the device with the same filters and random stream; the CPU
// runner calls the sampler itself.
type settingsSampler struct {
	llm.Sampler
	p devsample.Params
}

// DeviceParams returns the sampler's settings.
func (s settingsSampler) DeviceParams() devsample.Params { return s.p }

// week3Engine is the Week 3 engine behind the server.
type week3Engine interface {
	serving.Engine
	Close()
}

// closingEngine is a BatchEngine whose Close also frees what the model
// runner holds (the GPU runner's model and device).
type closingEngine struct {
	*serving.BatchEngine
	release func()
}

// Close stops the engine, then frees the runner's memory.
func (c closingEngine) Close() {
	c.BatchEngine.Close()
	c.release()
}

// modelID is the model's name in the API: its folder's name, and the
// shipped model's own name (its unpacked folder carries a hash).
func modelID(flagValue, dir string) string {
	if flagValue == "" {
		return models.Name
	}
	return filepath.Base(filepath.Clean(dir))
}
