package models_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	"github.com/tinyllm-go/tinyllm/models"
	"github.com/tinyllm-go/tinyllm/models/heldout"
	"github.com/tinyllm-go/tinyllm/solutions/week2/day1"
	w2day3 "github.com/tinyllm-go/tinyllm/solutions/week2/day3"
)

const (
	// heldoutPerSkill questions per skill: 98% then allows 2 wrong answers
	// out of 100, so one unlucky question does not decide. The 700 questions
	// take about 230 CPU seconds with the Week 1 engine (no KV cache), about
	// two minutes on two cores. TINYLLM_HELDOUT_N=300 asks more (the bar stays
	// 98%).
	heldoutPerSkill   = 100
	heldoutMinPercent = 98 // at least 98% correct per skill
	heldoutMaxTokens  = 64 // max_new_tokens of refgen/chatmodel/evaluate.py
)

// TestShippedModelHeldOutSkills asks the reference Week 1 engine fresh
// questions in every skill of the shipped model and checks the answers by
// program, as refgen/chatmodel/SKILLS.md defines them: at least 98% must be
// right in each skill.
//
// The questions come from package heldout (the templates and data of
// refgen/chatmodel/skills.json, the distributions of corpus.py) with seed
// heldout.Seed, so they are not the Python held-out questions of the model
// card (seed 777) nor the training corpus (seed 1234). As in evaluate.py each
// question is one user turn with no system message (the chat template adds
// the default one), the reply is generated greedily until an eos id of
// generation_config.json or 64 tokens, and special tokens are dropped from it.
func TestShippedModelHeldOutSkills(t *testing.T) {
	testHeldOutSkills(t, models.Dir, week2Model, heldoutMinPercent)
}

// TestShipped4BitModelHeldOutSkills asks the 4-bit sibling the same
// questions, with the same bar: quantizing to 4 bits in groups of 64 must
// not cost the shipped model its skills. The Week 2 engine loads the
// quantized folder through the checkpoint, which dequantizes each weight
// once at load time.
func TestShipped4BitModelHeldOutSkills(t *testing.T) {
	testHeldOutSkills(t, open4Bit, week2Model, heldoutMinPercent)
}

// TestShipped4BitModelHeldOutSkillsInt8 asks the 4-bit sibling the same
// questions through the engine's fast path, the W2D3 model computing on
// the packed weights with 8-bit activations (tensor.MatmulQ4Each), to the
// same bar: rounding the activations must not cost the skills either. On
// a machine without those kernels the model computes in float and the
// test is reported as not run.
func TestShipped4BitModelHeldOutSkillsInt8(t *testing.T) {
	if !tensor.HasInt8Kernels() {
		t.Skip("not run: this machine has no 8-bit-activation kernels (amd64 with AVX2 has them)")
	}
	tensor.AllowInt8Activations(true)
	t.Cleanup(func() { tensor.AllowInt8Activations(false) })
	testHeldOutSkills(t, open4Bit, func(ck *checkpoint.Checkpoint) (llm.CachedModel, error) {
		return w2day3.NewQwen2ModelWeek2(ck)
	}, heldoutMinPercent)
}

func open4Bit() (string, error) {
	dir, _, err := models.Open4Bit()
	return dir, err
}

// week2Model is W2D1's reference model, which dequantizes a packed
// checkpoint once at load time.
func week2Model(ck *checkpoint.Checkpoint) (llm.CachedModel, error) {
	return day1.NewQwen2ModelWeek2(ck)
}

// testHeldOutSkills runs the held-out questions on the model that open
// returns, built by newModel, and fails a skill below minPercent.
func testHeldOutSkills(t *testing.T, open func() (string, error), newModel func(*checkpoint.Checkpoint) (llm.CachedModel, error), minPercent int) {
	if testing.Short() {
		t.Skip("-short: the held-out test runs the Week 1 engine for about 230 CPU seconds")
	}
	perSkill := heldoutPerSkill
	if s := os.Getenv("TINYLLM_HELDOUT_N"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("TINYLLM_HELDOUT_N=%q: want a positive number of questions per skill", s)
		}
		perSkill = n
	}
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	skills, err := heldout.Load(filepath.Join(root, "refgen", "chatmodel", "skills.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := open()
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	// The Week 2 engine (KV cache) gives the Week 1 engine's greedy answers,
	// which both trees check against Hugging Face, several times faster.
	model, err := newModel(ck)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := ck.ReadGenerationConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(gen.EOSTokenIDs) == 0 {
		t.Fatal("generation_config.json gives no eos_token_id")
	}
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Generate keeps special tokens other than the eos ids in the reply
	// as their text; the checkers get the reply without them, like
	// decode(skip_special_tokens=True) in evaluate.py.
	var specials []string
	for id := range tok.VocabSize() {
		if s, ok := tok.Token(id); ok && tok.IsSpecial(id) {
			specials = append(specials, s, "")
		}
	}
	dropSpecials := strings.NewReplacer(specials...)

	// The model is read-only after loading (each generation has its own
	// caches), so it can run on several goroutines at once; one question per worker keeps both cores
	// busy, where a single sequence of a few dozen tokens leaves the tensor
	// worker pool half idle. (Answers are the same for any number of workers.)
	items := skills.Questions(heldout.Seed, perSkill)
	answers := make([]string, len(items))
	errs := make([]error, len(items))
	workers := runtime.GOMAXPROCS(0)
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				msgs := []tokenizer.Message{{Role: "user", Content: items[i].Question}}
				answers[i], errs[i] = day1.Generate(model, tok, msgs, greedy{},
					day1.Options{MaxTokens: heldoutMaxTokens, EOS: gen.EOSTokenIDs})
				answers[i] = strings.TrimSpace(dropSpecials.Replace(answers[i]))
			}
		})
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	t.Logf("%d questions (%d per skill, seed %d), greedy with the Week 2 engine: %.1f s on %d goroutines",
		len(items), perSkill, heldout.Seed, time.Since(start).Seconds(), workers)

	correct := map[string]int{}
	wrong := map[string][]string{}
	for i, it := range items {
		if errs[i] != nil {
			t.Fatalf("%s %q: %v", it.ID, it.Question, errs[i])
		}
		if heldout.Check(it, answers[i]) {
			correct[it.Skill]++
		} else {
			wrong[it.Skill] = append(wrong[it.Skill],
				fmt.Sprintf("%s: %q -> %q (trained answer %q)", it.ID, it.Question, answers[i], it.Reference))
		}
	}
	var report strings.Builder
	for _, s := range heldout.SkillNames {
		t.Logf("%-9s %4d/%d  %5.1f%%", s, correct[s], perSkill, 100*float64(correct[s])/float64(perSkill))
		for _, w := range wrong[s] {
			t.Logf("    wrong %s", w)
		}
		// In integers, so that 98 of 100 is exactly on the bar.
		if 100*correct[s] < minPercent*perSkill {
			fmt.Fprintf(&report, "\n%s: %d/%d correct, below %d%%; wrong answers:", s, correct[s], perSkill, minPercent)
			for _, w := range wrong[s] {
				report.WriteString("\n    " + w)
			}
		}
	}
	if report.Len() > 0 {
		t.Fatalf("%s is below the bar on held-out questions (retrain it, see refgen/chatmodel/README.md; requantize the 4-bit sibling with tinyllm quantize):%s", filepath.Base(dir), report.String())
	}
}

// greedy picks the most likely token (the reference Greedy of Week 1 Day 6).
type greedy struct{}

func (greedy) Sample(logprobs *tensor.Tensor) int { return tensor.ArgMax(logprobs, -1)[0] }
