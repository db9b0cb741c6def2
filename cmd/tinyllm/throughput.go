package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/gpurunner"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/models"
	w3day1 "github.com/tinyllm-go/tinyllm/solutions/week3/day1"
	w3day2 "github.com/tinyllm-go/tinyllm/solutions/week3/day2"
	w3day3 "github.com/tinyllm-go/tinyllm/solutions/week3/day3"
	w3day4 "github.com/tinyllm-go/tinyllm/solutions/week3/day4"
)

// The throughput workload is nano-vllm's benchmark: N requests of random
// token ids, prompt and output lengths each drawn uniformly from
// [minLen, maxLen] with a fixed seed, EOS ignored (every request generates
// its full output length), all submitted at once.
const (
	throughputMinLen = 100
	throughputMaxLen = 1024
)

// throughputReport is what `tinyllm bench --throughput --json FILE` writes.
type throughputReport struct {
	Tool     string      `json:"tool"`
	Time     string      `json:"time"`
	Machine  machineInfo `json:"machine"`
	Model    string      `json:"model"`
	Device   string      `json:"device"`
	Requests int         `json:"requests"`
	Seed     uint64      `json:"seed"`
	MinLen   int         `json:"min_len"`
	MaxLen   int         `json:"max_len"`
	Config   struct {
		MaxNumBatchedTokens int `json:"max_num_batched_tokens"`
		MaxNumSeqs          int `json:"max_num_seqs"`
		PageSize            int `json:"page_size"`
		NumPages            int `json:"num_pages"`
	} `json:"config"`
	PromptTokens  int        `json:"prompt_tokens"`
	OutputTokens  int        `json:"output_tokens"`
	Seconds       float64    `json:"seconds"`
	Steps         int        `json:"steps"`
	OutputTokPerS float64    `json:"output_tok_per_s"`
	TotalTokPerS  float64    `json:"total_tok_per_s"`
	TTFTms        [2]float64 `json:"ttft_ms_p50_p99"`
	ITLms         [2]float64 `json:"itl_ms_p50_p99"`
	PeakPages     int        `json:"peak_kv_pages_in_use"`
	Preemptions   int        `json:"preemptions"`
	SingleDecode  float64    `json:"single_request_decode_tok_per_s"`
	Notes         []string   `json:"notes,omitempty"`
}

// maxKVGiB bounds --kv-gib: a pebibyte, past the memory of any machine the
// engine runs on, and small enough that the pages it holds fit an int.
const maxKVGiB = 1 << 20

// runThroughput is `tinyllm bench --throughput`: the Week 3 engine (the
// reference scheduler, block manager and paged model runner) on many
// concurrent requests.
func runThroughput(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench --throughput", flag.ContinueOnError)
	fs.Bool("throughput", true, "run the many-request throughput benchmark (this mode)")
	modelFlag := fs.String("model", "", "Hugging Face model folder (default: the shipped "+models.Name+")")
	requests := fs.Int("requests", 256, "number of requests")
	device := fs.String("device", "cpu", "where the engine's model runner runs: cpu, cuda or metal (the GPU runner: weights, pages and activations in device memory)")
	seed := fs.Uint64("seed", 0, "seed of the workload (lengths and token ids)")
	minLen := fs.Int("min-len", throughputMinLen, "shortest prompt and output, in tokens")
	maxLen := fs.Int("max-len", throughputMaxLen, "longest prompt and output, in tokens (both ranges are scaled down to fit a shorter context)")
	budget := fs.Int("max-batched-tokens", 2048, "the token budget of one step (max_num_batched_tokens; 8192 on a GPU unless given)")
	maxSeqs := fs.Int("max-num-seqs", 256, "the most requests running at once (max_num_seqs)")
	pageSize := fs.Int("page-size", 16, "positions per KV cache page")
	kvGiB := fs.Float64("kv-gib", 4, "memory of the KV cache page pool, GiB (no more pages than every request needs at once; 32 on a GPU unless given)")
	single := fs.Int("single-len", 0, "prompt and output length of the single-request decode measurement (0: the workload's mean lengths)")
	threads := fs.Int("threads", 0, "worker threads (0: all cores)")
	jsonPath := fs.String("json", "", "also write the results as JSON to this file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	savePath := fs.String("save-workload", "", "also write the workload (prompts and output lengths) as JSON to this file, for refgen/bench/throughput_hf.py --workload")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tinyllm bench --throughput [--requests N] [--model DIR] [--device cpu|cuda|metal] [--json FILE]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *device != "cpu" {
		// A GPU has the memory for every request's pages and does its
		// best on large steps.
		if !set["max-batched-tokens"] {
			*budget = 8192
		}
		if !set["kv-gib"] {
			*kvGiB = 32
		}
	}
	switch {
	case *device == "auto":
		return fmt.Errorf("%w: --throughput takes --device cpu, cuda or metal, not auto: the benchmark says where it runs", errUsage)
	case checkDeviceFlag(*device) != nil:
		return checkDeviceFlag(*device)
	case *requests < 1:
		return fmt.Errorf("%w: --requests must be at least 1", errUsage)
	case *minLen < 1 || *maxLen < *minLen:
		return fmt.Errorf("%w: need 1 <= --min-len <= --max-len, got %d and %d", errUsage, *minLen, *maxLen)
	case *budget < 1 || *maxSeqs < 1 || *maxSeqs > *budget:
		return fmt.Errorf("%w: need 1 <= --max-num-seqs <= --max-batched-tokens, got %d and %d", errUsage, *maxSeqs, *budget)
	case *pageSize < 1 || *single < 0:
		return fmt.Errorf("%w: --page-size must be positive, --single-len not negative", errUsage)
	// Written so that NaN fails too; the bound keeps the page count, the
	// pool's bytes over a page's, within an int.
	case !(*kvGiB > 0 && *kvGiB <= maxKVGiB):
		return fmt.Errorf("%w: --kv-gib must be a positive number of GiB, at most %d, got %g", errUsage, maxKVGiB, *kvGiB)
	case *threads < 0 || *threads > runtime.NumCPU():
		return fmt.Errorf("%w: --threads must be between 0 (all cores) and %d", errUsage, runtime.NumCPU())
	}
	for _, out := range []struct{ flag, path string }{{"--json", *jsonPath}, {"--save-workload", *savePath}} {
		if err := checkOutputFile(out.flag, out.path); err != nil {
			return err
		}
	}
	if *threads > 0 {
		runtime.GOMAXPROCS(*threads)
	}
	stop, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	dir, err := modelDir(*modelFlag, stderr)
	if err != nil {
		return err
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		return err
	}
	defer ck.Close()
	sh := llm.ShapeOf(ck.Config)
	rep := throughputReport{Tool: "tinyllm bench --throughput", Time: time.Now().UTC().Format(time.RFC3339),
		Machine: machineInfo{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(),
			Threads: runtime.GOMAXPROCS(0), Kernels: tensor.KernelName(), Go: runtime.Version()},
		Model: dir, Device: *device, Requests: *requests, Seed: *seed, MinLen: *minLen, MaxLen: *maxLen}
	// A model whose context cannot hold the longest prompt and output
	// gets both ranges scaled down by the same factor (the shipped model's
	// context is 512: lengths in [25, 256]).
	if 2**maxLen > sh.MaxContext {
		f := float64(sh.MaxContext) / float64(2**maxLen)
		rep.MinLen, rep.MaxLen = max(1, int(float64(*minLen)*f)), int(float64(*maxLen)*f)
		rep.Notes = append(rep.Notes, fmt.Sprintf("the model's context is %d positions: prompt and output lengths drawn from [%d, %d] instead of [%d, %d]",
			sh.MaxContext, rep.MinLen, rep.MaxLen, *minLen, *maxLen))
	}
	prompts, outs := throughputWorkload(*requests, rep.MinLen, rep.MaxLen, sh.VocabSize, *seed)
	if *savePath != "" {
		b, err := json.Marshal(map[string]any{"prompts": prompts, "output_lens": outs, "seed": *seed, "min_len": rep.MinLen, "max_len": rep.MaxLen})
		if err == nil {
			err = os.WriteFile(*savePath, b, 0o644)
		}
		if err != nil {
			return fmt.Errorf("--save-workload: %w", err)
		}
	}
	// The single request's lengths, for the decode rate of one request
	// alone measured first (it also warms the weights and the heap up).
	sl := *single
	if sl == 0 {
		sl = (rep.MinLen + rep.MaxLen) / 2
	}
	if 2*sl > sh.MaxContext {
		return fmt.Errorf("%w: --single-len %d: a prompt and output of %d tokens each do not fit the model's context of %d", errUsage, sl, sl, sh.MaxContext)
	}
	// Pages for every request at once (nano-vllm sizes its pool by memory;
	// a pool the workload cannot fill would only hold memory), at most
	// --kv-gib of them, and at least the longest request's.
	need, longest := 0, llm.PagesFor(2*sl, *pageSize)
	for i := range prompts {
		n := llm.PagesFor(len(prompts[i])+outs[i], *pageSize)
		need += n
		longest = max(longest, n)
	}
	perPage := w3day3.PoolConfig{NumPages: 1, PageSize: *pageSize, Layers: sh.NumLayers, KVHeads: sh.NumKVHeads, HeadDim: sh.HeadDim}.BytesPerPage()
	if *device != "cpu" {
		perPage = gpurunner.DeviceBytesPerPage(ck.Config, gpurunner.Options{PageSize: *pageSize}) // bf16 pages
	}
	numPages := max(longest, min(need, int(*kvGiB*(1<<30)/float64(perPage))))
	if limit := int(*kvGiB * (1 << 30) / float64(perPage)); limit < longest {
		return fmt.Errorf("%w: --kv-gib %.3g holds %d pages of %d positions, too few for the longest request (%d pages)", errUsage, *kvGiB, limit, *pageSize, longest)
	}
	rep.Config.MaxNumBatchedTokens, rep.Config.MaxNumSeqs, rep.Config.PageSize, rep.Config.NumPages = *budget, *maxSeqs, *pageSize, numPages
	cfg := llm.EngineConfig{MaxNumBatchedTokens: *budget, MaxNumSeqs: *maxSeqs, MaxContext: sh.MaxContext}
	newRunner, closeRunner, err := throughputRunner(ck, *device, gpurunner.Options{MaxTokens: *budget, MaxSeqs: *maxSeqs, NumPages: numPages, PageSize: *pageSize}, &rep, stderr)
	if err != nil {
		return err
	}
	defer closeRunner()

	sp, so := throughputWorkload(1, sl, sl, sh.VocabSize, *seed+1)
	fmt.Fprintf(stderr, "one request alone (%d prompt + %d output tokens)…\n", sl, sl)
	one, err := runWorkload(newRunner, sh, cfg, numPages, *pageSize, sp, so, nil)
	if err != nil {
		return err
	}
	rep.SingleDecode = one.decodeRate()

	total := 0
	for i := range prompts {
		total += len(prompts[i])
		rep.OutputTokens += outs[i]
	}
	rep.PromptTokens = total
	fmt.Fprintf(stderr, "%d requests (%d prompt + %d output tokens), %d pages of %d positions…\n",
		*requests, rep.PromptTokens, rep.OutputTokens, numPages, *pageSize)
	res, err := runWorkload(newRunner, sh, cfg, numPages, *pageSize, prompts, outs, stderr)
	if err != nil {
		return err
	}
	rep.Seconds, rep.Steps, rep.PeakPages, rep.Preemptions = res.seconds, res.steps, res.peakPages, res.preemptions
	rep.OutputTokPerS = float64(rep.OutputTokens) / res.seconds
	rep.TotalTokPerS = float64(rep.PromptTokens+rep.OutputTokens) / res.seconds
	rep.TTFTms = [2]float64{percentile(res.ttft, 50) * 1e3, percentile(res.ttft, 99) * 1e3}
	rep.ITLms = [2]float64{percentile(res.itl, 50) * 1e3, percentile(res.itl, 99) * 1e3}
	printThroughput(stdout, &rep)
	if *jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	return nil
}

// throughputWorkload draws n requests: prompt lengths, then output
// lengths, uniform in [lo, hi], then the prompts' token ids, all from one
// seeded generator. (refgen/bench/throughput_hf.py runs this very workload
// when given the file of --save-workload; without it, it draws its own from
// the same distribution.)
func throughputWorkload(n, lo, hi, vocab int, seed uint64) (prompts [][]int, outs []int) {
	rng := rand.New(rand.NewPCG(seed, 0x7468))
	ins := make([]int, n)
	outs = make([]int, n)
	for i := range ins {
		ins[i] = lo + rng.IntN(hi-lo+1)
	}
	for i := range outs {
		outs[i] = lo + rng.IntN(hi-lo+1)
	}
	prompts = make([][]int, n)
	for i, l := range ins {
		prompts[i] = make([]int, l)
		for j := range prompts[i] {
			prompts[i][j] = rng.IntN(vocab)
		}
	}
	return prompts, outs
}

// workloadResult is what one run of the engine measured.
type workloadResult struct {
	seconds          float64
	steps            int
	peakPages        int
	preemptions      int
	ttft, itl        []float64 // seconds: per request; per gap between two tokens of a request
	outputs          int
	firstTok, lastTk time.Time
}

// decodeRate is the output tokens after the first per second of the decode
// phase (one request: from its first token to its last).
func (r workloadResult) decodeRate() float64 {
	d := r.lastTk.Sub(r.firstTok).Seconds()
	if r.outputs < 2 || d <= 0 {
		return 0
	}
	return float64(r.outputs-1) / d
}

// runnerFunc makes the model runner of one run over its fresh page pool.
type runnerFunc func(pool *w3day3.PagePool) (llm.ModelRunner, error)

// throughputRunner loads the model for --device: the Week 3 CPU model and
// Day 4's Runner, or the GPU runner with the pool's pages on the device.
// The returned func frees what it loaded.
func throughputRunner(ck *checkpoint.Checkpoint, device string, o gpurunner.Options, rep *throughputReport, stderr io.Writer) (runnerFunc, func(), error) {
	if device == "cpu" {
		model, err := w3day1.NewQwen2ModelWeek3(ck)
		if err != nil {
			return nil, nil, err
		}
		settleHeap()
		return func(pool *w3day3.PagePool) (llm.ModelRunner, error) { return w3day4.NewRunner(model, pool) }, func() {}, nil
	}
	dev, err := kernels.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("--device %s: %w", device, err)
	}
	need, err := gpurunner.MemoryNeed(ck.Config, o)
	if err != nil {
		dev.Close()
		return nil, nil, err
	}
	fmt.Fprintf(stderr, "loading the model onto %s (%.2f GiB with the pages and the buffers of a %d-token step)…\n", dev, float64(need)/(1<<30), o.MaxTokens)
	m, err := gpurunner.Load(dev, ck, o)
	if err != nil {
		dev.Close()
		return nil, nil, err
	}
	rep.Device = dev.String()
	return func(pool *w3day3.PagePool) (llm.ModelRunner, error) { return m.Runner(pool) },
		func() { m.Close(); dev.Close() }, nil
}

// runWorkload runs the requests to the end on a fresh engine over a new
// pool, all submitted at once, and times every token.
func runWorkload(newRunner runnerFunc, sh llm.ModelShape, cfg llm.EngineConfig, numPages, pageSize int, prompts [][]int, outs []int, progress io.Writer) (workloadResult, error) {
	pool, err := w3day3.NewPagePool(w3day3.PoolConfig{NumPages: numPages, PageSize: pageSize, Layers: sh.NumLayers, KVHeads: sh.NumKVHeads, HeadDim: sh.HeadDim})
	if err != nil {
		return workloadResult{}, err
	}
	runner, err := newRunner(pool)
	if err != nil {
		return workloadResult{}, err
	}
	blocks := w3day3.NewBlockManager(pool)
	eng, err := w3day2.NewEngine(cfg, runner, blocks)
	if err != nil {
		return workloadResult{}, err
	}
	seqs := make([]*llm.Sequence, len(prompts))
	for i := range prompts {
		if seqs[i], err = eng.AddRequest(prompts[i], outs[i]); err != nil {
			return workloadResult{}, fmt.Errorf("request %d: %w", i, err)
		}
	}
	var res workloadResult
	last := make([]time.Time, len(seqs))
	seen := make([]int, len(seqs))
	start := time.Now()
	lastReport := start
	for eng.HasWork() {
		changed, err := eng.Step()
		if err != nil {
			return res, err
		}
		now := time.Now()
		res.steps++
		res.peakPages = max(res.peakPages, numPages-blocks.NumFreePages())
		for _, s := range changed {
			i := s.ID
			if n := s.NumOutput(); n > seen[i] {
				if seen[i] == 0 {
					res.ttft = append(res.ttft, now.Sub(start).Seconds())
					if len(seqs) == 1 {
						res.firstTok = now
					}
				} else {
					// Tokens that arrive in one step share its gap.
					res.itl = append(res.itl, now.Sub(last[i]).Seconds()/float64(n-seen[i]))
				}
				res.outputs += n - seen[i]
				seen[i], last[i] = n, now
				res.lastTk = now
			}
		}
		paceHeap(0)
		if progress != nil && now.Sub(lastReport) > 10*time.Second {
			fmt.Fprintf(progress, "  %.0f s: %d of %d output tokens\n", now.Sub(start).Seconds(), res.outputs, sumInts(outs))
			lastReport = now
		}
	}
	res.seconds = time.Since(start).Seconds()
	for i, s := range seqs {
		res.preemptions += s.Preemptions
		if s.Finish != llm.FinishLength || s.NumOutput() != outs[i] {
			return res, fmt.Errorf("request %d finished with %q after %d of %d tokens (%v)", i, s.Finish, s.NumOutput(), outs[i], s.Err)
		}
	}
	if free := blocks.NumFreePages(); free != numPages {
		return res, fmt.Errorf("%d of %d KV cache pages still in use after every request finished", numPages-free, numPages)
	}
	return res, nil
}

func sumInts(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// percentile is the p-th percentile of xs (nearest rank), 0 for none.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func printThroughput(w io.Writer, r *throughputReport) {
	fmt.Fprintf(w, "tinyllm bench --throughput: %s, %d requests, %s/%s, %d threads, %s kernels\n",
		r.Model, r.Requests, r.Machine.GOOS, r.Machine.GOARCH, r.Machine.Threads, r.Machine.Kernels)
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	fmt.Fprintf(w, "workload: prompt and output lengths uniform in [%d, %d], seed %d, EOS ignored: %d prompt + %d output tokens\n",
		r.MinLen, r.MaxLen, r.Seed, r.PromptTokens, r.OutputTokens)
	fmt.Fprintf(w, "engine: max_num_batched_tokens %d, max_num_seqs %d, %d KV pages of %d positions\n",
		r.Config.MaxNumBatchedTokens, r.Config.MaxNumSeqs, r.Config.NumPages, r.Config.PageSize)
	fmt.Fprintf(w, "time                 %.2f s (%d steps)\n", r.Seconds, r.Steps)
	fmt.Fprintf(w, "output throughput    %.1f tok/s\n", r.OutputTokPerS)
	fmt.Fprintf(w, "total throughput     %.1f tok/s\n", r.TotalTokPerS)
	fmt.Fprintf(w, "TTFT                 p50 %.1f ms, p99 %.1f ms\n", r.TTFTms[0], r.TTFTms[1])
	fmt.Fprintf(w, "inter-token latency  p50 %.2f ms, p99 %.2f ms\n", r.ITLms[0], r.ITLms[1])
	fmt.Fprintf(w, "peak KV pages        %d of %d in use (%d preemptions); 0 in use at the end\n", r.PeakPages, r.Config.NumPages, r.Preemptions)
	if r.SingleDecode > 0 {
		fmt.Fprintf(w, "one request alone    %.1f tok/s decode: the batch's output rate is %.1fx that\n", r.SingleDecode, r.OutputTokPerS/r.SingleDecode)
	}
}
