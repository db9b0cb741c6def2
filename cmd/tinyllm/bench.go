package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/bench"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/models"
)

// benchReport is what `tinyllm bench --json FILE` writes.
type benchReport struct {
	Tool            string             `json:"tool"`
	Time            string             `json:"time"`
	Machine         machineInfo        `json:"machine"`
	Model           string             `json:"model,omitempty"`
	Impl            string             `json:"impl,omitempty"`
	Week            int                `json:"week,omitempty"`
	Device          string             `json:"device,omitempty"`
	CheckpointBytes int64              `json:"checkpoint_bytes,omitempty"`
	LoadSeconds     float64            `json:"load_s,omitempty"`
	Result          *bench.Result      `json:"result,omitempty"`
	PeakRSSBytes    int64              `json:"peak_rss_bytes,omitempty"`
	Probes          *bench.ProbeResult `json:"probes,omitempty"`
	Notes           []string           `json:"notes,omitempty"`
	Speculative     *specBenchResult   `json:"speculative,omitempty"`

	config checkpoint.Config // the benchmarked model's, for --roofline
}

type machineInfo struct {
	GOOS    string `json:"goos"`
	GOARCH  string `json:"goarch"`
	CPUs    int    `json:"cpus"`
	Threads int    `json:"threads"`
	Kernels string `json:"kernels"`
	Go      string `json:"go"`
}

// decodeNote says why Week 1 decode rates are low.
const decodeNote = "Week 1 has no KV cache: every decode step runs the whole sequence through the model again, so decode tok/s is not comparable with engines that cache keys and values"

// runBench measures a model's prefill and decode speed, time to first token
// and peak memory, or (with --probes) the machine's ceilings.
func runBench(args []string, stdout, stderr io.Writer) error {
	// --throughput is another benchmark with flags of its own.
	for _, a := range args {
		if a == "--" {
			break
		}
		if strings.TrimLeft(a, "-") == "throughput" || strings.TrimLeft(a, "-") == "throughput=true" {
			return runThroughput(args, stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	modelFlag := fs.String("model", "", "Hugging Face model folder (default: the shipped "+models.Name+")")
	impl := fs.String("impl", "ref", "implementation: ref (the solutions) or learner (your week1/ code, built on demand)")
	week := fs.Int("week", 1, "which week's engine to run: 1 (no KV cache) or 2 (KV cache)")
	promptLen := fs.Int("prompt-len", 128, "prompt length in tokens (random ids)")
	genLen := fs.Int("gen-len", 16, "tokens to generate, the first included")
	repeats := fs.Int("repeats", 3, "timed runs (medians are reported)")
	warmup := fs.Int("warmup", 1, "untimed forward passes over the prompt first")
	threads := fs.Int("threads", 0, "worker threads (0: all cores)")
	jsonPath := fs.String("json", "", "also write the results as JSON to this file")
	probes := fs.Bool("probes", false, "measure the machine instead of a model: memory bandwidth, matmul and matrix-vector rates")
	only := fs.String("only", "", "with --probes: run only this probe (matmul)")
	seed := fs.Uint64("seed", 0, "seed of the random prompt")
	chunk := fs.Int("prefill-chunk", defaultPrefillChunk, fmt.Sprintf("with --week 2: feed the prompt in pieces of at most this many tokens (0: all at once; on a quantized checkpoint the default is %d)", quantizedPrefillChunk))
	ahead := fs.Int("ahead", 0, "on a GPU: greedy decode steps queued at once before the host reads their tokens (0: the engine's default, 16; 1: one at a time)")
	allLogits := fs.Bool("all-logits", false, "also time a forward pass that computes every position's logits (Week 1 Forward), as a plain forward call of another engine does")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed runs to this file (read it with go tool pprof)")
	device := fs.String("device", "auto", "where the model runs: cpu, cuda, metal, or auto (the GPU when there is one; the GPU runs the Week 2 model)")
	draft := fs.String("draft", "", "time speculative decoding with this draft model folder against the target alone (greedy, Week 2, CPU; the reference engine)")
	speculate := fs.Int("speculate", 4, "with --draft: tokens the draft proposes per step")
	rooflinePath := fs.String("roofline", "", "with --week 2: also measure the machine's ceilings and write a roofline plot (SVG) of the prefill and a decode step to this file")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tinyllm bench [--model DIR] [--prompt-len N] [--gen-len N] [--impl ref|learner] [--repeats N] [--json FILE]")
		fmt.Fprintln(stderr, "       tinyllm bench --probes [--repeats N] [--json FILE]")
		fmt.Fprintln(stderr, "       tinyllm bench --draft DIR [--speculate K] [--model DIR] [--repeats N] [--json FILE]")
		fmt.Fprintln(stderr, "       tinyllm bench --throughput [--requests N] [--device cpu] (tinyllm bench --throughput --help)")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := validImplWeek(*impl, *week); err != nil {
		return err
	}
	if err := checkDeviceFlag(*device); err != nil {
		return err
	}
	switch {
	case *promptLen <= 0 || *genLen <= 0:
		return fmt.Errorf("%w: --prompt-len and --gen-len must be positive", errUsage)
	case *chunk < 0:
		return fmt.Errorf("%w: --prefill-chunk must be 0 (the whole prompt at once) or positive", errUsage)
	case *ahead < 0:
		return fmt.Errorf("%w: --ahead must be 0 (the default window) or positive", errUsage)
	case *repeats <= 0 || *warmup < 0:
		return fmt.Errorf("%w: --repeats must be positive and --warmup not negative", errUsage)
	case *threads < 0 || *threads > runtime.NumCPU():
		// More threads than cores only adds switching: the kernels are compute-bound.
		return fmt.Errorf("%w: --threads must be between 0 (all cores) and %d, the cores of this machine; got %d", errUsage, runtime.NumCPU(), *threads)
	case *only != "" && (*only != "matmul" || !*probes):
		return fmt.Errorf("%w: --only takes matmul, with --probes", errUsage)
	case *rooflinePath != "" && (*week != 2 || *probes):
		return fmt.Errorf("%w: --roofline places a model's passes on the machine's ceilings: it needs --week 2 (the cost model assumes a KV cache) and no --probes", errUsage)
	}
	if *draft != "" || flagGiven(fs, "speculate") {
		f := engineFlags{draft: *draft, speculate: *speculate, week: *week, device: *device, fs: fs}
		if err := f.validateDraft(); err != nil {
			return err
		}
		if *impl != "ref" || *probes || *rooflinePath != "" {
			return fmt.Errorf("%w: --draft times the reference engine's greedy decoding: it takes no --impl learner, --probes or --roofline", errUsage)
		}
	}
	for _, out := range []struct{ flag, path string }{{"--json", *jsonPath}, {"--roofline", *rooflinePath}} {
		if err := checkOutputFile(out.flag, out.path); err != nil {
			return err
		}
	}
	if *threads > 0 {
		runtime.GOMAXPROCS(*threads) // before the first tensor operation starts the pool
	}
	stop, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	rep := benchReport{
		Tool: "tinyllm bench",
		Time: time.Now().UTC().Format(time.RFC3339),
		Machine: machineInfo{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(),
			Threads: runtime.GOMAXPROCS(0), Kernels: tensor.KernelName(), Go: runtime.Version()},
	}
	if *probes {
		fmt.Fprintf(stderr, "measuring the machine (%d threads, %s kernels)…\n", rep.Machine.Threads, rep.Machine.Kernels)
		var p bench.ProbeResult
		if *only == "matmul" {
			p = bench.ProbeResult{Threads: rep.Machine.Threads, Kernels: rep.Machine.Kernels, MatmulN: 1024,
				MatmulGFLOPPerS: bench.Median(bench.MatmulFlops(1024, 3, max(10, *repeats))) / 1e9}
		} else {
			p = bench.Probes(rep.Machine.Threads, *repeats)
		}
		rep.Probes = &p
		printProbes(stdout, rep)
	} else {
		dir, err := modelDir(*modelFlag, stderr)
		if err != nil {
			return err
		}
		if *draft != "" {
			genTokens, given := 64, flagGiven(fs, "gen-len") // the bench conversations end by themselves well before 64
			if given {
				genTokens = *genLen
			}
			res, err := runSpecBench(dir, *draft, *speculate, genTokens, given, *repeats, stdout, stderr)
			if err != nil {
				return err
			}
			rep.Model, rep.Impl, rep.Week, rep.Speculative = dir, "ref", 2, &res
			return writeBenchJSON(*jsonPath, rep)
		}
		if *rooflinePath != "" && *device == "auto" {
			*device = "cpu" // the roofline is the CPU's
		}
		dev, err := openDevice(*device, *impl, *week, flagGiven(fs, "week"), stderr)
		if err != nil {
			return err
		}
		if dev != nil {
			defer dev.Close()
			if *rooflinePath != "" {
				return fmt.Errorf("%w: --roofline measures this machine's CPU; add --device cpu", errUsage)
			}
		}
		if err := benchModel(&rep, dir, *impl, *week, dev, bench.Options{
			PromptLen: *promptLen, GenLen: *genLen, Warmup: *warmup, Repeats: *repeats, Seed: *seed, AllLogits: *allLogits,
			PrefillChunk: pieceFlag(fs, *chunk), Ahead: *ahead,
		}, stderr); err != nil {
			return err
		}
		printBench(stdout, rep)
		if *rooflinePath != "" {
			if err := writeRoofline(*rooflinePath, &rep, rep.config, *repeats, stdout, stderr); err != nil {
				return err
			}
		}
	}
	return writeBenchJSON(*jsonPath, rep)
}

// pieceFlag is --prefill-chunk's value where it was given, and -1 (the
// engine's piece for the checkpoint, prefillChunk) where it was not.
func pieceFlag(fs *flag.FlagSet, chunk int) int {
	if !flagGiven(fs, "prefill-chunk") {
		return -1
	}
	return chunk
}

// checkOutputFile checks, before a benchmark runs, that the file a flag
// names can be written: otherwise the results would be lost after minutes
// of measuring. It leaves the file system as it found it: a file already
// there is opened for writing and kept as it is until the results replace
// it, and a new one is created and removed again, so a run that fails later
// leaves no empty file behind. Anything but a regular file (a terminal,
// /dev/stdout) is taken as it is.
func checkOutputFile(flagName, path string) error {
	if path == "" {
		return nil
	}
	fail := func(err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the message already
		}
		return fmt.Errorf("%w: %s %s: cannot write there (%v); nothing was run", errUsage, flagName, path, err)
	}
	if fi, err := os.Stat(path); err == nil {
		switch {
		case fi.IsDir():
			return fmt.Errorf("%w: %s %s is a folder; give the name of a file to write", errUsage, flagName, path)
		case !fi.Mode().IsRegular():
			return nil
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fail(err)
		}
		return f.Close()
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fail(err)
	}
	f.Close()
	return os.Remove(path)
}

// writeBenchJSON writes rep to path as indented JSON; an empty path writes
// nothing.
func writeBenchJSON(path string, rep benchReport) error {
	if path == "" {
		return nil
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}

// benchModel loads the model and runs the generation benchmark.
// With dev, the model is the GPU engine (Week 2 Day 7's) on that device.
func benchModel(rep *benchReport, dir, implName string, week int, dev *kernels.Device, o bench.Options, stderr io.Writer) error {
	start := time.Now()
	ck, err := checkpoint.Open(dir)
	if err != nil {
		return err
	}
	defer ck.Close()
	c := ck.Config
	if o.PrefillChunk < 0 { // the engine's piece: the CPU's depends on the weights
		o.PrefillChunk = defaultPrefillChunk
		if dev == nil {
			o.PrefillChunk = prefillChunk(c)
		}
	}
	if n := o.PromptLen + o.GenLen; n > c.MaxPositionEmbeddings {
		return fmt.Errorf("%w: --prompt-len %d plus --gen-len %d is %d tokens, past the model's context of %d",
			errUsage, o.PromptLen, o.GenLen, n, c.MaxPositionEmbeddings)
	}
	if dev == nil {
		if err := checkMemory(implName, week, c, o.PromptLen+o.GenLen); err != nil {
			return err
		}
	}
	if err := warm(ck.WeightFiles(), stderr); err != nil {
		return err
	}
	var m loadedModel
	if dev != nil {
		rows := o.PrefillChunk
		if rows == 0 {
			rows = o.PromptLen
		}
		lm, gm, err := loadGPU(dev, ck, implName, gpuOptions{maxContext: min(c.MaxPositionEmbeddings, max(o.PromptLen+o.GenLen, 4096)), prefillRows: rows}, nil)
		if err != nil {
			return err
		}
		defer gm.Close()
		m, week, rep.Device = lm, 2, dev.String()
	} else if err := learnerGuard(implName, func() error {
		var err error
		m, err = impls[implName].weeks[week](ck)
		return err
	}); err != nil {
		return err
	}
	settleHeap()
	rep.LoadSeconds = time.Since(start).Seconds()
	rep.Model, rep.Impl, rep.Week, rep.config = dir, implName, week, c
	rep.CheckpointBytes = weightBytes(ck.WeightFiles())
	o.VocabSize = ck.Config.VocabSize
	fmt.Fprintf(stderr, "benchmarking %s: prompt %d tokens, %d generated; warm-up passes %d, timed runs %d…\n",
		filepath.Base(filepath.Clean(dir)), o.PromptLen, o.GenLen, o.Warmup, o.Repeats)
	var res bench.Result
	if err := learnerGuard(implName, func() error {
		var err error
		res, err = m.bench(o)
		return err
	}); err != nil {
		return err
	}
	rep.Result = &res
	rep.PeakRSSBytes = bench.PeakRSS()
	if o.GenLen > 1 && week == 1 {
		rep.Notes = append(rep.Notes, decodeNote)
	}
	return nil
}

// weightBytes is the size of the model's weight files.
func weightBytes(files []string) int64 {
	var n int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func printBench(w io.Writer, rep benchReport) {
	r := rep.Result
	m := rep.Machine
	fmt.Fprintf(w, "model   %s (%s impl, week %d), weights %s\n", rep.Model, rep.Impl, rep.Week, gigabytes(rep.CheckpointBytes))
	if rep.Device != "" {
		fmt.Fprintf(w, "device  %s\n", rep.Device)
	}
	fmt.Fprintf(w, "machine %s/%s, %d threads, kernels: %s\n", m.GOOS, m.GOARCH, m.Threads, m.Kernels)
	fmt.Fprintf(w, "run     prompt %d tokens, %d generated; warm-up passes %d, timed runs %d (medians)\n\n", r.PromptLen, r.GenLen, r.Warmup, r.Repeats)
	row := func(name, value, note string) { fmt.Fprintf(w, "  %-18s %14s  %s\n", name, value, note) }
	row("prefill", fmt.Sprintf("%.1f tok/s", r.PrefillTokPerS), "")
	row("time to 1st token", fmt.Sprintf("%.3f s", r.TTFTSeconds), "(only the last position's logits)")
	if r.ForwardAllSeconds > 0 {
		row("forward, all logits", fmt.Sprintf("%.3f s", r.ForwardAllSeconds), "(every position's logits: Week 1 Forward)")
	}
	if r.GenLen > 1 {
		note := "(KV cache: each step feeds one token)"
		if rep.Week == 1 {
			note = "(no KV cache in Week 1: each step re-runs the sequence)"
		}
		row("decode", fmt.Sprintf("%.2f tok/s", r.DecodeTokPerS), note)
	}
	note := ""
	if rep.CheckpointBytes > 0 && rep.PeakRSSBytes > 0 {
		note = fmt.Sprintf("(%.2f× the weights)", float64(rep.PeakRSSBytes)/float64(rep.CheckpointBytes))
	}
	row("peak RSS", gigabytes(rep.PeakRSSBytes), note)
	row("load", fmt.Sprintf("%.1f s", rep.LoadSeconds), "")
}

func printProbes(w io.Writer, rep benchReport) {
	p := rep.Probes
	fmt.Fprintf(w, "machine %s/%s, %d threads, kernels: %s\n\n", rep.Machine.GOOS, rep.Machine.GOARCH, p.Threads, p.Kernels)
	if p.StreamBytes > 0 {
		fmt.Fprintf(w, "  %-34s %10.1f GB/s\n", fmt.Sprintf("streaming read (%d MiB)", p.StreamBytes>>20), p.StreamGBPerS)
	}
	fmt.Fprintf(w, "  %-34s %10.1f GFLOP/s\n", fmt.Sprintf("f32 matmul %d³", p.MatmulN), p.MatmulGFLOPPerS)
	for _, mv := range p.MatVec {
		fmt.Fprintf(w, "  %-34s %10.1f GB/s  (%.0f%% of streaming read)\n",
			fmt.Sprintf("%s matvec %d×%d", mv.DType, mv.Rows, mv.Cols), mv.GBPerS, 100*mv.OfStream)
	}
}

func gigabytes(n int64) string {
	if n <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

// startCPUProfile starts a CPU profile into path (nothing for ""); the
// returned function stops it and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
