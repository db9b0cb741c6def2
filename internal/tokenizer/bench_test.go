package tokenizer

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
)

// oneMB is about 1 MB of mixed text: the encode fixtures (prose, code,
// Chinese, Japanese, Korean, emoji, whitespace runs, special tokens...)
// in a seeded random order, repeated. withLong keeps the three deliberately
// long ones (a 1,800-letter word, a 2,880-byte run of Chinese, 300 digits):
// picked as often as the others, they are half of the bytes.
func oneMB(tb testing.TB, withLong bool) string {
	tb.Helper()
	cases, err := fixture.Load("tokenizer", "encode")
	if err != nil {
		tb.Fatal(err)
	}
	var texts []string
	for _, c := range cases {
		if strings.HasPrefix(c.Name, "long_") && !withLong {
			continue
		}
		if s, _ := c.Params["text"].(string); s != "" {
			texts = append(texts, s)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for sb.Len() < 1<<20 {
		sb.WriteString(texts[rng.IntN(len(texts))])
		sb.WriteString("\n")
	}
	return sb.String()
}

// BenchmarkEncode1MB encodes 1 MB of mixed text; the word cache is warm
// after the first iteration, as in a server.
func BenchmarkEncode1MB(b *testing.B) {
	tok := qwen2(b)
	text := oneMB(b, false)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := tok.Encode(text); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode1MBCold empties the word cache before every iteration.
func BenchmarkEncode1MBCold(b *testing.B) { benchCold(b, oneMB(b, false)) }

// BenchmarkEncode1MBLongWords includes the very long words (no cache helps:
// words over 64 bytes are not cached).
func BenchmarkEncode1MBLongWords(b *testing.B) { benchCold(b, oneMB(b, true)) }

func benchCold(b *testing.B, text string) {
	tok := qwen2(b)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		tok.cache.mu.Lock()
		tok.cache.m = nil
		tok.cache.mu.Unlock()
		if _, err := tok.Encode(text); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode1MB(b *testing.B) {
	tok := qwen2(b)
	text := oneMB(b, true)
	ids, err := tok.Encode(text)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := tok.Decode(ids); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad reads the gzipped 11 MB tokenizer.json and builds the tables.
func BenchmarkLoad(b *testing.B) {
	root, err := fixture.Dir()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := LoadDir(filepath.Join(root, "tokenizer", "qwen2")); err != nil {
			b.Fatal(err)
		}
	}
}
