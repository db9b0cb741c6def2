// Package w3d1 holds the checks of Week 3 Day 1 (continuous batching),
// written once and run against both trees: four requests join a batch at
// different steps, prefill (one of them in two pieces next to the others'
// decode steps), decode together and leave, and every request must get the
// logits it gets alone, from Hugging Face transformers (the fixtures) and
// from the tree's own Week 2 model.
package w3d1

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

const day = "w3d1"

// AttentionLayer is what the day's Qwen2AttentionWeek3 offers.
type AttentionLayer interface {
	ForwardBatch(x *tensor.Tensor, seqs []llm.BatchSeq, layer int) *tensor.Tensor
}

// Constructor builds a model from an open checkpoint.
type Constructor[M any] func(ck *checkpoint.Checkpoint) (M, error)

// attentionTol is W2D1's attention tolerance: the reference is Hugging
// Face's float32 computation, RoPE tables included.
var attentionTol = grade.Tol{RTol: 1e-4, ATol: 1e-5}

// entry is one request's share of a step of the fixture's schedule.
type entry struct{ req, n int }

// schedule reads a case's steps: per step, [request, new tokens] pairs in
// the order the batch lists them.
func schedule(t *testing.T, c *fixture.Case) [][]entry {
	t.Helper()
	raw, ok := c.Params["steps"].([]any)
	if !ok {
		t.Fatalf("case %s has no steps", c.Name)
	}
	bad := func(v any) { t.Fatalf("case %s: step entry %v is not [request, tokens]", c.Name, v) }
	var steps [][]entry
	for _, s := range raw {
		list, _ := s.([]any)
		var step []entry
		for _, e := range list {
			pair, _ := e.([]any)
			if len(pair) != 2 {
				bad(e)
			}
			r, ok1 := pair[0].(float64)
			n, ok2 := pair[1].(float64)
			if !ok1 || !ok2 || r != math.Trunc(r) || n != math.Trunc(n) {
				bad(e)
			}
			step = append(step, entry{int(r), int(n)})
		}
		steps = append(steps, step)
	}
	return steps
}

// name is a request's letter in the reports: A, B, C, D.
func name(r int) string { return string(rune('A' + r)) }

// describe says what a step asks of every request in it, in batch order.
func describe(step []entry, pos []int, prompt []int) string {
	parts := make([]string, len(step))
	for i, e := range step {
		kind := "decode"
		if pos[e.req] < prompt[e.req] {
			kind = "prefill"
			if e.n < prompt[e.req] {
				kind = "prefill piece"
			}
		}
		parts[i] = fmt.Sprintf("row %d = %s: %s of %d token(s) at offset %d", i, name(e.req), kind, e.n, pos[e.req])
	}
	return strings.Join(parts, "; ")
}

// loadCheckpoint opens the case's model folder (model_dir, relative to the
// repository root) for the rest of the test.
func loadCheckpoint(t *testing.T, c *fixture.Case) *checkpoint.Checkpoint {
	t.Helper()
	dir, ok := c.Params["model_dir"].(string)
	if !ok {
		t.Fatalf("case %s has no model_dir", c.Name)
	}
	return openModel(t, dir)
}

// openModel opens dir, relative to the repository root, for the rest of
// the test.
func openModel(t *testing.T, dir string) *checkpoint.Checkpoint {
	t.Helper()
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(filepath.Join(root, filepath.FromSlash(dir)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}

func build[M any](t *testing.T, what string, ck *checkpoint.Checkpoint, newModel Constructor[M]) M {
	t.Helper()
	m, err := newModel(ck)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return m
}

// newCaches asks the model for one request's caches and checks them.
func newCaches(t *testing.T, what string, m llm.BatchModel, layers int) []llm.KVCache {
	t.Helper()
	caches := m.NewCaches()
	if len(caches) != layers {
		t.Fatalf("%s: NewCaches returned %d caches for a model of %d layers; want one per layer", what, len(caches), layers)
	}
	for i, c := range caches {
		if c == nil || c.Offset() != 0 {
			t.Fatalf("%s: NewCaches returned a nil or non-empty cache for layer %d", what, i)
		}
	}
	return caches
}

// checkCaches fails unless every request's caches hold exactly the
// positions it has been fed: requests outside the step included, whose
// caches the step must not touch.
func checkCaches(t *testing.T, what string, caches [][]llm.KVCache, pos []int, step []entry) {
	t.Helper()
	in := map[int]bool{}
	for _, e := range step {
		in[e.req] = true
	}
	for r, cs := range caches {
		for l, c := range cs {
			if got := c.Offset(); got != pos[r] {
				role := "was not in this step"
				if in[r] {
					role = "was in this step"
				}
				t.Fatalf("%s: afterwards request %s's cache of layer %d holds %d positions, want %d (it %s). "+
					"Each sequence's keys and values go into its own caches, seqs[i].Caches[layer], and nowhere else: "+
					"a count that is too high or too low means one request's keys were appended to another request's cache.",
					what, name(r), l, got, pos[r], role)
			}
		}
	}
}

// batchHint lists what a batching bug usually is, given which rows failed.
func batchHint(failed []string, step []entry, stepIndex int, rows string) string {
	var b strings.Builder
	if stepIndex == 0 && len(step) == 1 {
		b.WriteString("This is the first step, one request alone: the batch is the Week 2 model's forward pass on one sequence. " +
			"Check the day's W2D3 model (make check-w2d3), then that the last row of the sequence is the one returned.\n    ")
	}
	fmt.Fprintf(&b, "Failing here: %s. Likely causes:\n", strings.Join(failed, ", "))
	b.WriteString("      - rows mixed up: " + rows + ";\n")
	b.WriteString("      - a wrong offset: each sequence's queries and keys are rotated for its own positions seqs[i].Offset … Offset+L-1, never seqs[0]'s or 0;\n")
	b.WriteString("      - a mask across requests: attention runs per sequence, its L queries against its own cache, with CausalMask(L, Offset+L) when L > 1; " +
		"the queries of one request must never see another request's keys;\n")
	b.WriteString("      - caches crossed: seqs[i].Caches[layer] is layer's cache of sequence i; appending to another's makes its later steps wrong.")
	return b.String()
}

// logProbRow is row i of a len(seqs) x vocab logits tensor as 1 x vocab
// log-probabilities.
func logProbRow(logits *tensor.Tensor, i int) *tensor.Tensor {
	return grade.LogSoftmax(tensor.Take(logits, []int{i}, 0))
}

// Batch checks Task 2, Qwen2ModelWeek3.ForwardBatch, on every batch case:
// the fixture's schedule replayed step by step, one ForwardBatch call per
// step, each row against Hugging Face's log-probs of that request alone and
// against the tree's Week 2 model run on that request alone (week2).
func Batch[M llm.BatchModel](t *testing.T, newModel Constructor[M], week2 Constructor[llm.CachedModel]) {
	const task = "W3D1 Task 2 Qwen2ModelWeek3.ForwardBatch"
	grade.Cases(t, task, day, "batch", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		ck := loadCheckpoint(t, c)
		m := build(t, what, ck, newModel)
		requests := grade.MustInt(t, c, "requests")
		var tokens [][]int
		var want []*tensor.Tensor
		for r := range requests {
			tokens = append(tokens, grade.MustInts(t, c, fmt.Sprintf("tokens%d", r)))
			want = append(want, grade.MustTensor(t, c, fmt.Sprintf("logprobs%d", r)))
		}
		worst, worstAlone := replay(t, what, ck, m, schedule(t, c), promptLengths(t, c), tokens, want, week2)
		t.Logf("%s: max |Δ log-prob| against Hugging Face %.3g, against the Week 2 model alone %.3g", what, worst, worstAlone)
	})
}

// QuantizedBatch checks Task 2 on the 4-bit shipped model (dir): the
// schedule and tokens of the shipped batch case, every row against the
// tree's Week 2 model run on that request alone. There is no Hugging Face
// reference for an MLX 4-bit folder; W2D3 checks the model itself against
// mlx-lm.
func QuantizedBatch[M llm.BatchModel](t *testing.T, dir string, newModel Constructor[M], week2 Constructor[llm.CachedModel]) {
	const task = "W3D1 Task 2 Qwen2ModelWeek3.ForwardBatch, 4-bit"
	grade.PointToChapter(t, task)
	cases, err := fixture.Load(day, "batch")
	if err != nil {
		t.Fatalf("%s: %v", task, err)
	}
	i := slices.IndexFunc(cases, func(c *fixture.Case) bool { return c.Name == "shipped" })
	if i < 0 {
		t.Fatalf("%s: the fixtures of %s/batch have no case \"shipped\"", task, day)
	}
	c := cases[i]
	grade.Run(t, task, func() {
		what := task + ", " + dir + ", the schedule and tokens of case shipped"
		ck := openModel(t, dir)
		m := build(t, what, ck, newModel)
		var tokens [][]int
		for r := range grade.MustInt(t, c, "requests") {
			tokens = append(tokens, grade.MustInts(t, c, fmt.Sprintf("tokens%d", r)))
		}
		_, worst := replay(t, what, ck, m, schedule(t, c), promptLengths(t, c), tokens, nil, week2)
		t.Logf("%s: max |Δ log-prob| against the Week 2 model alone %.3g", what, worst)
	})
}

// replay runs the schedule through m, checking every row against want
// (when given: per request, one row of log-probs per call) and against
// the Week 2 model alone, and every cache's length after every step. It
// returns the largest differences found.
func replay(t *testing.T, what string, ck *checkpoint.Checkpoint, m llm.BatchModel, steps [][]entry, prompt []int, tokens [][]int, want []*tensor.Tensor,
	week2 Constructor[llm.CachedModel]) (worst, worstAlone float64) {
	t.Helper()
	layers := ck.Config.NumHiddenLayers
	vocab := ck.Config.VocabSize
	requests := len(tokens)
	caches := make([][]llm.KVCache, requests)
	for r := range caches {
		caches[r] = newCaches(t, what, m, layers)
	}
	pos := make([]int, requests)
	calls := make([]int, requests)
	var alone llm.CachedModel
	var aloneCaches [][]llm.KVCache
	for s, step := range steps {
		seqs := make([]llm.BatchSeq, len(step))
		for i, e := range step {
			if pos[e.req]+e.n > len(tokens[e.req]) {
				t.Fatalf("%s: the schedule feeds request %s past its %d tokens", what, name(e.req), len(tokens[e.req]))
			}
			seqs[i] = llm.BatchSeq{Tokens: tokens[e.req][pos[e.req] : pos[e.req]+e.n], Offset: pos[e.req], Caches: caches[e.req]}
		}
		at := fmt.Sprintf("%s, step %d of %d (%s)", what, s+1, len(steps), describe(step, pos, prompt))
		got := m.ForwardBatch(seqs)
		if got == nil || !slices.Equal(got.Shape(), []int{len(step), vocab}) {
			var shape []int
			if got != nil {
				shape = got.Shape()
			}
			t.Fatalf("%s: logits of shape %v, want %v (one row per sequence of the batch x vocab: the last new position of each)", at, shape, []int{len(step), vocab})
		}
		after := slices.Clone(pos)
		for _, e := range step {
			after[e.req] += e.n
		}
		// Cache lengths first: a cache that got another request's keys
		// says so more plainly than the log-probs it spoils.
		checkCaches(t, at, caches, after, step)
		// The Week 2 model is built only once the batched model has run,
		// so an untouched day reports its own stub first.
		if alone == nil {
			alone = build(t, what+" (the Week 2 model)", ck, week2)
			for range requests {
				aloneCaches = append(aloneCaches, alone.NewCaches())
			}
		}
		var failed, reports []string
		rows := make([]*tensor.Tensor, len(step))
		refs := make([]*tensor.Tensor, len(step)) // the Week 2 model's, per row
		for i, e := range step {
			row := logProbRow(got, i)
			rows[i] = row
			if want != nil {
				ref := tensor.Take(want[e.req], []int{calls[e.req]}, 0)
				if rep := grade.Compare(row, ref, grade.LogProbs); rep != "" {
					failed = append(failed, fmt.Sprintf("row %d (request %s) against Hugging Face", i, name(e.req)))
					reports = append(reports, rep)
				} else {
					worst = math.Max(worst, grade.MaxAbsDiff(row, ref))
				}
			}
			a := alone.ForwardLast([][]int{seqs[i].Tokens}, pos[e.req], aloneCaches[e.req])
			ref := grade.LogSoftmax(tensor.Reshape(a, 1, vocab))
			refs[i] = ref
			if rep := grade.Compare(row, ref, grade.LogProbs); rep != "" {
				failed = append(failed, fmt.Sprintf("row %d (request %s) against the Week 2 model alone", i, name(e.req)))
				reports = append(reports, rep)
			} else {
				worstAlone = math.Max(worstAlone, grade.MaxAbsDiff(row, ref))
			}
		}
		if len(failed) > 0 {
			t.Fatalf("%s: log-probs do not match those of the request alone\n  first mismatch, %s:\n%s\n    %s%s",
				at, failed[0], reports[0], swapped(rows, refs, step), batchHint(failed, step, s, "row i of the result must be seqs[i]'s last new token, in the order of seqs, not of the requests"))
		}
		for _, e := range step {
			calls[e.req]++
		}
		pos = after
	}
	for r := range tokens {
		if pos[r] != len(tokens[r]) {
			t.Fatalf("%s: the schedule fed request %s %d of its %d tokens", what, name(r), pos[r], len(tokens[r]))
		}
	}
	return worst, worstAlone
}

// swapped returns a sentence for each row that holds what another row of
// the step should (within the tolerance), or "".
func swapped(rows, refs []*tensor.Tensor, step []entry) string {
	var b strings.Builder
	for i, row := range rows {
		for j, ref := range refs {
			if i != j && grade.Compare(row, ref, grade.LogProbs) == "" {
				fmt.Fprintf(&b, "Row %d holds what request %s (row %d) should get: the rows are out of order.\n    ", i, name(step[j].req), j)
			}
		}
	}
	return b.String()
}

// promptLengths reads each request's prompt length from a case.
func promptLengths(t *testing.T, c *fixture.Case) []int {
	t.Helper()
	raw, ok := c.Params["prompt_lengths"].([]any)
	if !ok {
		t.Fatalf("case %s has no prompt_lengths", c.Name)
	}
	out := make([]int, len(raw))
	for i, r := range raw {
		f, ok := r.(float64)
		if !ok || f != math.Trunc(f) {
			t.Fatalf("case %s: prompt_lengths holds %v, not an integer", c.Name, r)
		}
		out[i] = int(f)
	}
	return out
}

// Attention checks Task 1, Qwen2AttentionWeek3.ForwardBatch, on layer 0
// of each random checkpoint: random hidden states per request, fed by the
// fixture's schedule, every output row against Hugging Face's
// Qwen2Attention run on that request alone.
func Attention[M llm.BatchModel](t *testing.T, newModel Constructor[M], layer0 func(M) AttentionLayer) {
	const task = "W3D1 Task 1 Qwen2AttentionWeek3.ForwardBatch"
	grade.Cases(t, task, day, "attention", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		ck := loadCheckpoint(t, c)
		m := build(t, what, ck, newModel)
		a := layer0(m)
		requests := grade.MustInt(t, c, "requests")
		var xs, want []*tensor.Tensor
		var lengths []int
		caches := make([][]llm.KVCache, requests)
		for r := range requests {
			xs = append(xs, grade.MustTensor(t, c, fmt.Sprintf("x%d", r)))
			want = append(want, grade.MustTensor(t, c, fmt.Sprintf("out%d", r)))
			lengths = append(lengths, xs[r].Dim(0))
			caches[r] = newCaches(t, what, m, ck.Config.NumHiddenLayers)[:1]
		}
		steps := schedule(t, c)
		pos := make([]int, requests)
		prompt := promptLengths(t, c)
		worst := 0.0
		for s, step := range steps {
			seqs := make([]llm.BatchSeq, len(step))
			var rows, wantRows []*tensor.Tensor
			for i, e := range step {
				seqs[i] = llm.BatchSeq{Tokens: make([]int, e.n), Offset: pos[e.req], Caches: caches[e.req]}
				rows = append(rows, tensor.Slice(xs[e.req], 0, pos[e.req], pos[e.req]+e.n))
				wantRows = append(wantRows, tensor.Slice(want[e.req], 0, pos[e.req], pos[e.req]+e.n))
			}
			x := tensor.Concat(0, rows...)
			at := fmt.Sprintf("%s, step %d of %d (%s; x is %v)", what, s+1, len(steps), describe(step, pos, prompt), x.Shape())
			snap := grade.TakeSnapshot(grade.In("x", x))
			got := a.ForwardBatch(x, seqs, 0)
			if changed := snap.Changed(); changed != "" {
				t.Fatalf("%s: ForwardBatch %s", at, changed)
			}
			if got == nil || !slices.Equal(got.Shape(), x.Shape()) {
				t.Fatalf("%s: output of shape %v, want %v (the batch's new tokens x hidden size)", at, shapeOf(got), x.Shape())
			}
			after := slices.Clone(pos)
			for _, e := range step {
				after[e.req] += e.n
			}
			checkCaches(t, at, caches, after, step)
			var failed []string
			report := ""
			start := 0
			for i, e := range step {
				g := tensor.Slice(got, 0, start, start+e.n)
				if rep := grade.Compare(g, wantRows[i], attentionTol); rep != "" {
					failed = append(failed, fmt.Sprintf("rows %d…%d (request %s)", start, start+e.n-1, name(e.req)))
					if report == "" {
						report = rep
					}
				} else {
					worst = math.Max(worst, grade.MaxAbsDiff(g, wantRows[i]))
				}
				start += e.n
			}
			if len(failed) > 0 {
				t.Fatalf("%s: output does not match Hugging Face's attention on each request alone\n  first mismatch, %s:\n%s\n    %s",
					at, failed[0], report, batchHint(failed, step, -1, "the output's rows are x's rows, seqs[0]'s tokens first, then seqs[1]'s, and so on"))
			}
			pos = after
		}
		for r, n := range lengths {
			if pos[r] != n {
				t.Fatalf("%s: the schedule fed request %s %d of its %d positions", what, name(r), pos[r], n)
			}
		}
		t.Logf("%s: max |Δ| = %.3g", what, worst)
	})
}

func shapeOf(x *tensor.Tensor) []int {
	if x == nil {
		return nil
	}
	return x.Shape()
}

// RefusesBadBatches checks that ForwardBatch refuses, with a message of
// its own, a batch that would compute something wrong: a cache shared by
// two sequences, an offset that is not its caches' length, a sequence
// without tokens, the wrong number of caches, an empty batch.
func RefusesBadBatches[M llm.BatchModel](t *testing.T, newModel Constructor[M]) {
	const task = "W3D1 Task 2 Qwen2ModelWeek3.ForwardBatch"
	ck := openModel(t, "testdata/"+day+"/checkpoints/tied")
	var m M
	if grade.Run(t, task, func() { m = build(t, task, ck, newModel) }) {
		return
	}
	if t.Failed() {
		return
	}
	layers := ck.Config.NumHiddenLayers
	fresh := func() []llm.KVCache { return m.NewCaches() }
	shared := fresh()
	behind := fresh()
	grade.Misuses(t, task,
		grade.Misuse{Name: "shared_cache", What: "ForwardBatch with one request's caches given to two sequences",
			Why: "every request has caches of its own; the model refuses a batch that would append one request's keys to another's (llm.CheckBatch)",
			Call: func() {
				m.ForwardBatch([]llm.BatchSeq{{Tokens: []int{1}, Caches: shared}, {Tokens: []int{2}, Caches: shared}})
			}, Own: true,
			Mentions: []string{"sequence 1"}},
		grade.Misuse{Name: "wrong_offset", What: "ForwardBatch with Offset 3 for empty caches",
			Why: "a sequence's Offset is the number of positions its caches hold (llm.CheckBatch)",
			Call: func() {
				m.ForwardBatch([]llm.BatchSeq{{Tokens: []int{1}, Caches: fresh()}, {Tokens: []int{1}, Offset: 3, Caches: behind}})
			}, Own: true,
			Mentions: []string{"sequence 1"}},
		grade.Misuse{Name: "no_tokens", What: "ForwardBatch with a sequence of no tokens",
			Why:  "every sequence of a step brings at least one token (llm.CheckBatch)",
			Call: func() { m.ForwardBatch([]llm.BatchSeq{{Tokens: []int{1}, Caches: fresh()}, {Caches: fresh()}}) }, Own: true,
			Mentions: []string{"sequence 1"}},
		grade.Misuse{Name: "missing_caches", What: fmt.Sprintf("ForwardBatch with %d caches for %d layers", layers-1, layers),
			Why:  "a sequence brings one cache per layer (llm.CheckBatch)",
			Call: func() { m.ForwardBatch([]llm.BatchSeq{{Tokens: []int{1}, Caches: fresh()[1:]}}) }, Own: true,
			Mentions: []string{"sequence 0"}},
		grade.Misuse{Name: "empty_batch", What: "ForwardBatch with no sequences",
			Why:  "a step runs at least one sequence (llm.CheckBatch)",
			Call: func() { m.ForwardBatch(nil) }, Own: true},
	)
}
