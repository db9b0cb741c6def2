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
	other := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(draftDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["vocab_size"] = 4096
	raw, _ = json.Marshal(cfg)
	for _, name := range []string{"generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		data, err := os.ReadFile(filepath.Join(draftDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(other, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(other, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"generate", "--prompt", "hi", "--draft", other}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "4096") || strings.Contains(stderr.String(), "goroutine ") {
		t.Errorf("a draft of 4096 ids: exit %d, stderr %q", code, stderr.String())
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
