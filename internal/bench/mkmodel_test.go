package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/safetensors"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// tiny is a Qwen2 shape small enough to write in a test; its vocabulary
// holds the 274 tokens of testdata/tokenizer/tiny.
var tiny = Shape{"tiny", 320, 16, 40, 2, 4, 2, 128, 1e4, 1e-6, true}

// testdataTokenizer returns testdata/tokenizer/<name>.
func testdataTokenizer(t *testing.T, name string) string {
	root, err := fixture.Dir()
	require.NoError(t, err)
	return filepath.Join(root, "tokenizer", name)
}

// tokenizerDir writes a model folder with the tiny test tokenizer and a
// config.json naming its bos and eos ids.
func tokenizerDir(t *testing.T) string {
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(testdataTokenizer(t, "tiny"), "tokenizer.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), raw, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"bos_token_id": 61, "eos_token_id": 62}`), 0o644))
	return dir
}

// listDir returns the names in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteRandomModelOpensAsCheckpoint(t *testing.T) {
	for _, shard := range []int64{1 << 30, 4000} { // one file; several shards with an index
		t.Run("", func(t *testing.T) {
			defer func(old int64) { MaxShardBytes = old }(MaxShardBytes)
			MaxShardBytes = shard
			dir := filepath.Join(t.TempDir(), "m")
			var last int64
			require.NoError(t, WriteRandomModel(context.Background(), dir, tiny, RandomModelOptions{Seed: 1, TokenizerFrom: tokenizerDir(t),
				Progress: func(done, total int64) { last = done; require.LessOrEqual(t, done, total) }}))
			require.Equal(t, 2*tiny.Params(), last)
			ck, err := checkpoint.Open(dir)
			require.NoError(t, err)
			defer ck.Close()
			require.Equal(t, tiny.HiddenSize, ck.Config.HiddenSize)
			require.Equal(t, "bfloat16", ck.Config.TorchDType)
			gen, err := ck.ReadGenerationConfig()
			require.NoError(t, err)
			require.EqualValues(t, []int{62, 61}, gen.EOSTokenIDs)
			w, err := ck.Tensor("model.layers.1.mlp.down_proj.weight", tiny.HiddenSize, tiny.IntermediateSize)
			require.NoError(t, err)
			require.Equal(t, tensor.BFloat16, w.DType())
			var sum2 float64
			for _, v := range w.Data() {
				require.Less(t, float64(v*v), 0.0013) // |v| <= 0.02·√3
				sum2 += float64(v * v)
			}
			std := sum2 / float64(w.Size())
			require.InDelta(t, 0.0004, std, 0.0001) // variance 0.02²
			norm, err := ck.Tensor("model.norm.weight")
			require.NoError(t, err)
			require.Equal(t, float32(1), norm.At(3))
			_, err = os.Stat(filepath.Join(dir, "tokenizer.json"))
			require.NoError(t, err)
			if shard < 1<<30 {
				_, err = os.Stat(filepath.Join(dir, "model.safetensors.index.json"))
				require.NoError(t, err)
			}
			for _, name := range listDir(t, dir) {
				require.True(t, IsModelFile(name), "%s left in the model folder", name)
			}
		})
	}
}

func TestWriteRandomModelIsDeterministic(t *testing.T) {
	tok := tokenizerDir(t)
	read := func(seed uint64) []float32 {
		dir := filepath.Join(t.TempDir(), "m")
		require.NoError(t, WriteRandomModel(context.Background(), dir, tiny, RandomModelOptions{Seed: seed, TokenizerFrom: tok}))
		f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
		require.NoError(t, err)
		defer f.Close()
		w, err := f.Tensor("model.embed_tokens.weight")
		require.NoError(t, err)
		return w.Data()
	}
	require.Equal(t, read(3), read(3))
	require.NotEqual(t, read(3), read(4))
}

// TestWriteRandomModelTokenizerFolders: every folder the tokenizer loader
// reads is accepted, and the copy loads the same; anything else is refused
// with ErrTokenizer before anything is written.
func TestWriteRandomModelTokenizerFolders(t *testing.T) {
	tinyJSON, err := os.ReadFile(filepath.Join(testdataTokenizer(t, "tiny"), "tokenizer.json"))
	require.NoError(t, err)
	folder := func(files map[string]string) func(t *testing.T) string {
		return func(t *testing.T) string {
			dir := t.TempDir()
			for name, data := range files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
			}
			return dir
		}
	}
	qwen := tiny
	qwen.VocabSize = 151680 // the real Qwen2 tokenizer, 151,669 ids
	tests := []struct {
		name  string
		src   func(t *testing.T) string
		shape Shape
		want  string // "" for success
	}{
		{"tokenizer.json", folder(map[string]string{"tokenizer.json": string(tinyJSON)}), tiny, ""},
		{"tokenizer.json.gz and tokenizer_config.json", func(t *testing.T) string { return testdataTokenizer(t, "qwen2") }, qwen, ""},
		{"no tokenizer", folder(map[string]string{"config.json": "{}"}), tiny, "has no tokenizer.json (nor tokenizer.json.gz)"},
		{"not a Qwen2 tokenizer", folder(map[string]string{"tokenizer.json": `{"model": {"type": "Unigram"}}`}), tiny, "holds no tokenizer that tinyllm loads: tokenizer: "},
		{"tokenizer_config.json the loader refuses", folder(map[string]string{"tokenizer.json": string(tinyJSON), "tokenizer_config.json": `{"eos_token": "<nope>"}`}), tiny, `eos_token "<nope>" is not a token`},
		{"more tokens than the vocabulary", folder(map[string]string{"tokenizer.json": string(tinyJSON)}), Shapes["qwen2-0.5b"].withVocab(64), "more than the 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src(t)
			dir := filepath.Join(t.TempDir(), "m")
			err := WriteRandomModel(context.Background(), dir, tc.shape, RandomModelOptions{TokenizerFrom: src})
			if tc.want != "" {
				require.ErrorIs(t, err, ErrTokenizer)
				require.ErrorContains(t, err, tc.want)
				require.NoDirExists(t, dir)
				return
			}
			require.NoError(t, err)
			want, err := tokenizer.LoadDir(src)
			require.NoError(t, err)
			got, err := tokenizer.LoadDir(dir)
			require.NoError(t, err)
			require.Equal(t, want.VocabSize(), got.VocabSize())
			text := "Hello, world <|im_end|> 123"
			wantIDs, err := want.Encode(text)
			require.NoError(t, err)
			gotIDs, err := got.Encode(text)
			require.NoError(t, err)
			require.Equal(t, wantIDs, gotIDs)
			raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
			require.NoError(t, err)
			require.Equal(t, byte('{'), bytes.TrimSpace(raw)[0], "tokenizer.json must be plain JSON, for transformers")
		})
	}
}

func (s Shape) withVocab(n int) Shape { s.VocabSize = n; return s }

// TestWriteRandomModelKeepsWhatIsThere: without Overwrite, any model file
// in the folder refuses the write and nothing changes.
func TestWriteRandomModelKeepsWhatIsThere(t *testing.T) {
	tok := tokenizerDir(t)
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json", "model-00002-of-00003.safetensors", "model.safetensors.index.json", "generation_config.json"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("the user's"), 0o644))
			before := listDir(t, dir)
			err := WriteRandomModel(context.Background(), dir, tiny, RandomModelOptions{TokenizerFrom: tok})
			require.ErrorIs(t, err, ErrModelExists)
			require.ErrorContains(t, err, name)
			require.Equal(t, before, listDir(t, dir))
			raw, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err)
			require.Equal(t, "the user's", string(raw))
		})
	}
	t.Run("other files are no model", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("notes"), 0o644))
		require.NoError(t, WriteRandomModel(context.Background(), dir, tiny, RandomModelOptions{TokenizerFrom: tok}))
		raw, err := os.ReadFile(filepath.Join(dir, "README.md"))
		require.NoError(t, err)
		require.Equal(t, "notes", string(raw))
	})
}

// TestWriteRandomModelOverwriteReplacesTheModel: an earlier model of
// another sharding leaves no index or shard behind; the user's other files
// stay.
func TestWriteRandomModelOverwriteReplacesTheModel(t *testing.T) {
	defer func(old int64) { MaxShardBytes = old }(MaxShardBytes)
	tok := tokenizerDir(t)
	bigger := tiny
	bigger.HiddenSize, bigger.Name = 32, "bigger"
	tests := []struct {
		name               string
		oldShard, newShard int64
	}{
		{"sharded, then one file", 4000, 1 << 30},
		{"one file, then sharded", 1 << 30, 4000},
		{"more shards, then fewer", 2000, 8000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			MaxShardBytes = tc.oldShard
			require.NoError(t, WriteRandomModel(context.Background(), dir, bigger, RandomModelOptions{TokenizerFrom: tok}))
			extra := map[string]string{"notes.txt": "mine", "model.safetensors.bak": "a backup", "train.py": "code"}
			for name, data := range extra {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
			}
			MaxShardBytes = tc.newShard
			require.NoError(t, WriteRandomModel(context.Background(), dir, tiny, RandomModelOptions{TokenizerFrom: tok, Overwrite: true}))

			fresh := filepath.Join(t.TempDir(), "fresh")
			require.NoError(t, WriteRandomModel(context.Background(), fresh, tiny, RandomModelOptions{TokenizerFrom: tok}))
			want := listDir(t, fresh)
			for name := range extra {
				want = append(want, name)
			}
			slices.Sort(want)
			require.Equal(t, want, listDir(t, dir))
			for name, data := range extra {
				raw, err := os.ReadFile(filepath.Join(dir, name))
				require.NoError(t, err)
				require.Equal(t, data, string(raw))
			}
			ck, err := checkpoint.Open(dir)
			require.NoError(t, err)
			defer ck.Close()
			_, err = ck.Tensor("model.layers.0.mlp.down_proj.weight", tiny.HiddenSize, tiny.IntermediateSize)
			require.NoError(t, err)
		})
	}
}

// TestWriteRandomModelInterrupted cancels the write half-way: at no moment
// does the folder hold files that count as a model, afterwards nothing of
// the new model is left, and a model that Overwrite would have replaced is
// intact.
func TestWriteRandomModelInterrupted(t *testing.T) {
	defer func(old int64) { MaxShardBytes = old }(MaxShardBytes)
	MaxShardBytes = 4000
	tok := tokenizerDir(t)
	for _, overwrite := range []bool{false, true} {
		t.Run("", func(t *testing.T) {
			dir := t.TempDir()
			var before []string
			if overwrite {
				require.NoError(t, WriteRandomModel(context.Background(), dir, tiny.withVocab(300), RandomModelOptions{TokenizerFrom: tok}))
				before = listDir(t, dir)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			progress := func(done, total int64) {
				var model []string
				for _, name := range listDir(t, dir) {
					if IsModelFile(name) {
						model = append(model, name)
					}
				}
				require.Equal(t, before, model, "model files changed before the new model was complete")
				if done > total/2 {
					cancel()
				}
			}
			err := WriteRandomModel(ctx, dir, tiny, RandomModelOptions{TokenizerFrom: tok, Overwrite: overwrite, Progress: progress})
			require.ErrorIs(t, err, context.Canceled)
			require.Equal(t, before, listDir(t, dir))
			if overwrite {
				ck, err := checkpoint.Open(dir)
				require.NoError(t, err)
				require.Equal(t, 300, ck.Config.VocabSize)
				ck.Close()
			}
		})
	}
}

// TestWriteRandomModelRemovesStalePartials: the folder a killed run left
// is removed once nothing has touched it for an hour, and only if it holds
// nothing but model files.
func TestWriteRandomModelRemovesStalePartials(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * staleAfter)
	partial := func(name string, files []string, at time.Time) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.Mkdir(p, 0o700))
		for _, f := range files {
			require.NoError(t, os.WriteFile(filepath.Join(p, f), []byte("half"), 0o644))
			require.NoError(t, os.Chtimes(filepath.Join(p, f), at, at))
		}
		require.NoError(t, os.Chtimes(p, at, at))
		return p
	}
	killed := partial(partialPrefix+"1", []string{"config.json", "tokenizer.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors.tmp123"}, old)
	running := partial(partialPrefix+"2", []string{"tokenizer.json", "model.safetensors.tmp7"}, time.Now())
	foreign := partial(partialPrefix+"3", []string{"config.json", "thesis.tex"}, old)
	var notes []string
	require.NoError(t, WriteRandomModel(context.Background(), dir, tiny, RandomModelOptions{TokenizerFrom: tokenizerDir(t), Note: func(s string) { notes = append(notes, s) }}))
	require.NoDirExists(t, killed)
	require.DirExists(t, running)
	require.DirExists(t, foreign)
	all := strings.Join(notes, "\n")
	for _, p := range []string{killed, running, foreign} {
		require.Contains(t, all, p)
	}
	_, err := checkpoint.Open(dir)
	require.NoError(t, err)
}

func TestIsModelFile(t *testing.T) {
	for name, want := range map[string]bool{
		"config.json": true, "generation_config.json": true, "model.safetensors": true,
		"model-00001-of-00004.safetensors": true, "model.safetensors.index.json": true,
		"tokenizer.json": true, "tokenizer.json.gz": true, "tokenizer_config.json": true,
		"special_tokens_map.json": true, "vocab.json": true, "merges.txt": true,
		"README.md": false, "notes.txt": false, "model.safetensors.bak": false, "train.py": false, ".git": false,
	} {
		if IsModelFile(name) != want {
			t.Errorf("IsModelFile(%q) = %v, want %v", name, !want, want)
		}
	}
	if errors.Is(ErrTokenizer, ErrModelExists) {
		t.Error("the two sentinel errors match each other")
	}
}
