package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/bench"
)

func TestThroughputFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--throughput", "--device", "auto"}, "not auto"},
		{[]string{"--throughput", "--device", "tpu"}, "--device must be auto, cpu, cuda or metal"},
		{[]string{"--throughput", "--requests", "0"}, "--requests must be at least 1"},
		{[]string{"--throughput", "--min-len", "50", "--max-len", "10"}, "need 1 <= --min-len <= --max-len"},
		{[]string{"--throughput", "--max-num-seqs", "300", "--max-batched-tokens", "200"}, "need 1 <= --max-num-seqs <= --max-batched-tokens"},
		{[]string{"--throughput", "--page-size", "0"}, "--page-size must be positive"},
		{[]string{"--throughput", "--kv-gib", "0"}, "--kv-gib must be a positive number of GiB, at most 1048576, got 0"},
		{[]string{"--throughput", "--kv-gib", "-2"}, "--kv-gib must be a positive number of GiB, at most 1048576, got -2"},
		{[]string{"--throughput", "--kv-gib", "NaN"}, "--kv-gib must be a positive number of GiB, at most 1048576, got NaN"},
		{[]string{"--throughput", "--kv-gib", "+Inf"}, "--kv-gib must be a positive number of GiB, at most 1048576, got +Inf"},
		{[]string{"--throughput", "--kv-gib", "1e30"}, "--kv-gib must be a positive number of GiB, at most 1048576, got 1e+30"},
	} {
		var stderr bytes.Buffer
		err := runBenchT(tc.args, &stderr)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got error %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestThroughputOnTinyRandomModel runs the throughput benchmark on a tiny
// random Qwen2 with a pool small enough to preempt, and checks the table,
// the JSON report and the saved workload.
func TestThroughputOnTinyRandomModel(t *testing.T) {
	tok := filepath.Join("..", "..", "testdata", "tokenizer", "tiny")
	dir := filepath.Join(t.TempDir(), "tiny")
	shape := bench.Shape{Name: "tiny", VocabSize: 320, HiddenSize: 16, IntermediateSize: 40, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 64, RopeTheta: 1e4, RMSNormEps: 1e-6, TieWordEmbeddings: true}
	if err := bench.WriteRandomModel(context.Background(), dir, shape, bench.RandomModelOptions{TokenizerFrom: tok}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tp.json")
	work := filepath.Join(t.TempDir(), "w.json")
	var stdout, stderr bytes.Buffer
	// 12 requests of up to 20 + 20 positions in pages of 4: 10 pages each
	// at most; a pool of 24 pages (512 bytes each) holds two or three.
	err := runBench([]string{"--throughput", "--model", dir, "--requests", "12", "--min-len", "5", "--max-len", "20",
		"--page-size", "4", "--kv-gib", "1.15e-5", "--max-batched-tokens", "16", "--max-num-seqs", "8",
		"--json", out, "--save-workload", work}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench --throughput: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"output throughput", "total throughput", "TTFT", "inter-token latency", "peak KV pages", "0 in use at the end", "one request alone"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table has no %q:\n%s", want, stdout.String())
		}
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep throughputReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.OutputTokPerS <= 0 || rep.PeakPages <= 0 || rep.PeakPages > rep.Config.NumPages || rep.Preemptions == 0 || rep.SingleDecode <= 0 {
		t.Errorf("bad JSON report (want a positive rate, a peak within the pool, preemptions in a small pool): %s", raw)
	}
	var w struct {
		Prompts    [][]int `json:"prompts"`
		OutputLens []int   `json:"output_lens"`
	}
	raw, err = os.ReadFile(work)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	if len(w.Prompts) != 12 || len(w.OutputLens) != 12 {
		t.Fatalf("saved workload has %d prompts and %d output lengths, want 12", len(w.Prompts), len(w.OutputLens))
	}
	got := 0
	for i, p := range w.Prompts {
		got += len(p) + w.OutputLens[i]
		if len(p) < 5 || len(p) > 20 || w.OutputLens[i] < 5 || w.OutputLens[i] > 20 {
			t.Errorf("request %d: prompt %d and output %d tokens, outside [5, 20]", i, len(p), w.OutputLens[i])
		}
	}
	if got != rep.PromptTokens+rep.OutputTokens {
		t.Errorf("saved workload holds %d tokens, the report %d + %d", got, rep.PromptTokens, rep.OutputTokens)
	}
}
