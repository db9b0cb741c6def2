package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 2, "usage: tinyllm"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"progress", "--week", "9"}, 2, "--week must be between 1 and 3"},
		{[]string{"progress", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"progress", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"help"}, 0, "progress"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("tinyllm %v: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
		if strings.Contains(stderr.String(), "goroutine ") {
			t.Errorf("tinyllm %v printed a stack trace:\n%s", tc.args, stderr.String())
		}
	}
}

// TestChatOnShippedModel drives the interactive chat with the shipped model:
// two turns, a reset, and exit.
func TestChatOnShippedModel(t *testing.T) {
	stdin = strings.NewReader("What is 25 + 17?\nAnd what is your name?\n/reset\n/exit\n")
	defer func() { stdin = os.Stdin }()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"chat", "--max-tokens", "40"}, &stdout, &stderr); code != 0 {
		t.Fatalf("chat exited %d: %s", code, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "42") {
		t.Errorf("chat did not answer 25 + 17 = 42:\n%s", out)
	}
	if !strings.Contains(out, "TinyQwen") {
		t.Errorf("chat did not give its name on the second turn:\n%s", out)
	}
	for _, want := range []string{"tokens/s", "conversation forgotten"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestLearnerImplReportsUnfinishedDay runs the learner's stubs: one line
// naming the unfinished day, exit 1, no stack trace.
func TestLearnerImplReportsUnfinishedDay(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"generate", "--impl", "learner", "--prompt", "hi"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "not finished: TODO(W1D") || strings.Contains(stderr.String(), "goroutine ") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr.String())
	}
}

func TestBadModelFolder(t *testing.T) {
	var stdout, stderr bytes.Buffer
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/config.json", []byte(`{"model_type": "qwen2", "hidden_size": 7}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code := run([]string{"generate", "--model", dir, "--prompt", "hi"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "config.json") || strings.Contains(stderr.String(), "goroutine ") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr.String())
	}
}
