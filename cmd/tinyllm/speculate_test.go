package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// draftDir is the shipped draft, from this package's folder.
var draftDir = filepath.Join("..", "..", "models", "tinyqwen-draft")

// TestSpeculativeGenerateAgreesWithPlain checks that --draft changes the
// speed, never the reply, and that it reports how the draft did.
func TestSpeculativeGenerateAgreesWithPlain(t *testing.T) {
	reply := func(extra ...string) (string, string) {
		var stdout, stderr bytes.Buffer
		args := append([]string{"generate", "--week", "2", "--device", "cpu", "--prompt", "Reverse the list: cat, dog, fish, bird, horse", "--max-tokens", "40"}, extra...)
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Fatalf("tinyllm %v: exit %d: %s", args, code, stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	plain, _ := reply()
	for _, k := range []string{"1", "3", "6"} {
		got, log := reply("--draft", draftDir, "--speculate", k)
		if got != plain || plain == "" {
			t.Errorf("--speculate %s replied %q, plain decoding %q", k, got, plain)
		}
		if !strings.Contains(log, "proposals accepted") {
			t.Errorf("--speculate %s: stderr does not report the acceptance:\n%s", k, log)
		}
	}
}

func TestSpeculativeFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"generate", "--prompt", "hi", "--speculate", "3"}, "--speculate needs --draft DIR"},
		{[]string{"generate", "--prompt", "hi", "--draft", draftDir, "--speculate", "0"}, "--speculate must be between 1 and 16, got 0"},
		{[]string{"generate", "--prompt", "hi", "--draft", draftDir, "--temperature", "0.7"}, "--draft decodes greedily"},
		{[]string{"chat", "--draft", draftDir, "--week", "1"}, "--week 1 has none"},
		{[]string{"generate", "--prompt", "hi", "--draft", draftDir, "--device", "cuda"}, "--draft runs on the CPU"},
		{[]string{"bench", "--draft", draftDir, "--impl", "learner"}, "--draft times the reference engine"},
		{[]string{"bench", "--speculate", "2"}, "--speculate needs --draft DIR"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("tinyllm %v: exit %d, stderr %q; want exit 2 and %q", tc.args, code, stderr.String(), tc.stderr)
		}
	}
	// A folder whose config claims another vocabulary is refused when it
	// is loaded, with one line (the checkpoint's own check or --draft's).
	other := editedDraft(t, "vocab_size", 4096)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"generate", "--prompt", "hi", "--draft", other}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "4096") || strings.Contains(stderr.String(), "goroutine ") {
		t.Errorf("a draft of 4096 ids: exit %d, stderr %q", code, stderr.String())
	}
}

// editedDraft copies the shipped draft into a temporary folder with one
// field of its config.json set to value.
func editedDraft(t *testing.T, field string, value any) string {
	t.Helper()
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(draftDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg[field] = value
	raw, _ = json.Marshal(cfg)
	for _, name := range []string{"generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		data, err := os.ReadFile(filepath.Join(draftDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDraftOfShorterContext: a draft whose context (64 positions) is
// shorter than the model's (512) speeds up the replies that fit it, and
// the others are decoded without it, to the same reply, where the draft
// used to run past its RoPE table and panic.
func TestDraftOfShorterContext(t *testing.T) {
	draft64 := editedDraft(t, "max_position_embeddings", 64)
	run1 := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		if strings.Contains(stderr.String(), "goroutine ") {
			t.Fatalf("tinyllm %v printed a stack trace:\n%s", args, stderr.String())
		}
		return code, stdout.String(), stderr.String()
	}
	for _, tc := range []struct {
		prompt, maxTokens string
		speculated        bool
	}{
		{"What is 614 + 289?", "20", true}, // 29 + 20 positions
		{"Write a long story about a dragon who learns to count, with many details.", "60", false},
		{"Write a long story about a dragon who learns to count, with many details.", "200", false},
	} {
		args := []string{"generate", "--week", "2", "--device", "cpu", "--prompt", tc.prompt, "--max-tokens", tc.maxTokens}
		code, plain, log := run1(args...)
		if code != 0 {
			t.Fatalf("tinyllm %v: exit %d: %s", args, code, log)
		}
		code, got, log := run1(append(args, "--draft", draft64)...)
		if code != 0 || got != plain {
			t.Errorf("%q, --max-tokens %s with the draft: exit %d, reply %q; want exit 0 and the plain reply %q\n%s", tc.prompt, tc.maxTokens, code, got, plain, log)
		}
		if !strings.Contains(log, "note: the draft's context is 64 positions, the model's 512") {
			t.Errorf("%q: the load does not note the draft's shorter context:\n%s", tc.prompt, log)
		}
		if fellBack := strings.Contains(log, "do not fit the draft's context of 64: decoding without the draft"); fellBack == tc.speculated || strings.Contains(log, "proposals accepted") != tc.speculated {
			t.Errorf("%q, --max-tokens %s: speculated %v, want %v:\n%s", tc.prompt, tc.maxTokens, !fellBack, tc.speculated, log)
		}
	}

	// In a chat the first turn fits the draft, the second no longer does:
	// it is answered without the draft, with the conversation kept.
	stdin = strings.NewReader("What is 25 + 17?\nAnd what is your name?\n")
	defer func() { stdin = os.Stdin }()
	code, out, log := run1("chat", "--max-tokens", "20", "--draft", draft64)
	if code != 0 || strings.Contains(log, "error:") {
		t.Fatalf("chat with the draft: exit %d\n%s", code, log)
	}
	if !strings.Contains(out, "42") || !strings.Contains(out, "TinyQwen") {
		t.Errorf("chat with the draft did not answer both turns:\n%s", out)
	}
	if strings.Count(log, "proposals accepted") != 1 || strings.Count(log, "decoding without the draft") != 1 {
		t.Errorf("chat: want the first turn speculated and the second decoded without the draft:\n%s", log)
	}

	// The bench fits its replies to the draft's context, or says what
	// --gen-len would.
	code, _, log = run1("bench", "--draft", draft64, "--gen-len", "60")
	if code != 2 || !strings.Contains(log, "--gen-len 60: the longest bench conversation (44 tokens) and its reply need 104 positions, past the draft's context of 64; give --gen-len 20 or less") {
		t.Errorf("bench --draft of 64 positions, --gen-len 60: exit %d\n%s", code, log)
	}
	code, out, log = run1("bench", "--draft", draft64, "--repeats", "1")
	if code != 0 || !strings.Contains(log, "replies of at most 20 tokens") || !strings.Contains(out, "identical with and without the draft") {
		t.Errorf("bench --draft of 64 positions: exit %d\n%s\n%s", code, out, log)
	}
}

// TestSpeculativeBench runs the benchmark once: same tokens both ways (it
// fails otherwise), and a report with the acceptance and the speed-up.
func TestSpeculativeBench(t *testing.T) {
	var stdout, stderr bytes.Buffer
	out := filepath.Join(t.TempDir(), "spec.json")
	if code := run([]string{"bench", "--draft", draftDir, "--speculate", "3", "--repeats", "1", "--json", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("bench --draft: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"identical with and without the draft", "speed-up", "acceptance"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("bench --draft output lacks %q:\n%s", want, stdout.String())
		}
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	s := rep.Speculative
	if s == nil || s.K != 3 || s.Tokens == 0 || s.SpeedUp <= 0 || s.Acceptance <= 0 || s.Acceptance > 1 || s.VerifyCost <= 0 {
		t.Errorf("bench --draft --json wrote %+v", s)
	}
}
