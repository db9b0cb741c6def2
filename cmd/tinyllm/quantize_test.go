package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/models"
)

// quantizeShipped runs `tinyllm quantize` on the shipped model into a new
// folder and returns it.
func quantizeShipped(t *testing.T, args ...string) string {
	t.Helper()
	in, err := models.Dir()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "q")
	var stdout, stderr bytes.Buffer
	if code := run(append(append([]string{"quantize"}, args...), in, out), &stdout, &stderr); code != 0 {
		t.Fatalf("quantize exited %d:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "100% (") || !strings.Contains(stdout.String(), "wrote "+out) {
		t.Errorf("no progress on stderr or no summary on stdout:\n%s\n%s", stderr.String(), stdout.String())
	}
	return out
}

// TestQuantizeReproducesTheShipped4BitModel: the 4-bit sibling in models/
// is exactly what `tinyllm quantize --bits 4 --group-size 64` writes for the
// shipped model today, file for file.
func TestQuantizeReproducesTheShipped4BitModel(t *testing.T) {
	out := quantizeShipped(t, "--bits", "4", "--group-size", "64")
	shipped := filepath.Join("..", "..", "models", models.Name4Bit)
	want, err := os.ReadDir(shipped)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadDir(out)
	var names []string
	for _, e := range got {
		names = append(names, e.Name())
	}
	for _, e := range want {
		if e.Name() == "README.md" {
			continue
		}
		a, _ := os.ReadFile(filepath.Join(shipped, e.Name()))
		b, err := os.ReadFile(filepath.Join(out, e.Name()))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from models/%s/%s (%v); rewrite it with tinyllm quantize", e.Name(), models.Name4Bit, e.Name(), err)
		}
	}
	if len(names) != len(want)-1 {
		t.Errorf("quantize wrote %v; models/%s holds %d files besides its README", names, models.Name4Bit, len(want)-1)
	}
}

// TestChatOnQuantizedModel: chat runs on a folder `tinyllm quantize` wrote
// (here the shipped model in 8 bits, groups of 32) and still answers.
func TestChatOnQuantizedModel(t *testing.T) {
	out := quantizeShipped(t, "--bits", "8", "--group-size", "32")
	stdin = strings.NewReader("What is 25 + 17?\n/exit\n")
	defer func() { stdin = os.Stdin }()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"chat", "--model", out, "--max-tokens", "40"}, &stdout, &stderr); code != 0 {
		t.Fatalf("chat exited %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "42") {
		t.Errorf("chat on the 8-bit model did not answer 25 + 17 = 42:\n%s", stdout.String())
	}
}

// TestQuantizeRefusals: each mistake gets one clear line and the right exit
// status, and a refused run leaves the folders as they were.
func TestQuantizeRefusals(t *testing.T) {
	in, err := models.Dir()
	if err != nil {
		t.Fatal(err)
	}
	quantized := quantizeShipped(t)
	occupied := t.TempDir()
	if err := os.WriteFile(filepath.Join(occupied, "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	f32 := filepath.Join("..", "..", "testdata", "quantize", "checkpoints", "f32_untied_says_f16")
	fresh := func() string { return filepath.Join(t.TempDir(), "out") }
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--bits", "3", in, fresh()}, 2, "--bits must be 4 or 8, got 3"},
		{[]string{"--group-size", "48", in, fresh()}, 2, "--group-size must be 32, 64 or 128, got 48"},
		{[]string{in}, 2, "give two folders"},
		{[]string{in, fresh(), "extra"}, 2, "give two folders"},
		{[]string{in, occupied}, 1, "already holds model files (config.json); pass --force"},
		{[]string{quantized, fresh()}, 1, `is quantized already (its config.json has a "quantization" block)`},
		{[]string{"--group-size", "128", f32, fresh()}, 1, "a group size of 128 does not divide the inputs of lm_head.weight (64)"},
		{[]string{"--force", in, in}, 1, "the output folder is the input folder"},
		{[]string{t.TempDir(), fresh()}, 1, "has no config.json"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"quantize"}, tc.args...), &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("tinyllm quantize %v: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
		if strings.Contains(stderr.String(), "goroutine ") {
			t.Errorf("tinyllm quantize %v printed a stack trace:\n%s", tc.args, stderr.String())
		}
	}
	if raw, _ := os.ReadFile(filepath.Join(occupied, "config.json")); string(raw) != "{}" {
		t.Errorf("the refused run changed %s/config.json", occupied)
	}
}

// TestQuantizeForce: --force replaces the model in OUT, all of it, and
// keeps the user's other files.
func TestQuantizeForce(t *testing.T) {
	in, err := models.Dir()
	if err != nil {
		t.Fatal(err)
	}
	out := quantizeShipped(t, "--bits", "8", "--group-size", "128")
	if err := os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run([]string{"quantize", in, out, "--force"}, &bytes.Buffer{}, &stderr); code != 0 {
		t.Fatalf("quantize --force exited %d: %s", code, stderr.String())
	}
	raw, _ := os.ReadFile(filepath.Join(out, "config.json"))
	if !strings.Contains(string(raw), `"bits": 4`) {
		t.Errorf("config.json is not the new 4-bit model's:\n%s", raw)
	}
	if raw, err := os.ReadFile(filepath.Join(out, "notes.txt")); err != nil || string(raw) != "mine" {
		t.Errorf("notes.txt: %q, %v; want it kept", raw, err)
	}
}
