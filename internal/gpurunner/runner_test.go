package gpurunner

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/w2d7"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devsample"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
	w1day7 "github.com/tinyllm-go/tinyllm/solutions/week1/day7"
	w3day1 "github.com/tinyllm-go/tinyllm/solutions/week3/day1"
	w3day3 "github.com/tinyllm-go/tinyllm/solutions/week3/day3"
)

func openCheckpoint(t *testing.T, rel string) *checkpoint.Checkpoint {
	t.Helper()
	return grade.OpenCheckpoint(t, rel)
}

// loadRunner loads ck with o and binds it to a fresh pool of its shape;
// the model is closed when the test ends.
func loadRunner(t *testing.T, d *kernels.Device, ck *checkpoint.Checkpoint, o Options) (*Model, *w3day3.PagePool, *Runner) {
	t.Helper()
	m, err := Load(d, ck, o)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	pool, err := w3day3.NewPagePool(PoolConfig(ck.Config, o))
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Runner(pool)
	if err != nil {
		t.Fatal(err)
	}
	return m, pool, r
}

// stepper runs hand-made batches through a runner and a block manager, as
// the engine would: pages reserved before the step, NumCached moved after.
type stepper struct {
	t      *testing.T
	m      *Model
	r      *Runner
	blocks *w3day3.BlockManager
}

// run computes one batch and returns the next tokens and the log-probs of
// the sampling chunks' rows, in batch order.
func (s stepper) run(what string, batch llm.Batch) ([]int, []*tensor.Tensor) {
	s.t.Helper()
	for _, c := range batch {
		if err := s.blocks.Allocate(c.Seq, c.Start+c.Len); err != nil {
			s.t.Fatalf("%s: Allocate: %v", what, err)
		}
	}
	next, err := s.r.Run(batch)
	if err != nil {
		s.t.Fatalf("%s: Run: %v", what, err)
	}
	vocab := s.m.cfg.VocabSize
	var rows []*tensor.Tensor
	j := 0
	for i, c := range batch {
		c.Seq.NumCached += c.Len
		if !c.Samples() {
			if next[i] != -1 {
				s.t.Fatalf("%s: chunk %d does not sample, but Run returned token %d for it, want -1", what, i, next[i])
			}
			continue
		}
		row := make([]float32, vocab)
		if err := kernels.Read(row, s.m.logits.Buf, j*vocab); err != nil {
			s.t.Fatal(err)
		}
		j++
		best := 0
		for k, v := range row {
			if v > row[best] {
				best = k
			}
		}
		if next[i] != best {
			s.t.Fatalf("%s: chunk %d: the device chose token %d, but the largest logit is token %d's: the argmax is wrong", what, i, next[i], best)
		}
		rows = append(rows, grade.LogSoftmax(tensor.New(row, 1, vocab)))
	}
	return next, rows
}

// TestRunnerHuggingFaceGPU runs the W2D1 fixtures' sequences (random tied
// and untied checkpoints and the shipped model; a prompt, then 8 fed
// tokens, Hugging Face's log-probs after each) through the runner together,
// as continuous batching would: the first sequence's prompt alone, the
// others' prompts in two chunks that share steps with its decodes, then
// every sequence decoding in one step. Every sampled row must match
// Hugging Face, within the GPU model's tolerance (its tensor-core products
// round their input to bf16), and every page must come back at the end.
func TestRunnerHuggingFaceGPU(t *testing.T) {
	d := kerneltest.Open(t)
	cases, err := fixture.Load("w2d1", "decode")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dir, ok := c.Params["model_dir"].(string)
			if !ok {
				t.Fatalf("case %s has no model_dir", c.Name)
			}
			ck := openCheckpoint(t, dir)
			prompts := grade.MustTokenRows(t, c, "prompt")
			steps := grade.MustTokenRows(t, c, "decode_tokens")
			wantPrefill := grade.MustTensor(t, c, "logprobs_prefill")
			wantDecode := grade.MustTensor(t, c, "logprobs_decode")
			// Pages of 4 positions: every sequence spans several, handed
			// out interleaved between the sequences.
			o := Options{MaxTokens: 64, MaxSeqs: 8, NumPages: 64, PageSize: 4}
			m, pool, r := loadRunner(t, d, ck, o)
			s := stepper{t: t, m: m, r: r, blocks: w3day3.NewBlockManager(pool)}
			seqs := make([]*llm.Sequence, len(prompts))
			for b, p := range prompts {
				seqs[b] = llm.NewSequence(b, p, len(steps[b])+1)
			}
			worst := 0.0
			check := func(at string, got, want *tensor.Tensor) {
				t.Helper()
				grade.AllClose(t, at, got, want, w2d7.LogProbTol)
				worst = math.Max(worst, grade.MaxAbsDiff(got, want))
			}
			prefillWant := func(b int) *tensor.Tensor {
				return tensor.Reshape(tensor.Take(tensor.Take(wantPrefill, []int{b}, 0), []int{len(prompts[b]) - 1}, 1), 1, -1)
			}
			decodeWant := func(b, i int) *tensor.Tensor {
				return tensor.Reshape(tensor.Take(tensor.Take(wantDecode, []int{b}, 0), []int{i}, 1), 1, -1)
			}
			// Step 1: sequence 0's whole prompt; the first halves of
			// the others' (chunks that do not sample).
			batch := llm.Batch{{Seq: seqs[0], Start: 0, Len: len(prompts[0])}}
			for b := 1; b < len(seqs); b++ {
				batch = append(batch, llm.ScheduledChunk{Seq: seqs[b], Start: 0, Len: len(prompts[b]) / 2})
			}
			_, rows := s.run("step 1 (a prompt and first halves)", batch)
			check(fmt.Sprintf("case %s, sequence 0, prefill", c.Name), rows[0], prefillWant(0))
			// Step 2: sequence 0's first decode beside the others'
			// second halves.
			seqs[0].Tokens = append(seqs[0].Tokens, steps[0][0])
			batch = llm.Batch{{Seq: seqs[0], Start: seqs[0].NumCached, Len: 1}}
			for b := 1; b < len(seqs); b++ {
				batch = append(batch, llm.ScheduledChunk{Seq: seqs[b], Start: seqs[b].NumCached, Len: len(prompts[b]) - seqs[b].NumCached})
			}
			_, rows = s.run("step 2 (a decode and second halves)", batch)
			check(fmt.Sprintf("case %s, sequence 0, decode step 1", c.Name), rows[0], decodeWant(0, 0))
			for b := 1; b < len(seqs); b++ {
				check(fmt.Sprintf("case %s, sequence %d, prefill in two chunks", c.Name, b), rows[b], prefillWant(b))
			}
			// Then every sequence decodes in each step, sequence 0 one
			// token ahead of the others.
			for i := 0; ; i++ {
				batch = batch[:0]
				var who []int
				for b, seq := range seqs {
					k := i
					if b == 0 {
						k = i + 1
					}
					if k >= len(steps[b]) {
						continue
					}
					seq.Tokens = append(seq.Tokens, steps[b][k])
					batch = append(batch, llm.ScheduledChunk{Seq: seq, Start: seq.NumCached, Len: 1})
					who = append(who, b)
				}
				if len(batch) == 0 {
					break
				}
				_, rows = s.run(fmt.Sprintf("decode step %d", i+2), batch)
				for j, b := range who {
					k := i
					if b == 0 {
						k = i + 1
					}
					check(fmt.Sprintf("case %s, sequence %d, decode step %d", c.Name, b, k+1), rows[j], decodeWant(b, k))
				}
			}
			for _, seq := range seqs {
				if err := s.blocks.Free(seq); err != nil {
					t.Fatal(err)
				}
			}
			if free := pool.NumFree(); free != o.NumPages {
				t.Fatalf("%d of %d pages still in use after every sequence was freed", o.NumPages-free, o.NumPages)
			}
			t.Logf("case %s: max |Δ log-prob| against Hugging Face = %.3g (tolerance %v)", c.Name, worst, w2d7.LogProbTol)
		})
	}
}

// TestRunnerRefusesGPU checks that a bad batch is an error before anything
// runs, and that a step larger than the model's options is refused.
func TestRunnerRefusesGPU(t *testing.T) {
	d := kerneltest.Open(t)
	ck := openCheckpoint(t, "models/tinyqwen-chat")
	o := Options{MaxTokens: 8, MaxSeqs: 2, NumPages: 16, PageSize: 4}
	m, pool, r := loadRunner(t, d, ck, o)
	if _, err := m.Runner(mustPool(t, w3day3.PoolConfig{NumPages: 16, PageSize: 8, Layers: ck.Config.NumHiddenLayers,
		KVHeads: ck.Config.NumKeyValueHeads, HeadDim: ck.Config.HeadDim()})); err == nil {
		t.Fatal("Runner accepted a pool of another page size")
	}
	blocks := w3day3.NewBlockManager(pool)
	long := llm.NewSequence(0, make([]int, 9), 1)
	if err := blocks.Allocate(long, 9); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(llm.Batch{{Seq: long, Start: 0, Len: 9}}); err == nil {
		t.Fatal("Run took a step of 9 tokens from a model loaded for 8")
	}
	bad := llm.NewSequence(1, []int{1, ck.Config.VocabSize}, 1)
	if err := blocks.Allocate(bad, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(llm.Batch{{Seq: bad, Start: 0, Len: 2}}); err == nil {
		t.Fatal("Run took a token id outside the vocabulary")
	}
	noPages := llm.NewSequence(2, []int{1, 2}, 1)
	if _, err := r.Run(llm.Batch{{Seq: noPages, Start: 0, Len: 2}}); err == nil {
		t.Fatal("Run took a sequence without pages for its positions")
	}
}

func mustPool(t *testing.T, c w3day3.PoolConfig) *w3day3.PagePool {
	t.Helper()
	p, err := w3day3.NewPagePool(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMemoryNeed checks the options and that the need grows with the pool
// and the step, without a GPU.
func TestMemoryNeed(t *testing.T) {
	cfg := checkpoint.Config{HiddenSize: 64, IntermediateSize: 128, NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2,
		VocabSize: 100, MaxPositionEmbeddings: 64, RopeTheta: 10000, RMSNormEps: 1e-6}
	base := Options{MaxTokens: 16, MaxSeqs: 4, NumPages: 8, PageSize: 4}
	n0, err := MemoryNeed(cfg, base)
	if err != nil {
		t.Fatal(err)
	}
	more := base
	more.NumPages *= 2
	n1, err := MemoryNeed(cfg, more)
	if err != nil {
		t.Fatal(err)
	}
	if want := DeviceBytesPerPage(cfg, base) * int64(base.NumPages); n1-n0 != want {
		t.Errorf("doubling the pages added %d bytes, want the %d of %d pages", n1-n0, want, base.NumPages)
	}
	for _, bad := range []Options{{MaxTokens: 0, MaxSeqs: 0, NumPages: 8, PageSize: 4}, {MaxTokens: 4, MaxSeqs: 8, NumPages: 8, PageSize: 4},
		{MaxTokens: 16, MaxSeqs: 4, NumPages: 0, PageSize: 4}, {MaxTokens: 16, MaxSeqs: 4, NumPages: 8, PageSize: 0}} {
		if _, err := MemoryNeed(cfg, bad); err == nil {
			t.Errorf("MemoryNeed accepted %+v", bad)
		}
	}
}

// TestSplitAttentionGPU checks the split attention path on a context long
// enough to split (a 400-token prompt, then a decode step): the decode
// step's log-probs against the reference Week 3 CPU model, and the last
// layer's attention computed in splits against the same attention in one
// range.
func TestSplitAttentionGPU(t *testing.T) {
	d := kerneltest.Open(t)
	ck := openCheckpoint(t, "models/tinyqwen-chat")
	cfg := ck.Config
	o := Options{MaxTokens: 512, MaxSeqs: 4, NumPages: 64, PageSize: 16}
	m, pool, r := loadRunner(t, d, ck, o)
	s := stepper{t: t, m: m, r: r, blocks: w3day3.NewBlockManager(pool)}
	prompt := make([]int, 400)
	for i := range prompt {
		prompt[i] = (i*7919 + 13) % cfg.VocabSize
	}
	seq := llm.NewSequence(0, prompt, 2)
	next, _ := s.run("prefill of 400", llm.Batch{{Seq: seq, Start: 0, Len: len(prompt)}})
	seq.Tokens = append(seq.Tokens, next[0])
	splits := attentionSplits(1, cfg.NumKeyValueHeads, seq.Len(), d.Info().Multiprocessors)
	if splits < 2 {
		t.Fatalf("a decode step of one sequence of %d positions runs in %d split(s); the check needs several", seq.Len(), splits)
	}
	_, rows := s.run("decode at 400", llm.Batch{{Seq: seq, Start: seq.NumCached, Len: 1}})

	// The reference CPU model on the same tokens.
	cpu, err := w3day1.NewQwen2ModelWeek3(ck)
	if err != nil {
		t.Fatal(err)
	}
	caches := cpu.NewCaches()
	cpu.ForwardBatch([]llm.BatchSeq{{Tokens: prompt, Offset: 0, Caches: caches}})
	want := cpu.ForwardBatch([]llm.BatchSeq{{Tokens: []int{next[0]}, Offset: len(prompt), Caches: caches}})
	grade.AllClose(t, "the decode step's log-probs at position 400 against the CPU Week 3 model", rows[0], grade.LogSoftmax(want), w2d7.LogProbTol)

	// The last layer's attention (in m.attn) again in one range, into m.o.
	hq, dim := cfg.NumAttentionHeads, cfg.HeadDim()
	split, err := kernels.Download[float32](m.attn.Buf, hq*dim)
	if err != nil {
		t.Fatal(err)
	}
	l := m.layers[len(m.layers)-1]
	if err := d.Launch(m.k["paged_attention_bf16"], m.attentionLaunch(1, cfg.NumKeyValueHeads, 1),
		m.o.Buf, m.o.Buf, m.q.Buf, l.k, l.v, m.tables, m.info, m.rowSeq, int32(len(seq.BlockTable)), int32(o.PageSize), float32(1/math.Sqrt(float64(dim)))); err != nil {
		t.Fatal(err)
	}
	whole, err := kernels.Download[float32](m.o.Buf, hq*dim)
	if err != nil {
		t.Fatal(err)
	}
	// The probabilities enter the tensor cores as bf16, each range's
	// relative to its own maximum: the two orders round differently, by
	// up to 2⁻⁹ of a weight.
	grade.AllClose(t, fmt.Sprintf("attention in %d splits against one range", splits), tensor.New(split, hq, dim), tensor.New(whole, hq, dim), grade.Tol{RTol: 1e-2, ATol: 1e-3})
}

// settingsSampler is Week 1's sampler that tells its settings, as the
// server's samplers do.
type settingsSampler struct {
	llm.Sampler
	p devsample.Params
}

func (s settingsSampler) DeviceParams() devsample.Params { return s.p }

// TestRunnerDrawsOnDeviceGPU checks the draws on the device: three
// sequences whose samplers tell their settings, batched with a fourth
// whose sampler does not, generate the tokens that Week 1's sampler draws
// on the CPU from the same logits (the same batches run again with plain
// samplers, on a model loaded afresh); every page comes back.
func TestRunnerDrawsOnDeviceGPU(t *testing.T) {
	d := kerneltest.Open(t)
	ck := openCheckpoint(t, "models/tinyqwen-chat")
	o := Options{MaxTokens: 64, MaxSeqs: 8, NumPages: 64, PageSize: 4}
	params := []devsample.Params{
		{Temperature: 0.8, TopP: 0.9, TopK: 40, Seed: 1},
		{Temperature: 1.2, TopP: 0.95, Seed: 2},
		{Temperature: 0.7, TopP: 1, TopK: 20, Seed: 3},
		{Temperature: 1, TopP: 0.8, Seed: 4}, // its sampler does not tell: drawn on the CPU
	}
	prompts := [][]int{{1, 2, 3, 4, 5}, {7, 8, 9}, {10, 11, 12, 13}, {20, 21}}
	const n = 24
	generate := func(device bool) [][]int {
		m, pool, r := loadRunner(t, d, ck, o)
		blocks := w3day3.NewBlockManager(pool)
		seqs := make([]*llm.Sequence, len(prompts))
		for b, p := range params {
			seqs[b] = llm.NewSequence(b, prompts[b], n)
			cpu := w1day7.NewSampler(p.Temperature, p.TopP, p.TopK, p.Seed)
			if device && b < 3 {
				seqs[b].Sampler = settingsSampler{cpu, p}
			} else {
				seqs[b].Sampler = cpu
			}
		}
		for step := range n {
			batch := make(llm.Batch, len(seqs))
			for i, seq := range seqs {
				batch[i] = llm.ScheduledChunk{Seq: seq, Start: seq.NumCached, Len: seq.Len() - seq.NumCached}
				if err := blocks.Allocate(seq, seq.Len()); err != nil {
					t.Fatalf("step %d: Allocate: %v", step, err)
				}
			}
			next, err := r.Run(batch)
			if err != nil {
				t.Fatalf("step %d: Run: %v", step, err)
			}
			for i, c := range batch {
				c.Seq.NumCached += c.Len
				c.Seq.Tokens = append(c.Seq.Tokens, next[i])
			}
		}
		out := make([][]int, len(seqs))
		for b, seq := range seqs {
			out[b] = seq.Tokens[seq.NumPrompt:]
			if err := blocks.Free(seq); err != nil {
				t.Fatal(err)
			}
		}
		if free := pool.NumFree(); free != o.NumPages {
			t.Fatalf("%d of %d pages still in use after every sequence was freed", o.NumPages-free, o.NumPages)
		}
		if got := len(m.draw.row); device && got != 3 {
			t.Fatalf("%d sequences hold a row of the device sampler, want 3", got)
		}
		return out
	}
	onDevice, onCPU := generate(true), generate(false)
	for b := range params {
		if !slices.Equal(onDevice[b], onCPU[b]) {
			t.Errorf("sequence %d (%+v): drawn in the device run %v, by Week 1's sampler on the CPU %v", b, params[b], onDevice[b], onCPU[b])
		}
	}
}
