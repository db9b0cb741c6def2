package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shippedDir is the shipped model's folder, from this package's folder.
var shippedDir = filepath.Join("..", "..", "models", "tinyqwen-chat")

// corruptCopy copies the shipped model into a temporary folder with every
// value of the bf16 tensor name set to the bits given: 0x7fc0 is NaN,
// 0x7f80 +Inf.
func corruptCopy(t *testing.T, name string, bits uint16) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"} {
		data, err := os.ReadFile(filepath.Join(shippedDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "model.safetensors" {
			n := binary.LittleEndian.Uint64(data)
			var header map[string]json.RawMessage
			if err := json.Unmarshal(data[8:8+n], &header); err != nil {
				t.Fatal(err)
			}
			var info struct {
				DType   string   `json:"dtype"`
				Offsets [2]int64 `json:"data_offsets"`
			}
			if err := json.Unmarshal(header[name], &info); err != nil || info.DType != "BF16" {
				t.Fatalf("%s: %s (%v), want a bf16 tensor", name, header[name], err)
			}
			for i := 8 + int64(n) + info.Offsets[0]; i < 8+int64(n)+info.Offsets[1]; i += 2 {
				binary.LittleEndian.PutUint16(data[i:], bits)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCorruptWeightsStopGeneration: weights holding NaN or an infinity make
// the logits non-finite, and every CPU generation path (Week 1 and 2,
// greedy and sampled, with a draft) stops at the first token with one line
// that names the checkpoint, where it used to print an empty or garbage
// reply and exit 0.
func TestCorruptWeightsStopGeneration(t *testing.T) {
	nan := corruptCopy(t, "model.norm.weight", 0x7fc0)
	inf := corruptCopy(t, "model.layers.3.mlp.down_proj.weight", 0x7f80)
	for _, tc := range []struct {
		model string
		args  []string
		want  string
	}{
		{nan, []string{"--week", "1"}, "the model's logits for reply token 1 hold NaN: the checkpoint in " + nan + " probably has corrupt weights"},
		{nan, []string{"--week", "2"}, "the model's logits for reply token 1 hold NaN"},
		{nan, []string{"--week", "2", "--temperature", "0.7", "--seed", "3"}, "the model's logits for reply token 1 hold NaN"},
		{nan, []string{"--week", "1", "--temperature", "1", "--top-k", "5"}, "the model's logits for reply token 1 hold NaN"},
		{nan, []string{"--draft", draftDir}, "the model's logits hold NaN: the checkpoint in " + nan + " probably has corrupt weights"},
		{inf, []string{"--week", "2"}, "probably has corrupt weights (NaN or infinite values)"},
		{inf, []string{"--draft", draftDir}, "probably has corrupt weights (NaN or infinite values)"},
	} {
		args := append([]string{"generate", "--device", "cpu", "--model", tc.model, "--prompt", "What is 25 + 17?", "--max-tokens", "8"}, tc.args...)
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), tc.want) || strings.Contains(stderr.String(), "goroutine ") {
			t.Errorf("tinyllm %v: exit %d, stderr %q; want exit 1 and %q", tc.args, code, stderr.String(), tc.want)
		}
		if strings.TrimSpace(stdout.String()) != "" {
			t.Errorf("tinyllm %v printed a reply from non-finite logits: %q", tc.args, stdout.String())
		}
	}
	// A chat reports it for the turn and goes on.
	stdin = strings.NewReader("What is 25 + 17?\nHello!\n")
	defer func() { stdin = os.Stdin }()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"chat", "--device", "cpu", "--model", nan, "--max-tokens", "8"}, &stdout, &stderr); code != 0 ||
		strings.Count(stderr.String(), "error: the model's logits for reply token 1 hold NaN") != 2 {
		t.Errorf("chat on NaN weights: exit %d, stderr:\n%s", code, stderr.String())
	}
}
