// Package w2d7 holds the checks of Week 2 Day 7 (the whole model on the
// GPU), written once and run against both trees. The GPU checks say by name
// that they did not run on a machine without a GPU (kernels/kerneltest) and
// fail there when TINYLLM_REQUIRE_GPU=1.
package w2d7

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/npy"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devsample"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// Model is what the day's Load returns.
type Model interface {
	Prefill(ids []int) (int, error)
	Decode(token int) (int, error)
	Logits() (*tensor.Tensor, error)
	Reset()
	Len() int
	Close() error
}

// LoadOptions are the day's Options a check sets.
type LoadOptions struct {
	MaxContext       int  // 0: the day's default
	Graph            bool // capture the decode step
	FloatActivations bool // float32 inputs to every matrix product
}

// LoadFunc loads a checkpoint onto the device. Each tree wires its own Load
// and Options into one.
type LoadFunc[M Model] func(dev *kernels.Device, ck *checkpoint.Checkpoint, o LoadOptions) (M, error)

// GenerateFunc is the day's GenerateTokens, greedy.
type GenerateFunc[M Model] func(m M, prompt []int, maxTokens int, eos []int) ([]int, error)

// LogProbTol is the whole model's tolerance on log-probs against Hugging
// Face's float32 run and against the CPU Week 2 model. The GPU model reads
// the same bf16 weights but rounds what the CPU keeps in float32: the
// tensor-core matmul (Day 4's rung 4, used from 16 rows, so by every prefill
// of 16 tokens or more) rounds its input activations to bf16, a relative
// error of 2⁻⁹ on every product's input in every layer. Measured errors are
// logged by each check.
var LogProbTol = grade.Tol{RTol: 0, ATol: 0.05}

// GraphTol is the tolerance between the captured step and the step launched
// kernel by kernel: the same matmuls and norms, but two different decode
// attention kernels (Day 6's and the day's own), both float32, summing in
// another order.
var GraphTol = grade.Tol{RTol: 0, ATol: 1e-3}

// GraphTol4Bit is GraphTol on a 4-bit checkpoint, where the captured step
// may also round x differently: the reference's fused step takes x in two
// int8 parts (to about 2·10⁻⁵ of each slice's largest value) where the
// launched step's matrix-vector kernel takes three (float32's precision),
// which moves the shipped 4-bit model's logits by up to 2·10⁻³ over the
// test's 96 steps (the test logs how much).
var GraphTol4Bit = grade.Tol{RTol: 0, ATol: 1e-2}

// graphModes are the two ways a decode step runs, both checked.
var graphModes = []bool{false, true}

func modeName(graph bool) string {
	if graph {
		return "captured step"
	}
	return "step launched kernel by kernel"
}

func openCheckpoint(t *testing.T, rel string) *checkpoint.Checkpoint {
	t.Helper()
	return grade.OpenCheckpoint(t, rel)
}

func load[M Model](t *testing.T, task string, d *kernels.Device, ck *checkpoint.Checkpoint, o LoadOptions, ld LoadFunc[M]) (M, bool) {
	t.Helper()
	var m M
	var err error
	if grade.Run(t, task, func() { m, err = ld(d, ck, o) }) {
		return m, false
	}
	if err != nil {
		t.Fatalf("%s: loading %s: %v", task, ck.Dir, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("%s: Close: %v", task, err)
		}
	})
	return m, true
}

// logits downloads the last logits and checks that the token the device
// chose is their argmax (the first on a tie).
func logits(t *testing.T, at string, m Model, chosen int) *tensor.Tensor {
	t.Helper()
	got, err := m.Logits()
	if err != nil {
		t.Fatalf("%s: Logits: %v", at, err)
	}
	row := got.Data()
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	if chosen != best {
		t.Fatalf("%s: the device chose token %d, but the largest logit is token %d's (%g against %g): the argmax kernel is wrong",
			at, chosen, best, row[best], row[chosen])
	}
	return got
}

// hfModes are the ways HFDecode runs the model, each with its tolerance.
var hfModes = []struct {
	name string
	o    LoadOptions
	tol  grade.Tol
}{
	{"step launched kernel by kernel", LoadOptions{}, LogProbTol},
	{"captured step", LoadOptions{Graph: true}, LogProbTol},
	{"captured step, float32 activations", LoadOptions{Graph: true, FloatActivations: true}, grade.LogProbs},
}

// HFDecode checks the model on the device against Hugging Face's log-probs
// (the W2D1 fixtures: a prefill and 8 single-token decode steps, on two
// random checkpoints and the shipped model), each sequence of a batch on
// its own: with the step launched kernel by kernel and captured, within
// LogProbTol, and with float32 activations, within Week 2's own 10⁻³.
func HFDecode[M Model](t *testing.T, task string, ld LoadFunc[M]) {
	d := kerneltest.Open(t)
	grade.Cases(t, task, "w2d1", "decode", func(t *testing.T, c *fixture.Case) {
		dir, ok := c.Params["model_dir"].(string)
		if !ok {
			t.Fatalf("case %s has no model_dir", c.Name)
		}
		ck := openCheckpoint(t, dir)
		prompts := grade.MustTokenRows(t, c, "prompt")
		steps := grade.MustTokenRows(t, c, "decode_tokens")
		wantPrefill := grade.MustTensor(t, c, "logprobs_prefill")
		wantDecode := grade.MustTensor(t, c, "logprobs_decode")
		for _, mode := range hfModes {
			tol := mode.tol
			m, ok := load(t, task, d, ck, mode.o, ld)
			if !ok {
				return
			}
			worst := 0.0
			for b, prompt := range prompts {
				what := fmt.Sprintf("%s, case %s, sequence %d, %s", task, c.Name, b, mode.name)
				m.Reset()
				next, err := m.Prefill(prompt)
				if err != nil {
					t.Fatalf("%s: Prefill: %v", what, err)
				}
				at := fmt.Sprintf("%s, prefill of %d tokens", what, len(prompt))
				got := grade.LogSoftmax(logits(t, at, m, next))
				want := tensor.Take(tensor.Take(wantPrefill, []int{b}, 0), []int{len(prompt) - 1}, 1)
				grade.AllClose(t, at+" (log-probs of the last position)", got, want, tol)
				worst = math.Max(worst, grade.MaxAbsDiff(got, want))
				if m.Len() != len(prompt) {
					t.Fatalf("%s: Len() = %d after the prefill, want %d", at, m.Len(), len(prompt))
				}
				for i, tok := range steps[b] {
					at := fmt.Sprintf("%s, decode step %d (token %d at position %d)", what, i+1, tok, len(prompt)+i)
					next, err := m.Decode(tok)
					if err != nil {
						t.Fatalf("%s: Decode: %v", at, err)
					}
					got := grade.LogSoftmax(logits(t, at, m, next))
					want := tensor.Take(tensor.Take(wantDecode, []int{b}, 0), []int{i}, 1)
					grade.AllClose(t, at+" (log-probs)", got, want, tol)
					worst = math.Max(worst, grade.MaxAbsDiff(got, want))
				}
			}
			t.Logf("%s, case %s, %s: max |Δ log-prob| against Hugging Face = %.3g (tolerance %v)", task, c.Name, mode.name, worst, tol)
		}
	})
}

// MatchesWeek2 checks the model on the device against the CPU Week 2 model
// of the same tree on the shipped checkpoints, bf16 and 4-bit: a 40-token
// prompt (so the prefill takes the tensor-core matmul) and 24 greedy decode
// steps, log-probs at every step, both step modes.
func MatchesWeek2[M Model](t *testing.T, task string, ld LoadFunc[M], cpu func(ck *checkpoint.Checkpoint) (llm.CachedModel, error)) {
	d := kerneltest.Open(t)
	grade.PointToChapter(t, task)
	for _, dir := range []string{"models/tinyqwen-chat", "models/tinyqwen-chat-4bit"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			ck := openCheckpoint(t, dir)
			ref, err := cpu(ck)
			if err != nil {
				t.Fatalf("the CPU Week 2 model: %v", err)
			}
			prompt := make([]int, 40)
			for i := range prompt {
				prompt[i] = (i*977 + 13) % ck.Config.VocabSize
			}
			for _, graph := range graphModes {
				m, ok := load(t, task, d, ck, LoadOptions{Graph: graph}, ld)
				if !ok {
					return
				}
				what := fmt.Sprintf("%s, %s, %s", task, filepath.Base(dir), modeName(graph))
				caches := ref.NewCaches()
				want := grade.LogSoftmax(ref.ForwardLast([][]int{prompt}, 0, caches))
				next, err := m.Prefill(prompt)
				if err != nil {
					t.Fatalf("%s: Prefill: %v", what, err)
				}
				got := grade.LogSoftmax(logits(t, what+", prefill", m, next))
				grade.AllClose(t, what+", prefill of 40 tokens (log-probs)", got, want, LogProbTol)
				worst := grade.MaxAbsDiff(got, want)
				for i := range 24 {
					at := fmt.Sprintf("%s, decode step %d (token %d at position %d)", what, i+1, next, len(prompt)+i)
					want := grade.LogSoftmax(ref.ForwardLast([][]int{{next}}, len(prompt)+i, caches))
					next, err = m.Decode(next)
					if err != nil {
						t.Fatalf("%s: Decode: %v", at, err)
					}
					got := grade.LogSoftmax(logits(t, at, m, next))
					grade.AllClose(t, at+" (log-probs)", got, want, LogProbTol)
					worst = math.Max(worst, grade.MaxAbsDiff(got, want))
				}
				t.Logf("%s: max |Δ log-prob| against the CPU Week 2 model = %.3g (tolerance %v)", what, worst, LogProbTol)
			}
		})
	}
}

// Graphed is what a model says of its decode step: whether it replays a
// captured graph, and why not when capturing failed.
type Graphed interface {
	Graphed() (bool, error)
	Launches() int
}

// GraphMatchesEager checks that the captured step replays what the step
// launched kernel by kernel computes: the same greedy tokens and logits
// within GraphTol, for 48 steps of the shipped model (bf16 and 4-bit), the graph replayed
// again after a Reset and a second prompt (the step must read its token
// and position from the device, not from the capture). With requireGraph
// (the reference) the step must really have been captured; a learner's
// model may run it launch by launch.
func GraphMatchesEager[M interface {
	Model
	Graphed
}](t *testing.T, task string, ld LoadFunc[M], requireGraph bool) {
	d := kerneltest.Open(t)
	grade.PointToChapter(t, task)
	// bf16 and 4-bit: the reference captures a different step for each
	// (its fused kernels read the weights in the stored format).
	for _, c := range []struct {
		dir string
		tol grade.Tol
	}{{"models/tinyqwen-chat", GraphTol}, {"models/tinyqwen-chat-4bit", GraphTol4Bit}} {
		if !graphMatchesEager(t, task+" ("+c.dir+")", d, openCheckpoint(t, c.dir), ld, requireGraph, c.tol) {
			return
		}
	}
}

func graphMatchesEager[M interface {
	Model
	Graphed
}](t *testing.T, task string, d *kernels.Device, ck *checkpoint.Checkpoint, ld LoadFunc[M], requireGraph bool, tol grade.Tol) bool {
	eager, ok := load(t, task, d, ck, LoadOptions{}, ld)
	if !ok {
		return false
	}
	graphed, ok := load(t, task, d, ck, LoadOptions{Graph: true}, ld)
	if !ok {
		return false
	}
	worst := 0.0
	for round, prompt := range [][]int{{3069, 17, 404, 12, 9}, {3069, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800}} {
		eager.Reset()
		graphed.Reset()
		a, err := eager.Prefill(prompt)
		if err != nil {
			t.Fatal(err)
		}
		b, err := graphed.Prefill(prompt)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 48 {
			at := fmt.Sprintf("%s, prompt %d, step %d (position %d)", task, round+1, i, len(prompt)+i)
			la, lb := logits(t, at+", launched", eager, a), logits(t, at+", captured", graphed, b)
			grade.AllClose(t, at+": captured logits against launched ones", lb, la, tol)
			worst = math.Max(worst, grade.MaxAbsDiff(lb, la))
			if a != b {
				t.Fatalf("%s: the captured step chose token %d, the launched one %d", at, b, a)
			}
			if a, err = eager.Decode(a); err != nil {
				t.Fatal(err)
			}
			if b, err = graphed.Decode(b); err != nil {
				t.Fatal(err)
			}
		}
		if graphed.Len() != len(prompt)+48 {
			t.Fatalf("%s: Len() = %d after a prompt of %d and 48 steps", task, graphed.Len(), len(prompt))
		}
	}
	t.Logf("%s: max |Δ logit| between the captured and the launched step = %.3g (tolerance %v)", task, worst, tol)
	captured, err := graphed.Graphed()
	switch {
	case err != nil:
		t.Errorf("%s: capturing the decode step failed: %v", task, err)
	case !captured && requireGraph:
		t.Errorf("%s: Options.Graph was set but the decode step was not captured", task)
	case captured:
		t.Logf("%s: the captured step replays %d launches in one graph launch", task, graphed.Launches())
	default:
		t.Logf("%s: the decode step is not captured (Options.Graph is not used): both models ran launch by launch", task)
	}
	return true
}

// ShippedGreedy checks that the greedy replies Hugging Face gives on the
// shipped model (the parity conversations of testdata/shipped/greedy) come
// out of the device token for token, with the captured step.
func ShippedGreedy[M Model](t *testing.T, task string, ld LoadFunc[M], generate GenerateFunc[M]) {
	d := kerneltest.Open(t)
	ck := openCheckpoint(t, "models/tinyqwen-chat")
	gen, err := ck.ReadGenerationConfig()
	if err != nil {
		t.Fatal(err)
	}
	// Token-for-token equality with a float32 reference needs float32
	// arithmetic: near-ties in the logits are decided by the last bits.
	m, ok := load(t, task, d, ck, LoadOptions{Graph: true, FloatActivations: true}, ld)
	if !ok {
		return
	}
	grade.Cases(t, task, "shipped", "greedy", func(t *testing.T, c *fixture.Case) {
		prompt := grade.MustInts(t, c, "prompt_ids")
		want := grade.MustInts(t, c, "ids")
		got, err := generate(m, prompt, grade.MustInt(t, c, "max_tokens"), gen.EOSTokenIDs)
		if err != nil {
			t.Fatalf("%s, case %s: %v", task, c.Name, err)
		}
		if !slices.Equal(got, want) {
			n := 0
			for n < min(len(got), len(want)) && got[n] == want[n] {
				n++
			}
			t.Fatalf("%s, case %s: the device generated %v, Hugging Face %v (first difference at reply token %d)", task, c.Name, got, want, n)
		}
	})
}

// RefusesWhatDoesNotFit checks that a model that cannot fit on the device
// is refused before anything is allocated, with an error that says what
// was needed: the check first takes all but 64 MiB of the device's free
// memory, then loads the shipped model.
func RefusesWhatDoesNotFit[M Model](t *testing.T, task string, ld LoadFunc[M]) {
	d := kerneltest.Open(t)
	grade.PointToChapter(t, task)
	ck := openCheckpoint(t, "models/tinyqwen-chat")
	free, _, err := d.MemInfo()
	if err != nil {
		t.Fatal(err)
	}
	var hog *kernels.Buffer
	for leave := int64(64 << 20); hog == nil && leave < free; leave *= 2 {
		hog, _ = d.Alloc(int(free - leave)) // the allocator may want some room of its own
	}
	if hog == nil {
		t.Fatalf("%s: could not take the device's free memory (%d bytes) to make the model not fit", task, free)
	}
	defer hog.Free()
	before := d.Stats()
	var m M
	if grade.Run(t, task, func() { m, err = ld(d, ck, LoadOptions{}) }) {
		return
	}
	if err == nil {
		m.Close()
		t.Fatalf("%s: the model was loaded into the little memory left; Load must check the memory it needs against the free memory first", task)
	}
	if !strings.Contains(err.Error(), "need") {
		t.Errorf("%s: the error %q does not say how much memory was needed", task, err)
	}
	if after := d.Stats(); after != before {
		t.Errorf("%s: the refused Load left objects on the device: %+v before, %+v after", task, before, after)
	}
}

// FidelityEnv names the folder refgen/fidelity/qwen2_gpu_fidelity.py
// writes: a random Qwen2-0.5B-shaped checkpoint and Hugging Face's
// log-probs on it, float32 and bf16 on a GPU.
const FidelityEnv = "TINYLLM_W2D7_FIDELITY_DIR"

// Fidelity checks the model on a random Qwen2-0.5B-shaped checkpoint
// against Hugging Face: teacher-forced over the fixture's tokens (a
// one-token prefill, then one decode step per token, captured), the
// device's log-probs must be no further from HF float32's than HF's own
// bf16 run is: max |Δ log-prob| at most 1.5 times HF bf16's, and top-1
// agreement with float32 at most one point below HF bf16's.
func Fidelity[M Model](t *testing.T, task string, ld LoadFunc[M]) {
	dir := os.Getenv(FidelityEnv)
	if dir == "" {
		msg := fmt.Sprintf("not run: needs %s (a Qwen2-0.5B-shaped checkpoint and HF log-probs from refgen/fidelity/qwen2_gpu_fidelity.py, on a machine with PyTorch; scripts/gpu-check.sh makes them)", FidelityEnv)
		if os.Getenv(kerneltest.RequireEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	d := kerneltest.Open(t)
	grade.PointToChapter(t, task)
	read := func(name string) *npy.Array {
		a, err := npy.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ids, err := read("tokens.npy").Ints()
	if err != nil {
		t.Fatal(err)
	}
	f32, err := read("logprobs.npy").Tensor()
	if err != nil {
		t.Fatal(err)
	}
	bf16, err := read("logprobs_bf16.npy").Tensor()
	if err != nil {
		t.Fatal(err)
	}
	vocab := f32.Dim(-1)
	f32 = tensor.Reshape(f32, len(ids), vocab)
	bf16 = tensor.Reshape(bf16, len(ids), vocab)
	ck, err := checkpoint.Open(filepath.Join(dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	m, ok := load(t, task, d, ck, LoadOptions{Graph: true}, ld)
	if !ok {
		return
	}
	rows := make([]float32, 0, len(ids)*vocab)
	next, err := m.Prefill(ids[:1])
	for i := 0; err == nil; i++ {
		got := grade.LogSoftmax(logits(t, fmt.Sprintf("%s, position %d", task, i), m, next))
		rows = append(rows, got.Data()...)
		if i+1 == len(ids) {
			break
		}
		next, err = m.Decode(ids[i+1])
	}
	if err != nil {
		t.Fatal(err)
	}
	gpu := tensor.New(rows, len(ids), vocab)
	gpuDelta, bf16Delta := grade.MaxAbsDiff(gpu, f32), grade.MaxAbsDiff(bf16, f32)
	gpuTop, bf16Top := top1Agreement(gpu, f32), top1Agreement(bf16, f32)
	t.Logf("%s: %d positions of a %d-token vocabulary: max |Δ log-prob| against HF float32: this engine %.4f, HF bf16 %.4f (ratio %.2f, limit 1.5); top-1 agreement: this engine %.1f%%, HF bf16 %.1f%%",
		task, len(ids), vocab, gpuDelta, bf16Delta, gpuDelta/bf16Delta, gpuTop, bf16Top)
	if gpuDelta > 1.5*bf16Delta {
		t.Errorf("%s: max |Δ log-prob| %.4f is more than 1.5 times HF bf16's %.4f", task, gpuDelta, bf16Delta)
	}
	if gpuTop < bf16Top-1 {
		t.Errorf("%s: top-1 agreement with float32 %.1f%% is more than one point below HF bf16's %.1f%%", task, gpuTop, bf16Top)
	}
}

// top1Agreement is the percentage of rows whose argmax is the reference's.
func top1Agreement(got, want *tensor.Tensor) float64 {
	rows, v := got.Dim(0), got.Dim(1)
	g, w := got.Data(), want.Data()
	same := 0
	for r := range rows {
		if argmax(g[r*v:(r+1)*v]) == argmax(w[r*v:(r+1)*v]) {
			same++
		}
	}
	return 100 * float64(same) / float64(rows)
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// SamplingModel is a Model that can draw its tokens on the device.
type SamplingModel interface {
	Model
	SetSampling(p *devsample.Params) error
}

// SampleFunc is the day's GenerateTokens with a CPU sampler (s not nil:
// each token drawn from the logits copied back) or without one (the token
// Prefill or Decode chose on the device).
type SampleFunc[M Model] func(m M, prompt []int, maxTokens int, s llm.Sampler) ([]int, error)

// DeviceSampling checks the draw on the device: with SetSampling, the
// shipped model generates the tokens that Week 1's sampler (newSampler)
// draws on the CPU, with the same settings and seed, from the logits copied
// back after every step. Each run loads the model afresh, so that both take
// the same path (a first decode step launched kernel by kernel, then the
// captured one) and compute the same logits. Going back to greedy with
// SetSampling(nil) must take the argmax again.
func DeviceSampling[M SamplingModel](t *testing.T, task string, ld LoadFunc[M], generate SampleFunc[M],
	newSampler func(temperature, topP float64, topK int, seed uint64) llm.Sampler) {
	d := kerneltest.Open(t)
	ck := openCheckpoint(t, "models/tinyqwen-chat")
	tok, err := tokenizer.LoadDir(ck.Dir)
	if err != nil {
		t.Fatal(err)
	}
	prompt, err := tok.EncodeChat([]tokenizer.Message{{Role: "user", Content: "Tell me a story about a cat."}}, true)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for _, p := range []devsample.Params{
		{Temperature: 0.8, TopP: 0.9, TopK: 40, Seed: 7},
		{Temperature: 1.2, TopP: 0.95, Seed: 8},
		{Temperature: 0.7, TopP: 1, TopK: 20, Seed: 9},
	} {
		name := fmt.Sprintf("temperature %g, top-p %g, top-k %d, seed %d", p.Temperature, p.TopP, p.TopK, p.Seed)
		m, ok := load(t, task, d, ck, LoadOptions{Graph: true}, ld)
		if !ok {
			return
		}
		if err := m.SetSampling(&p); err != nil {
			t.Fatalf("%s: SetSampling(%s): %v", task, name, err)
		}
		var onDevice []int
		if grade.Run(t, task, func() { onDevice, err = generate(m, prompt, n, nil) }) {
			return
		}
		if err != nil {
			t.Fatalf("%s: sampling on the device (%s): %v", task, name, err)
		}
		// Back to greedy: the next choice is the argmax again.
		if err := m.SetSampling(nil); err != nil {
			t.Fatalf("%s: SetSampling(nil): %v", task, err)
		}
		m.Reset()
		next, err := m.Prefill(prompt)
		if err != nil {
			t.Fatalf("%s: Prefill after SetSampling(nil): %v", task, err)
		}
		logits(t, task+", greedy again after sampling", m, next)

		ref, ok := load(t, task, d, ck, LoadOptions{Graph: true}, ld)
		if !ok {
			return
		}
		onCPU, err := generate(ref, prompt, n, newSampler(p.Temperature, p.TopP, p.TopK, p.Seed))
		if err != nil {
			t.Fatalf("%s: sampling on the CPU (%s): %v", task, name, err)
		}
		if !slices.Equal(onDevice, onCPU) {
			k := 0
			for k < min(len(onDevice), len(onCPU)) && onDevice[k] == onCPU[k] {
				k++
			}
			t.Errorf("%s, %s: drawn on the device %v, by Week 1's sampler from the same logits %v (first difference at token %d)",
				task, name, onDevice, onCPU, k)
		}
	}
}

// DecodesAhead checks the model's DecodeAhead against Decode, for both
// shipped models, launched and captured: after the same prompt, DecodeAhead
// from a fresh sequence (the step not yet captured) and again later (then
// replayed back to back) must choose the tokens that one Decode at a time
// chooses, and leave the cache where those calls would: the next Decode
// after it agrees too. A learner's copy of DecodeAhead calls Decode.
func DecodesAhead[M interface {
	Model
	DecodeAhead(token, n int) ([]int, error)
}](t *testing.T, task string, ld LoadFunc[M]) {
	d := kerneltest.Open(t)
	grade.PointToChapter(t, task)
	prompt := []int{3069, 17, 404, 12, 9}
	for _, dir := range []string{"models/tinyqwen-chat", "models/tinyqwen-chat-4bit"} {
		ck := openCheckpoint(t, dir)
		for _, graph := range []bool{false, true} {
			at := fmt.Sprintf("%s (%s, captured step %v)", task, dir, graph)
			one, ok := load(t, at, d, ck, LoadOptions{Graph: graph}, ld)
			if !ok {
				return
			}
			ahead, ok := load(t, at, d, ck, LoadOptions{Graph: graph}, ld)
			if !ok {
				return
			}
			first, err := one.Prefill(prompt)
			if err != nil {
				t.Fatal(err)
			}
			want := []int{first}
			for len(want) < 1+3+20+1 {
				next, err := one.Decode(want[len(want)-1])
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, next)
			}
			if _, err := ahead.Prefill(prompt); err != nil {
				t.Fatal(err)
			}
			got := []int{first}
			for _, n := range []int{3, 20} {
				ids, err := ahead.DecodeAhead(got[len(got)-1], n)
				if err != nil {
					t.Fatalf("%s: DecodeAhead(%d, %d): %v", at, got[len(got)-1], n, err)
				}
				if len(ids) != n {
					t.Fatalf("%s: DecodeAhead(_, %d) returned %d tokens", at, n, len(ids))
				}
				got = append(got, ids...)
			}
			next, err := ahead.Decode(got[len(got)-1])
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, next)
			if !slices.Equal(got, want) {
				t.Errorf("%s: DecodeAhead chose %v, one Decode at a time %v", at, got, want)
			}
			if ahead.Len() != one.Len() {
				t.Errorf("%s: Len() = %d after DecodeAhead, %d after the same steps one at a time", at, ahead.Len(), one.Len())
			}
			if _, err := ahead.DecodeAhead(next, 0); err == nil {
				t.Errorf("%s: DecodeAhead of 0 steps gave no error", at)
			}
			one.Close()
			ahead.Close()
		}
	}
}
