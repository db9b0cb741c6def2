package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// TestMkmodelThenGenerate follows the README: a random model of a real
// shape's vocabulary (Qwen2's 151936 ids) beside the shipped tokenizer of
// 3072 tokens answers generate and chat, drawing only ids the tokenizer
// has, where it used to stop at the first id past them with an error from
// the decoder. A draft of the same kind speculates for it.
func TestMkmodelThenGenerate(t *testing.T) {
	t.Setenv(models.CacheEnv, t.TempDir())
	shape := testShape(t, 151936)
	dirs := make([]string, 2)
	for i := range dirs {
		dirs[i] = filepath.Join(t.TempDir(), "m")
		if err := runMkmodel([]string{"--shape", shape, "--out", dirs[i], "--seed", fmt.Sprint(i)}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
	}
	model, draft := dirs[0], dirs[1]
	for _, args := range [][]string{
		{"--week", "1"},
		{"--week", "2"},
		{"--week", "2", "--temperature", "1", "--seed", "7"},
		{"--week", "1", "--temperature", "0.8", "--top-p", "0.9", "--top-k", "50"},
		{"--draft", draft, "--speculate", "3"},
	} {
		args = append([]string{"generate", "--device", "cpu", "--model", model, "--prompt", "hi", "--max-tokens", "12"}, args...)
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Errorf("tinyllm %v: exit %d:\n%s", args, code, stderr.String())
			continue
		}
		if !strings.Contains(stderr.String(), "note: the model's vocabulary has 151936 ids, its tokenizer's only 3072") {
			t.Errorf("tinyllm %v: no note on the vocabularies:\n%s", args, stderr.String())
		}
		if !strings.Contains(stderr.String(), "[reply cut at") {
			t.Errorf("tinyllm %v: the random model's reply is not 12 tokens long:\n%s", args, stderr.String())
		}
	}
}

// TestServeMkmodelModel serves a random model whose vocabulary has far more
// ids than the shipped tokenizer it carries, on both engines, greedily and
// sampled: each reply is drawn from the tokenizer's ids, so it decodes and
// runs to max_tokens, where an id past the tokenizer would end the request
// in a server error.
func TestServeMkmodelModel(t *testing.T) {
	t.Setenv(models.CacheEnv, t.TempDir())
	dir := filepath.Join(t.TempDir(), "m")
	if err := runMkmodel([]string{"--shape", testShape(t, 151936), "--out", dir}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, engine := range []string{"week3", "week2"} {
		_, hs := startServer(t, serverOptions{modelDir: dir, engine: engine, queue: 4})
		for _, temperature := range []string{"0", "1"} {
			body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"temperature":` + temperature + `,"seed":3}`
			resp, err := http.Post(hs.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			var r struct {
				Choices []struct {
					FinishReason string `json:"finish_reason"`
				}
				Usage struct {
					CompletionTokens int `json:"completion_tokens"`
				}
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err := json.Unmarshal(raw, &r); err != nil || resp.StatusCode != 200 || len(r.Choices) != 1 ||
				r.Choices[0].FinishReason != "length" || r.Usage.CompletionTokens != 8 {
				t.Errorf("--engine %s, temperature %s: status %d, %s; want 200 and a reply of 8 tokens cut by max_tokens",
					engine, temperature, resp.StatusCode, raw)
			}
		}
	}
}

// TestReplyErrorNamesTheMismatch: an id the tokenizer cannot decode, deep
// in a generation loop's wrapped errors, becomes one line about the model
// and its tokenizer; other errors pass unchanged.
func TestReplyErrorNamesTheMismatch(t *testing.T) {
	tok, err := tokenizer.LoadDir(filepath.Join("..", "..", "models", "tinyqwen-chat"))
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{flags: &engineFlags{modelDir: "/tmp/q05"}, tok: tok}
	_, decodeErr := tok.NewStreamDecoder().Add(39819)
	const mismatch = "the model chose token id 39819, which the tokenizer of /tmp/q05 (3072 tokens) has no token for: the model and its tokenizer do not belong together"
	other := errors.New("reading the weights: unexpected EOF")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("day1.Generate: decoding: %w", decodeErr), mismatch},
		{fmt.Errorf("day7.Generate: decoding: %w", decodeErr), mismatch},
		{other, other.Error()},
	} {
		if got := e.replyError(tc.err).Error(); got != tc.want {
			t.Errorf("replyError(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
