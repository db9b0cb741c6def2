package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/bench"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
)

func TestBenchAndMkmodelFlagErrors(t *testing.T) {
	tests := []struct {
		run  func([]string, *bytes.Buffer) error
		args []string
		want string
	}{
		{runBenchT, []string{"--impl", "jax"}, "--impl must be ref or learner"},
		{runBenchT, []string{"--week", "3"}, "--week 3 is not available"},
		{runBenchT, []string{"--week", "0"}, "--week 0 is not available"},
		{runBenchT, []string{"--prompt-len", "0"}, "--prompt-len and --gen-len must be positive"},
		{runBenchT, []string{"--repeats", "0"}, "--repeats must be positive"},
		{runBenchT, []string{"--ahead", "-1"}, "--ahead must be 0"},
		{runBenchT, []string{"extra"}, `unexpected argument "extra"`},
		{runBenchT, []string{"--only", "matmul"}, "--only takes matmul, with --probes"},
		{runBenchT, []string{"--roofline", "r.svg"}, "--roofline places a model's passes on the machine's ceilings: it needs --week 2"},
		{runBenchT, []string{"--week", "2", "--probes", "--roofline", "r.svg"}, "and no --probes"},
		{runMkmodelT, []string{"--shape", "gpt-5", "--out", "x"}, `unknown --shape "gpt-5"`},
		{runMkmodelT, []string{"--shape", "qwen2-0.5b"}, "--out DIR is required"},
		{runMkmodelT, []string{"--out", "x", "--tokenizer-from", "/nonexistent"}, "has no tokenizer.json"},
	}
	for _, tc := range tests {
		var stderr bytes.Buffer
		err := tc.run(tc.args, &stderr)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got error %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestBenchChecksOutputFilesFirst: a results file that cannot be written is
// refused before anything is measured, and a run that fails later leaves
// the file system as it was: no empty new file, an old file unchanged.
func TestBenchChecksOutputFilesFirst(t *testing.T) {
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "no-such-folder", "out")
	old := filepath.Join(tmp, "old.json")
	if err := os.WriteFile(old, []byte("earlier results\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string // "" for a run that fails later, past the model's context
	}{
		{[]string{"--json", missing}, "--json " + missing + ": cannot write there (no such file or directory); nothing was run"},
		{[]string{"--week", "2", "--roofline", missing}, "--roofline " + missing + ": cannot write there"},
		{[]string{"--week", "2", "--roofline", tmp}, "--roofline " + tmp + " is a folder"},
		{[]string{"--draft", draftDir, "--json", missing}, "--json " + missing + ": cannot write there"},
		{[]string{"--throughput", "--json", missing}, "--json " + missing + ": cannot write there"},
		{[]string{"--throughput", "--save-workload", missing}, "--save-workload " + missing + ": cannot write there"},
		{[]string{"--json", filepath.Join(tmp, "new.json"), "--prompt-len", "600"}, ""},
		{[]string{"--json", old, "--prompt-len", "600"}, ""},
	} {
		var stdout, stderr bytes.Buffer
		err := runBench(tc.args, &stdout, &stderr)
		switch {
		case tc.want != "" && (!errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: got error %v, want a usage error containing %q", tc.args, err, tc.want)
		case tc.want != "" && stdout.Len()+stderr.Len() > 0:
			t.Errorf("%v: ran before refusing the file:\n%s%s", tc.args, stdout.String(), stderr.String())
		case tc.want == "" && (err == nil || !strings.Contains(err.Error(), "past the model's context")):
			t.Errorf("%v: got error %v, want the context refused", tc.args, err)
		}
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "old.json" {
		t.Errorf("the failed runs left %v in the folder, want only old.json", entries)
	}
	if raw, err := os.ReadFile(old); err != nil || string(raw) != "earlier results\n" {
		t.Errorf("old.json now holds %q (%v), want it unchanged", raw, err)
	}
}

func runBenchT(args []string, stderr *bytes.Buffer) error {
	return runBench(args, &bytes.Buffer{}, stderr)
}

func runMkmodelT(args []string, stderr *bytes.Buffer) error {
	return runMkmodel(args, &bytes.Buffer{}, stderr)
}

// TestBenchOnTinyRandomModel benchmarks a tiny random Qwen2 end to end and
// checks the table and the JSON.
func TestBenchOnTinyRandomModel(t *testing.T) {
	tok := filepath.Join("..", "..", "testdata", "tokenizer", "tiny")
	dir := filepath.Join(t.TempDir(), "tiny")
	shape := bench.Shape{Name: "tiny", VocabSize: 320, HiddenSize: 16, IntermediateSize: 40, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 64, RopeTheta: 1e4, RMSNormEps: 1e-6, TieWordEmbeddings: true}
	if err := bench.WriteRandomModel(context.Background(), dir, shape, bench.RandomModelOptions{TokenizerFrom: tok}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	err := runBench([]string{"--model", dir, "--prompt-len", "8", "--gen-len", "3", "--repeats", "2", "--warmup", "0", "--json", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"prefill", "time to 1st token", "decode", "peak RSS", "no KV cache"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table has no %q:\n%s", want, stdout.String())
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
	if rep.Result == nil || len(rep.Result.Runs) != 2 || rep.Result.PrefillTokPerS <= 0 || rep.CheckpointBytes <= 0 {
		t.Errorf("bad JSON report: %s", raw)
	}
}

// The CPU engines feed a quantized checkpoint's prompt in smaller pieces;
// --prefill-chunk, where given, wins.
func TestPrefillChunk(t *testing.T) {
	if got := prefillChunk(checkpoint.Config{}); got != defaultPrefillChunk {
		t.Errorf("float checkpoint: pieces of %d, want %d", got, defaultPrefillChunk)
	}
	if got := prefillChunk(checkpoint.Config{Quantization: &checkpoint.Quantization{Bits: 4, GroupSize: 64}}); got != quantizedPrefillChunk {
		t.Errorf("quantized checkpoint: pieces of %d, want %d", got, quantizedPrefillChunk)
	}
	for _, tc := range []struct {
		args []string
		want int
	}{{nil, -1}, {[]string{"--prefill-chunk", "64"}, 64}, {[]string{"--prefill-chunk", "0"}, 0}} {
		fs := flag.NewFlagSet("bench", flag.ContinueOnError)
		chunk := fs.Int("prefill-chunk", defaultPrefillChunk, "")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if got := pieceFlag(fs, *chunk); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.args, got, tc.want)
		}
	}
}
