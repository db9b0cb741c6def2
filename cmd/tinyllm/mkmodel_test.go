package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/bench"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	"github.com/tinyllm-go/tinyllm/models"
)

// testShape adds a Qwen2 shape small enough for a test to the shapes
// mkmodel knows, with a vocabulary of vocab tokens.
func testShape(t *testing.T, vocab int) string {
	const name = "test-tiny"
	bench.Shapes[name] = bench.Shape{Name: name, VocabSize: vocab, HiddenSize: 16, IntermediateSize: 40, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 64, RopeTheta: 1e4, RMSNormEps: 1e-6, TieWordEmbeddings: true}
	t.Cleanup(func() { delete(bench.Shapes, name) })
	return name
}

func testdataDir(t *testing.T, parts ...string) string {
	dir, err := filepath.Abs(filepath.Join(append([]string{"..", "..", "testdata"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestMkmodelTakesTheShippedTokenizerFromAnywhere: with no --tokenizer-from,
// the tokenizer is the shipped model's, whatever the working folder, and
// what unpacking it noted reaches stderr.
func TestMkmodelTakesTheShippedTokenizerFromAnywhere(t *testing.T) {
	cache := t.TempDir()
	t.Setenv(models.CacheEnv, cache)
	// A partial unpack that a killed run left two hours ago.
	leftover := filepath.Join(cache, models.Name+"-0123456789abcdef.partial-1")
	if err := os.Mkdir(leftover, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(leftover, old, old); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	out := filepath.Join(t.TempDir(), "m")
	var stdout, stderr bytes.Buffer
	if err := runMkmodel([]string{"--shape", testShape(t, 3072), "--out", out}, &stdout, &stderr); err != nil {
		t.Fatalf("mkmodel: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "note: removed "+leftover) {
		t.Errorf("stderr does not note the leftover removed:\n%s", stderr.String())
	}
	shipped, _, err := models.Open()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json"} {
		want, _ := os.ReadFile(filepath.Join(shipped, name))
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not the shipped model's (%v)", name, err)
		}
	}
}

func TestMkmodelTokenizerFrom(t *testing.T) {
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "tokenizer.json"), []byte(`{"model": {"type": "WordPiece"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		from  string
		vocab int
		want  string // a usage error containing it; "" for success
	}{
		{"tokenizer.json", testdataDir(t, "tokenizer", "tiny"), 320, ""},
		{"tokenizer.json.gz and tokenizer_config.json", testdataDir(t, "tokenizer", "qwen2"), 151680, ""},
		{"no tokenizer", t.TempDir(), 320, "has no tokenizer.json (nor tokenizer.json.gz)"},
		{"a tokenizer the engine cannot load", bad, 320, "holds no tokenizer that tinyllm loads"},
		{"more tokens than the shape", testdataDir(t, "tokenizer", "tiny"), 100, "more than the 100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m")
			var stderr bytes.Buffer
			err := runMkmodel([]string{"--shape", testShape(t, tc.vocab), "--out", out, "--tokenizer-from", tc.from}, &bytes.Buffer{}, &stderr)
			if tc.want != "" {
				if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--tokenizer-from") || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want a usage error about --tokenizer-from containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("mkmodel: %v\n%s", err, stderr.String())
			}
			if _, err := tokenizer.LoadDir(out); err != nil {
				t.Errorf("the written tokenizer does not load: %v", err)
			}
		})
	}
}

// TestMkmodelForce: without --force a folder with model files is refused
// untouched; with it, the earlier model goes entirely (here its shards and
// index) and the user's other files stay.
func TestMkmodelForce(t *testing.T) {
	defer func(old int64) { bench.MaxShardBytes = old }(bench.MaxShardBytes)
	shape := testShape(t, 320)
	out := t.TempDir()
	run := func(args ...string) error {
		args = append([]string{"--shape", shape, "--out", out, "--tokenizer-from", testdataDir(t, "tokenizer", "tiny")}, args...)
		return runMkmodel(args, &bytes.Buffer{}, &bytes.Buffer{})
	}
	bench.MaxShardBytes = 4000
	if err := run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	bench.MaxShardBytes = 1 << 30
	index := filepath.Join(out, "model.safetensors.index.json")
	if err := run(); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("without --force: got %v, want a refusal naming --force", err)
	}
	if _, err := os.Stat(index); err != nil {
		t.Fatalf("the refused run changed the folder: %v", err)
	}
	if err := run("--force"); err != nil {
		t.Fatal(err)
	}
	shards, _ := filepath.Glob(filepath.Join(out, "model-*.safetensors"))
	if _, err := os.Stat(index); err == nil || len(shards) > 0 {
		t.Errorf("the earlier model's index or shards %v are still there", shards)
	}
	if raw, err := os.ReadFile(filepath.Join(out, "notes.txt")); err != nil || string(raw) != "mine" {
		t.Errorf("notes.txt: %q, %v; want it kept", raw, err)
	}
	ck, err := checkpoint.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	ck.Close()
}
