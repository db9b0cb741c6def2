package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/bench"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/modelfolder"
	"github.com/tinyllm-go/tinyllm/internal/serving"
	"github.com/tinyllm-go/tinyllm/internal/stub"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devsample"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/models"
	refday5 "github.com/tinyllm-go/tinyllm/solutions/week1/day5"
	refday6 "github.com/tinyllm-go/tinyllm/solutions/week1/day6"
	refday7 "github.com/tinyllm-go/tinyllm/solutions/week1/day7"
	refw2d1 "github.com/tinyllm-go/tinyllm/solutions/week2/day1"
	refw2d3 "github.com/tinyllm-go/tinyllm/solutions/week2/day3"
	refw3d5 "github.com/tinyllm-go/tinyllm/solutions/week3/day5"
	refw3d7 "github.com/tinyllm-go/tinyllm/solutions/week3/day7"
)

// sampler is either tree's day7 Sampler.
type sampler = llm.Sampler

// generateFunc answers a conversation with a loaded model, streaming the
// reply's text to onText.
type generateFunc func(tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s sampler, maxTokens int, eos []int, onText func(string)) (string, error)

// loadedModel is one week's model of one implementation, loaded, seen
// through what the commands do with it.
type loadedModel struct {
	generate generateFunc
	bench    func(o bench.Options) (bench.Result, error)
	// cached is the Week 2 model itself, for the server's engine; nil
	// for Week 1.
	cached llm.CachedModel
}

// impl is one implementation of the course (the reference solutions or the
// learner's own days), seen through the functions the commands need.
//
// The ordinary build links only the reference. The learner's days are linked
// in by the build tag "learner" (learner.go), into a second binary that
// --impl learner builds and runs (learner_exec.go): a half-written learner day
// then breaks --impl learner and its own grade, never the reference engine.
type impl struct {
	sampler func(temperature, topP float64, topK int, seed uint64) sampler
	// weeks loads each week's model: Week 1 recomputes the whole sequence
	// at every step, Week 2 keeps a KV cache.
	weeks map[int]func(ck *checkpoint.Checkpoint) (loadedModel, error)
	// gpu loads the tree's W2D7 model on a device, gpuGenerate is its
	// Generate (device.go); nil where the tree has none linked in.
	gpu         func(dev *kernels.Device, ck *checkpoint.Checkpoint, o gpuOptions) (gpuModel, error)
	gpuGenerate gpuGenerateFunc
	// handler is the tree's W3D5 OpenAI handler, for serve.
	handler func(cfg serving.HandlerConfig) http.Handler
	// speculate is the tree's W3D7 Generate: greedy decoding of a Week 2
	// target with a Week 2 draft (--draft).
	speculate speculateFunc
}

// week1Model adapts a Week 1 model and its tree's Generate.
func week1Model[M llm.Model](m M, err error, generate func(M, *tokenizer.Tokenizer, []tokenizer.Message, sampler, int, []int, func(string)) (string, error)) (loadedModel, error) {
	if err != nil {
		return loadedModel{}, err
	}
	return loadedModel{
		generate: func(tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s sampler, n int, eos []int, on func(string)) (string, error) {
			return generate(m, tok, msgs, s, n, eos, on)
		},
		bench: func(o bench.Options) (bench.Result, error) { return bench.RunModel(m, o) },
	}, nil
}

// week2Model adapts a Week 2 model (with a KV cache) and its tree's
// Generate and Prefill. The model runs behind pacedModel, which keeps the
// garbage collector's target close to what is live (see paceHeap).
func week2Model(m llm.CachedModel, err error, c checkpoint.Config, generate week2Generate, prefill bench.Prefill) (loadedModel, error) {
	if err != nil {
		return loadedModel{}, err
	}
	bits, group := 16, 0
	if q := c.Quantization; q != nil {
		bits, group = q.Bits, q.GroupSize
	}
	m = pacedModel{m, decodeHeadroom(devtensor.ModelWeightBytes(c, bits, group))}
	chunk := prefillChunk(c)
	return loadedModel{
		generate: func(tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s sampler, n int, eos []int, on func(string)) (string, error) {
			return generate(m, chunk, tok, msgs, s, n, eos, on)
		},
		bench:  func(o bench.Options) (bench.Result, error) { return bench.RunCachedModel(m, prefill, o) },
		cached: m,
	}, nil
}

// week2Generate is a Week 2 generation loop: the model, the piece of the
// prompt it is fed at a time, then as generateFunc.
type week2Generate func(m llm.CachedModel, chunk int, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s sampler, n int, eos []int, on func(string)) (string, error)

// refWeek2Generate is the reference Week 2 generation loop (W2D1's) for
// any Week 2 model.
func refWeek2Generate(m llm.CachedModel, chunk int, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s sampler, n int, eos []int, on func(string)) (string, error) {
	return refw2d1.Generate(m, tok, msgs, s, refw2d1.Options{MaxTokens: n, EOS: eos, OnText: on, PrefillChunk: chunk})
}

// defaultPrefillChunk is the longest piece of a prompt that the Week 2
// engines feed in one forward pass. The activations of a pass, the
// attention scores above all, grow with the piece: in pieces of 128 a
// prompt of 2048 tokens needs a sixteenth of the scores at once and the
// same arithmetic (less, with the causal mask: a piece attends only to
// what precedes it). Pieces of 128 rows still keep the matrix kernels at
// full speed (a 2048-token prefill of Qwen2-0.5B ran as fast as in pieces
// of 256, or faster); what they save is memory: peak RSS after 2048
// tokens 1.12–1.13 GB, against 1.15–1.17 GB in pieces of 256 and 1.16 GB
// in pieces of 512 before the heap pacing of heap.go.
const defaultPrefillChunk = 128

// quantizedPrefillChunk is the piece for a quantized checkpoint on the
// CPU. Its weights are a quarter of the size, so a piece's activations
// weigh four times as much beside them: in pieces of 32 the 4-bit
// Qwen2-0.5B's peak resident memory was 6 MB lower than in pieces of 128
// (0.307 against 0.313 GB, for 0.278 GB of weights, in one build). The
// 8-bit-activation kernels take the rows of x four at a time whatever the
// piece, so the prefill was as fast (medians of four alternating runs on
// 2 cores: 190 tokens per second in pieces of 32, 175 in pieces of 128).
const quantizedPrefillChunk = 32

// prefillChunk is the piece of a prompt the Week 2 CPU engines feed at a
// time for a checkpoint of config c.
func prefillChunk(c checkpoint.Config) int {
	if c.Quantization != nil {
		return quantizedPrefillChunk
	}
	return defaultPrefillChunk
}

var impls = map[string]impl{
	"ref": {
		handler: func(cfg serving.HandlerConfig) http.Handler { return refw3d5.NewHandler(cfg) },
		speculate: func(target, draft llm.CachedModel, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, k, n int, eos []int, on func(string)) (string, specStats, error) {
			reply, st, err := refw3d7.Generate(target, draft, tok, msgs, refw3d7.Options{K: k, MaxTokens: n, EOS: eos, OnText: on})
			return reply, specStats(st), err
		},
		sampler: func(t, p float64, k int, seed uint64) sampler {
			if t == 0 {
				return refday6.Greedy{}
			}
			return refday7.NewSampler(t, p, k, seed)
		},
		weeks: map[int]func(ck *checkpoint.Checkpoint) (loadedModel, error){
			1: func(ck *checkpoint.Checkpoint) (loadedModel, error) {
				m, err := refday5.NewQwen2ModelWeek1(ck)
				return week1Model(m, err, func(m *refday5.Qwen2ModelWeek1, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s sampler, n int, eos []int, on func(string)) (string, error) {
					return refday6.Generate(m, tok, msgs, s, refday6.Options{MaxTokens: n, EOS: eos, OnText: on})
				})
			},
			// Week 2 runs Day 1's model on float checkpoints and Day 3's,
			// which computes on the packed weights, on MLX-quantized ones.
			2: func(ck *checkpoint.Checkpoint) (loadedModel, error) {
				if ck.Config.Quantization != nil {
					m, err := refw2d3.NewQwen2ModelWeek2(ck)
					return week2Model(m, err, ck.Config, refWeek2Generate, refw2d1.Prefill)
				}
				m, err := refw2d1.NewQwen2ModelWeek2(ck)
				return week2Model(m, err, ck.Config, refWeek2Generate, refw2d1.Prefill)
			},
		},
	},
}

// engineFlags are the flags shared by generate and chat.
type engineFlags struct {
	modelDir    string
	impl        string
	week        int
	temperature float64
	topP        float64
	topK        int
	seed        uint64
	maxTokens   int
	system      string
	device      string
	maxContext  int
	draft       string // a draft model folder: speculative decoding (speculate.go)
	// noModel loads the checkpoint, tokenizer and EOS tokens but no
	// model: serve's Week 3 engine builds its own from the checkpoint.
	noModel   bool
	speculate int // tokens the draft proposes per step
	fs        *flag.FlagSet
}

func (f *engineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.modelDir, "model", "", "Hugging Face model folder (config.json, *.safetensors, tokenizer.json); default: the shipped "+models.Name)
	fs.StringVar(&f.impl, "impl", "ref", "implementation: ref (the solutions) or learner (your week1/ code, built on demand)")
	fs.IntVar(&f.week, "week", 1, "which week's engine to run: 1 (no KV cache) or 2 (KV cache)")
	fs.Float64Var(&f.temperature, "temperature", 0, "sampling temperature; 0 is greedy")
	fs.Float64Var(&f.topP, "top-p", 1, "nucleus sampling: keep the most likely tokens up to this total probability")
	fs.IntVar(&f.topK, "top-k", 0, "keep only the k most likely tokens (0: all)")
	fs.Uint64Var(&f.seed, "seed", 0, "random seed for sampling")
	fs.IntVar(&f.maxTokens, "max-tokens", 256, "longest reply, in tokens")
	fs.StringVar(&f.system, "system", "", "system prompt (default: the chat template's)")
	fs.StringVar(&f.device, "device", "auto", "where the model runs: cpu, cuda, metal, or auto (the GPU when there is one; the GPU runs the Week 2 model)")
	fs.IntVar(&f.maxContext, "max-context", 0, "with a GPU: positions the device cache holds (0: the model's context, at most 4096)")
	fs.StringVar(&f.draft, "draft", "", "draft model folder for speculative decoding (greedy, Week 2 on the CPU), e.g. models/tinyqwen-draft")
	fs.IntVar(&f.speculate, "speculate", 4, "with --draft: tokens the draft proposes per step")
	f.fs = fs
}

func (f *engineFlags) validate(stderr io.Writer) error {
	if err := validImplWeek(f.impl, f.week); err != nil {
		return err
	}
	if err := checkDeviceFlag(f.device); err != nil {
		return err
	}
	switch {
	// Written so that NaN fails every test: NaN compares false with anything.
	case !(f.temperature >= 0 && f.temperature <= maxTemperature):
		return fmt.Errorf("%w: --temperature must be between 0 and %g, got %g", errUsage, float64(maxTemperature), f.temperature)
	case !(f.topP > 0 && f.topP <= 1):
		return fmt.Errorf("%w: --top-p must be in (0, 1], got %g", errUsage, f.topP)
	case f.topK < 0:
		return fmt.Errorf("%w: --top-k must be >= 0, got %d", errUsage, f.topK)
	case f.maxTokens <= 0:
		return fmt.Errorf("%w: --max-tokens must be positive, got %d", errUsage, f.maxTokens)
	case f.maxContext < 0:
		return fmt.Errorf("%w: --max-context must be 0 (the default) or positive, got %d", errUsage, f.maxContext)
	}
	if err := f.validateDraft(); err != nil {
		return err
	}
	dir, err := modelDir(f.modelDir, stderr)
	if err != nil {
		return err
	}
	f.modelDir = dir
	return nil
}

// maxTemperature bounds --temperature: far beyond it every token is equally
// likely and the number only hides a typing mistake (or an infinity).
const maxTemperature = 100

// validImplWeek checks the --impl and --week flags every engine command shares.
func validImplWeek(impl string, week int) error {
	if impl != "ref" && impl != "learner" {
		return fmt.Errorf("%w: --impl must be ref or learner, got %q", errUsage, impl)
	}
	if _, ok := impls["ref"].weeks[week]; !ok {
		return fmt.Errorf("%w: --week %d is not available; weeks %s are built so far", errUsage, week, builtWeeks())
	}
	return nil
}

// builtWeeks lists the weeks the reference has an engine for: "1, 2".
func builtWeeks() string {
	var ws []string
	for w := 1; w <= 3; w++ {
		if _, ok := impls["ref"].weeks[w]; ok {
			ws = append(ws, fmt.Sprint(w))
		}
	}
	return strings.Join(ws, ", ")
}

// modelDir is where every command finds its model: the folder given with
// --model, or else the shipped model, unpacked from the binary into the
// user's cache, so that no command depends on the working directory.
func modelDir(flagValue string, stderr io.Writer) (string, error) {
	if flagValue != "" {
		if err := checkModelFolder("--model", flagValue); err != nil {
			return "", err
		}
		return flagValue, nil
	}
	dir, notes, err := models.Open()
	for _, n := range notes {
		fmt.Fprintln(stderr, "note:", n) // a repaired or replaced cache folder
	}
	if err != nil {
		return "", fmt.Errorf("unpacking the shipped model: %w", err)
	}
	return dir, nil
}

// checkModelFolder checks that the folder a flag names is one: a model is a
// folder of files, and naming one of them (config.json, most often) would
// otherwise fail deep in the loader, on a path such as
// config.json/config.json.
func checkModelFolder(flagName, dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s %s: no such folder", errUsage, flagName, dir)
	case err != nil:
		return fmt.Errorf("%s: %w", flagName, err)
	case fi.IsDir():
		return nil
	}
	hint := ""
	if modelfolder.IsModelFile(filepath.Base(dir)) {
		hint = fmt.Sprintf(" (here, %s %s)", flagName, filepath.Dir(dir))
	}
	return fmt.Errorf("%w: %s %s is a file, not a model folder: give the folder that holds config.json, the weights and tokenizer.json%s",
		errUsage, flagName, dir, hint)
}

// engine is a loaded model with its tokenizer, ready to answer.
type engine struct {
	flags *engineFlags
	impl  impl
	ck    *checkpoint.Checkpoint
	tok   *tokenizer.Tokenizer
	model loadedModel
	eos   []int
	// dev is the GPU the model runs on, nil on the CPU; limit is the most
	// positions a conversation may take (the device cache's on a GPU).
	dev   *kernels.Device
	gpu   gpuModel
	limit int
	// draft is the --draft model (Week 2, CPU) and its checkpoint; nil
	// without speculative decoding.
	draft   llm.CachedModel
	draftCk *checkpoint.Checkpoint
}

// draftFits reports whether a conversation of prompt tokens and a reply of
// up to maxTokens fit the draft's context, as they must fit the model's: the
// draft runs over the same positions, and its RoPE table ends there.
func (e *engine) draftFits(prompt, maxTokens int) bool {
	return prompt+maxTokens <= e.draftCk.Config.MaxPositionEmbeddings
}

// close releases the model, the device and the checkpoint.
func (e *engine) close() {
	if e.gpu != nil {
		e.gpu.Close()
	}
	if e.dev != nil {
		e.dev.Close()
	}
	if e.draftCk != nil {
		e.draftCk.Close()
	}
	e.ck.Close()
}

// loadEngine opens the model folder, warms its weights into memory with a
// progress line on stderr, and builds the chosen implementation's model.
func loadEngine(f *engineFlags, stderr io.Writer) (e *engine, err error) {
	start := time.Now()
	ck, err := checkpoint.Open(f.modelDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ck.Close()
		}
	}()
	tok, err := tokenizer.LoadDir(f.modelDir)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() > ck.Config.VocabSize {
		return nil, fmt.Errorf("%s: the tokenizer has %d tokens but the model's vocabulary has only %d: they do not belong together",
			f.modelDir, tok.VocabSize(), ck.Config.VocabSize)
	}
	// A real checkpoint pads its vocabulary by a few hundred ids past the
	// tokenizer's, which it never picks; a random model of a real shape
	// (tinyllm mkmodel) beside a small tokenizer has most ids without a
	// token. Replies draw only from the tokenizer's ids either way
	// (countingSampler, finiteTarget); the second case is worth a note.
	if fewTokenizerIDs(tok.VocabSize(), ck.Config.VocabSize) {
		n, v := tok.VocabSize(), ck.Config.VocabSize
		fmt.Fprintf(stderr, "note: the model's vocabulary has %d ids, its tokenizer's only %d (as in a random model from tinyllm mkmodel): replies are drawn from the tokenizer's ids\n", v, n)
	}
	gen, err := ck.ReadGenerationConfig()
	if err != nil {
		return nil, err
	}
	if err := warm(ck.WeightFiles(), stderr); err != nil {
		return nil, err
	}
	e = &engine{flags: f, impl: impls[f.impl], ck: ck, tok: tok, eos: gen.EOSTokenIDs, limit: ck.Config.MaxPositionEmbeddings}
	if id, ok := tok.TokenID("<|im_end|>"); ok && !contains(e.eos, id) {
		e.eos = append(e.eos, id) // ChatML ends every turn with it
	}
	if e.dev, err = openDevice(f.device, f.impl, f.week, flagGiven(f.fs, "week"), stderr); err != nil {
		return nil, err
	}
	week := f.week
	if e.dev != nil {
		defer func() {
			if err != nil {
				if e.gpu != nil {
					e.gpu.Close()
				}
				e.dev.Close()
			}
		}()
		var sampling *devsample.Params
		if f.temperature > 0 {
			sampling = &devsample.Params{Temperature: f.temperature, TopP: f.topP, TopK: f.topK, Seed: f.seed}
		}
		if e.model, e.gpu, err = loadGPU(e.dev, ck, f.impl, gpuOptions{maxContext: f.maxContext}, sampling); err != nil {
			return nil, err
		}
		e.limit, week = e.gpu.MaxContext(), 2
	} else if !f.noModel {
		if err := learnerGuard(f.impl, func() error {
			var err error
			e.model, err = e.impl.weeks[f.week](ck)
			return err
		}); err != nil {
			return nil, err
		}
	}
	if f.draft != "" {
		if e.draft, e.draftCk, err = loadDraft(f, e.impl, ck.Config.VocabSize, e.limit, tok, stderr); err != nil {
			return nil, err
		}
	}
	if f.noModel {
		week = 3
	}
	settleHeap()
	c := ck.Config
	fmt.Fprintf(stderr, "loaded %s: %d layers, hidden %d, vocab %d (%s impl, week %d, %s, %.1fs)\n",
		modelName(f.modelDir), c.NumHiddenLayers, c.HiddenSize, c.VocabSize, f.impl, week, deviceNote(e.dev), time.Since(start).Seconds())
	return e, nil
}

// reply generates an answer to msgs, streaming it to stdout, and prints the
// speed to stderr.
func (e *engine) reply(msgs []tokenizer.Message, stdout, stderr io.Writer) (string, error) {
	f := e.flags
	if f.system != "" && (len(msgs) == 0 || msgs[0].Role != "system") {
		msgs = append([]tokenizer.Message{{Role: "system", Content: f.system}}, msgs...)
	}
	// Week 1 has no way past the model's context (its RoPE table ends there):
	// refuse a conversation that does not fit and shorten the reply budget.
	prompt, err := e.tok.EncodeChat(msgs, true)
	if err != nil {
		return "", err
	}
	limit := e.limit
	if len(prompt) >= limit {
		return "", fmt.Errorf("the conversation is %d tokens and the model's context is %d: start a new one (/reset in chat)", len(prompt), limit)
	}
	maxTokens := min(f.maxTokens, limit-len(prompt))
	if e.dev == nil { // the GPU model checked the device's memory when it was loaded
		if err := checkMemory(f.impl, f.week, e.ck.Config, len(prompt)+maxTokens); err != nil {
			return "", err
		}
	}
	// Counting the sampler's draws counts the tokens generated, end-of-turn
	// token included, without decoding or re-encoding anything.
	// A draft is only a speed-up: where its context cannot hold the reply,
	// the model decodes alone, to the same greedy reply (as vLLM skips
	// speculation for a sequence past the draft's length), rather than
	// the draft's context shortening the model's.
	if e.draft != nil {
		if e.draftFits(len(prompt), maxTokens) {
			return e.replySpeculating(msgs, maxTokens, stdout, stderr)
		}
		fmt.Fprintf(stderr, "[the conversation (%d tokens) and a reply of up to %d do not fit the draft's context of %d: decoding without the draft, to the same reply]\n",
			len(prompt), maxTokens, e.draftCk.Config.MaxPositionEmbeddings)
	}
	s := &countingSampler{sampler: e.impl.sampler(f.temperature, f.topP, f.topK, f.seed), dir: f.modelDir, vocab: e.tok.VocabSize()}
	start := time.Now()
	var text string
	err = learnerGuard(f.impl, func() error {
		return stopAtNonFinite(func() error {
			var err error
			text, err = e.model.generate(e.tok, msgs, s, maxTokens, e.eos, func(piece string) {
				fmt.Fprint(stdout, piece)
			})
			return err
		})
	})
	fmt.Fprintln(stdout)
	if err != nil {
		return "", e.replyError(err)
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "[%d tokens in %.1fs, %.2f tokens/s]\n", s.n, secs, float64(s.n)/secs)
	if s.n >= maxTokens && !contains(e.eos, s.last) {
		// The reply did not end by itself: say where it was cut.
		if maxTokens < f.maxTokens {
			fmt.Fprintf(stderr, "[reply cut: the model's context of %d tokens is full; /reset starts a new conversation]\n", limit)
		} else {
			fmt.Fprintf(stderr, "[reply cut at --max-tokens %d]\n", f.maxTokens)
		}
	}
	return text, nil
}

// replyError restates an error of a generation loop that the user can act
// on: an id the tokenizer cannot decode (a GPU's draw, or a tokenizer with
// holes, where countingSampler's bound does not reach) is one line about
// the model and its tokenizer, not the loop's chain of package names.
func (e *engine) replyError(err error) error {
	var idErr *tokenizer.IDError
	if errors.As(err, &idErr) {
		return fmt.Errorf("the model chose token id %d, which the tokenizer of %s (%d tokens) has no token for: the model and its tokenizer do not belong together",
			idErr.ID, e.flags.modelDir, e.tok.VocabSize())
	}
	return err
}

// countingSampler counts the tokens it draws and remembers the last one.
// Seeing every row of log-probabilities the model gives, it also stops the
// generation at one that is not finite (see nonFiniteError): a sampler would
// draw from such a row as from any other, greedy's argmax finding id 0 in a
// row of NaN, and the reply would be garbage (or empty) with no error.
// Scanning the row costs a vocabulary's worth of comparisons per token,
// nothing beside the forward pass that made it.
//
// The sampler sees only the first vocab ids of a row, those the tokenizer
// has: a model whose vocabulary is larger (padded, or random from mkmodel)
// could otherwise draw an id that cannot be decoded. The sampler normalises
// what it is given, so this is the distribution over those ids.
type countingSampler struct {
	sampler
	n     int
	last  int
	dir   string // the model folder, for the error
	vocab int    // the tokenizer's ids; 0: every id of the row
}

func (c *countingSampler) Sample(logprobs *tensor.Tensor) int {
	checkFinite(logprobs.Data(), c.n, c.dir)
	c.n++
	c.last = c.sampler.Sample(tokenizerIDs(logprobs, c.vocab))
	return c.last
}

// fewTokenizerIDs reports whether a tokenizer of n tokens leaves most of a
// model vocabulary of v ids without a token, as beside a random model from
// tinyllm mkmodel; a real checkpoint pads only a few hundred ids.
func fewTokenizerIDs(n, v int) bool { return n < v-v/8 }

// tokenizerIDs is the first vocab entries of a row of one position's
// log-probabilities (or logits), the ids the tokenizer has; the row itself
// where vocab is 0 or covers it.
func tokenizerIDs(row *tensor.Tensor, vocab int) *tensor.Tensor {
	data := row.Data()
	if vocab <= 0 || vocab >= len(data) || len(data) != row.Dim(-1) {
		return row
	}
	return tensor.New(data[:vocab], vocab)
}

// tokenizerSampler draws, like countingSampler, only among the ids the
// tokenizer has: the server's samplers for a model with many ids beyond
// them (fewTokenizerIDs), greedily where inner is nil. The runner decodes
// a greedy request by the argmax of the whole row when it has no sampler,
// so the server gives those requests this one.
type tokenizerSampler struct {
	inner llm.Sampler
	vocab int
}

func (s tokenizerSampler) Sample(logprobs *tensor.Tensor) int {
	row := tokenizerIDs(logprobs, s.vocab)
	if s.inner == nil {
		return tensor.ArgMax(row, 0)[0]
	}
	return s.inner.Sample(row)
}

// nonFiniteError is a row of logits (or log-probabilities) holding NaN or an
// infinity: a model of finite weights and finite inputs gives none, so the
// checkpoint's weights are almost surely damaged. checkFinite panics with
// it from inside a generation loop, which has no way to return an error
// from its sampler or its model, and stopAtNonFinite turns it back into the
// error.
type nonFiniteError struct {
	dir   string  // the model folder
	token int     // tokens generated before the row; -1 where not counted
	value float32 // the first value that is not finite
}

func (e nonFiniteError) Error() string {
	where := ""
	if e.token >= 0 {
		where = fmt.Sprintf(" for reply token %d", e.token+1)
	}
	return fmt.Sprintf("the model's logits%s hold %v: the checkpoint in %s probably has corrupt weights (NaN or infinite values); check its files against their source",
		where, e.value, e.dir)
}

// checkFinite panics with a nonFiniteError at the first value of data that
// is NaN or infinite; token is the tokens generated before data's rows (-1:
// not counted).
func checkFinite(data []float32, token int, dir string) {
	for _, x := range data {
		// x-x is 0 for every finite x and NaN for NaN and ±Inf: one
		// comparison per value.
		if x-x != 0 {
			panic(nonFiniteError{dir: dir, token: token, value: x})
		}
	}
}

// stopAtNonFinite runs fn, returning the nonFiniteError that a check inside
// it panicked with as its error; any other panic goes on.
func stopAtNonFinite(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			nf, ok := r.(nonFiniteError)
			if !ok {
				panic(r)
			}
			err = nf
		}
	}()
	return fn()
}

// learnerGuard turns a panic from the learner's stubs into an error that says
// which day is not done yet, instead of a stack trace.
func learnerGuard(which string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			msg := fmt.Sprint(r)
			if which == "learner" && stub.Is(r) {
				err = fmt.Errorf("your implementation is not finished: %s (use --impl ref for the reference)", msg)
				return
			}
			panic(r)
		}
	}()
	return fn()
}

// warm reads every weight file once, so the first token is not slowed by page
// faults, and shows how far it has got.
func warm(files []string, stderr io.Writer) error {
	var total int64
	for _, p := range files {
		if fi, err := os.Stat(p); err == nil {
			total += fi.Size()
		}
	}
	buf := make([]byte, 8<<20)
	var done int64
	last := time.Now()
	for _, p := range files {
		fh, err := os.Open(p)
		if err != nil {
			return err
		}
		for {
			n, err := fh.Read(buf)
			done += int64(n)
			if time.Since(last) > 200*time.Millisecond {
				fmt.Fprintf(stderr, "\rreading weights %3.0f%% (%d of %d MB)", 100*float64(done)/float64(total), done>>20, total>>20)
				last = time.Now()
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				fh.Close()
				return err
			}
		}
		fh.Close()
	}
	if total > 64<<20 {
		fmt.Fprintf(stderr, "\rreading weights 100%% (%d MB)            \n", total>>20)
	}
	return nil
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// modelName is how the model is called in messages: its folder's name, or the
// shipped model's name for an unpacked copy in the cache, which is named
// <name>-<16 hex digits>.
func modelName(dir string) string {
	base := filepath.Base(filepath.Clean(dir))
	for _, name := range []string{models.Name, models.Name4Bit} {
		key, ok := strings.CutPrefix(base, name+"-")
		if ok && len(key) == 16 && strings.Trim(key, "0123456789abcdef") == "" {
			return name + " (shipped)"
		}
	}
	return base
}
