package main

import (
	"bufio"
	"bytes"
	"errors"
	"github.com/tinyllm-go/tinyllm/kernels"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
)

// shippedConfig is a file of the shipped model's folder, from this
// package's folder.
var shippedConfig = filepath.Join("..", "..", "models", "tinyqwen-chat", "config.json")

func TestCommandLineErrors(t *testing.T) {
	// The GPU backend this platform does not have, and the one it has.
	other, own := kernels.Metal, kernels.PlatformBackend()
	if own == kernels.Metal {
		other = kernels.CUDA
	}
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 2, "usage: tinyllm"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"progress", "--week", "9"}, 2, "--week must be between 1 and 3, or 0 for every week; got 9"},
		{[]string{"progress", "--week", "-1"}, 2, "--week must be between 1 and 3, or 0 for every week; got -1"},
		{[]string{"progress", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"progress", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"help"}, 0, "progress"},
		{[]string{"generate", "--prompt", "hi", "--temperature", "NaN"}, 2, "--temperature must be between 0 and 100, got NaN"},
		{[]string{"generate", "--prompt", "hi", "--temperature", "+Inf"}, 2, "--temperature must be between 0 and 100, got +Inf"},
		{[]string{"chat", "--top-p", "NaN"}, 2, "--top-p must be in (0, 1], got NaN"},
		{[]string{"chat", "--top-p", "-Inf"}, 2, "--top-p must be in (0, 1], got -Inf"},
		{[]string{"tokenize", "--chat", "--plain", "x"}, 2, "give one of --chat and --plain"},
		{[]string{"tokenize"}, 2, "give the text to tokenize"},
		{[]string{"bench", "--threads", "100000"}, 2, "--threads must be between 0 (all cores) and"},
		{[]string{"bench", "--prompt-len", "600"}, 2, "past the model's context of 512"},
		{[]string{"bench", "--prompt-len", "500", "--gen-len", "50"}, 2, "550 tokens, past the model's context of 512"},
		{[]string{"generate", "--prompt", "hi", "--device", "gpu"}, 2, `--device must be auto, cpu, cuda or metal, got "gpu"`},
		{[]string{"bench", "--device", "tpu"}, 2, `--device must be auto, cpu, cuda or metal, got "tpu"`},
		{[]string{"chat", "--device", other}, 2, "--device " + other + " is not available on this platform"},
		{[]string{"generate", "--prompt", "hi", "--max-context", "-1"}, 2, "--max-context must be 0 (the default) or positive"},
		// A file of the model folder, or no folder at all, is named as the
		// flag's mistake, whichever command takes it.
		{[]string{"generate", "--prompt", "hi", "--model", shippedConfig}, 2,
			"--model " + shippedConfig + " is a file, not a model folder: give the folder that holds config.json, the weights and tokenizer.json (here, --model " + filepath.Dir(shippedConfig) + ")"},
		{[]string{"chat", "--model", "main.go"}, 2, "--model main.go is a file, not a model folder"},
		{[]string{"tokenize", "--model", shippedConfig, "hi"}, 2, "--model " + shippedConfig + " is a file"},
		{[]string{"bench", "--model", shippedConfig}, 2, "--model " + shippedConfig + " is a file"},
		{[]string{"bench", "--throughput", "--model", shippedConfig}, 2, "--model " + shippedConfig + " is a file"},
		{[]string{"generate", "--prompt", "hi", "--model", "no-such-folder"}, 2, "--model no-such-folder: no such folder"},
		{[]string{"generate", "--prompt", "hi", "--draft", shippedConfig}, 2, "--draft " + shippedConfig + " is a file, not a model folder"},
	}
	if own != "" {
		tests = append(tests, struct {
			args   []string
			code   int
			stderr string
		}{[]string{"generate", "--prompt", "hi", "--device", own, "--week", "1"}, 2, "--week 1 runs on the CPU only"})
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

// TestEveryCommandAnswersHelp: --help prints the flags and exits 0 for every
// subcommand alike.
func TestEveryCommandAnswersHelp(t *testing.T) {
	for name := range commands {
		var stdout, stderr bytes.Buffer
		if code := run([]string{name, "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "-") {
			t.Errorf("tinyllm %s --help: exit %d, stderr %q; want exit 0 and the flags", name, code, stderr.String())
		}
	}
}

// TestCommandsRunOutsideTheRepository: every command finds the shipped model
// from any working directory.
func TestCommandsRunOutsideTheRepository(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{
		{"bench", "--prompt-len", "8", "--gen-len", "2", "--repeats", "1", "--warmup", "0"},
		{"tokenize", "hello"},
		{"generate", "--prompt", "What is 2 + 3?", "--max-tokens", "8"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Errorf("tinyllm %v outside the repository: exit %d: %s", args, code, stderr.String())
		}
	}
}

func TestLearnerBuildErrorNamesTheDay(t *testing.T) {
	out := "# github.com/tinyllm-go/tinyllm/week1/day3\n" +
		"week1/day3/attention.go:7:2: \"os\" imported and not used\n" +
		"week1/day3/attention.go:9:1: syntax error\n"
	err := learnerBuildError([]byte(out))
	want := `your week1/day3 does not build: week1/day3/attention.go:7:2: "os" imported and not used`
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("learnerBuildError = %v, want one line starting %q", err, want)
	}
}

func TestWantsLearner(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"--impl", "learner"}, true},
		{[]string{"--impl=learner", "--prompt", "x"}, true},
		{[]string{"-impl", "learner"}, true},
		{[]string{"--impl", "ref"}, false},
		{[]string{"--prompt", "--impl learner"}, false},
		{[]string{"--", "--impl", "learner"}, false},
	} {
		if got := wantsLearner(tc.args); got != tc.want {
			t.Errorf("wantsLearner(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", 5000)
	in := bufio.NewReaderSize(strings.NewReader("short\r\n"+long+"\nafter\nlast"), 16)
	var got []string
	for {
		line, err := readLine(in, 1000)
		if errors.Is(err, errLineTooLong) {
			got = append(got, "<too long>")
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		got = append(got, line)
	}
	want := []string{"short", "<too long>", "after", "last"}
	if !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}

// TestChatSurvivesAHugeLine: a message over the limit is refused and the
// session goes on.
func TestChatSurvivesAHugeLine(t *testing.T) {
	stdin = strings.NewReader(strings.Repeat("a", maxChatLine+10) + "\nWhat is 25 + 17?\n")
	defer func() { stdin = os.Stdin }()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"chat", "--max-tokens", "20"}, &stdout, &stderr); code != 0 {
		t.Fatalf("chat exited %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "was not sent") || !strings.Contains(stdout.String(), "42") {
		t.Errorf("stdout %q\nstderr %q", stdout.String(), stderr.String())
	}
}

// TestReplyCutIsReported: a reply that stops at the token budget says so.
func TestReplyCutIsReported(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"generate", "--prompt", "Sort these numbers: 9 2 7 5 1 8", "--max-tokens", "2"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "[reply cut at --max-tokens 2]") {
		t.Errorf("stderr does not say the reply was cut:\n%s", stderr.String())
	}
}

func TestCheckMemoryRefusesBeforeAllocating(t *testing.T) {
	old := availableMemory
	defer func() { availableMemory = old }()
	availableMemory = func() (uint64, bool) { return 8 << 30, true }
	// Qwen2-0.5B's shape.
	c := checkpoint.Config{HiddenSize: 896, IntermediateSize: 4864, NumAttentionHeads: 14, NumKeyValueHeads: 2, VocabSize: 151936}
	if err := checkMemory("learner", 1, c, 16384); err == nil || !strings.Contains(err.Error(), "GB") {
		t.Errorf("learner, 16k tokens in 8 GiB: err = %v, want a refusal that says how much memory", err)
	}
	if err := checkMemory("ref", 1, c, 16384); err != nil {
		t.Errorf("ref, 16k tokens in 8 GiB: %v", err)
	}
	if err := checkMemory("learner", 1, c, 512); err != nil {
		t.Errorf("learner, 512 tokens in 8 GiB: %v", err)
	}
	// The Week 1 engine builds the whole 32k x 32k mask (8.6 GB); Week 2
	// feeds the prompt in pieces and needs its 0.8 GB cache and a
	// piece's worth of the rest.
	c.NumHiddenLayers = 24
	if err := checkMemory("ref", 1, c, 32768); err == nil {
		t.Errorf("ref Week 1, 32k tokens in 8 GiB: no refusal")
	}
	if err := checkMemory("ref", 2, c, 32768); err != nil {
		t.Errorf("ref Week 2, 32k tokens in 8 GiB: %v", err)
	}
}

// TestWeek2EngineAgreesWithWeek1: the cached engine gives the greedy reply
// the Week 1 engine gives, and bench runs it.
func TestWeek2EngineAgreesWithWeek1(t *testing.T) {
	reply := func(week string) string {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"generate", "--week", week, "--prompt", "Sort these numbers: 9 2 7 5", "--max-tokens", "30"}, &stdout, &stderr); code != 0 {
			t.Fatalf("--week %s: exit %d: %s", week, code, stderr.String())
		}
		return stdout.String()
	}
	if w1, w2 := reply("1"), reply("2"); w1 != w2 || w1 == "" {
		t.Errorf("week 1 replied %q, week 2 %q", w1, w2)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "--week", "2", "--prompt-len", "16", "--gen-len", "4", "--repeats", "1", "--warmup", "0"}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "KV cache: each step feeds one token") {
		t.Errorf("bench --week 2: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
}
