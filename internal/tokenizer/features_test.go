package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
)

// testdata/tokenizer/tiny/tokenizer.json exercises what the Qwen2 file does
// not: merges in the legacy "a b" spelling, added tokens with lstrip, rstrip
// and normalized, overlapping added tokens, a non-ASCII added token.
func tinyPath(t *testing.T) string {
	t.Helper()
	root, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "tokenizer", "tiny", "tokenizer.json")
}

func TestTinyTokenizerMatchesHuggingFace(t *testing.T) {
	tok, err := Load(tinyPath(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range loadCases(t, "encode_tiny") {
		t.Run(c.Name, func(t *testing.T) {
			text, want := caseString(t, c, "text"), caseIDs(t, c)
			got, err := tok.Encode(text)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("Encode(%q): %s", text, diffIDs(tok, got, want))
			}
			dec, err := tok.Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			if d := caseString(t, c, "decoded"); dec != d {
				t.Errorf("Decode = %q, want %q", dec, d)
			}
			checkStream(t, tok, want)
		})
	}
}

// tinyJSON returns a small valid tokenizer.json as a generic value, for tests
// to break one field at a time.
func tinyJSON(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(tinyPath(t))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadErrors(t *testing.T) {
	model := func(m map[string]any) map[string]any { return m["model"].(map[string]any) }
	tests := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"normalizer NFKC", func(m map[string]any) { m["normalizer"] = map[string]any{"type": "NFKC"} },
			`normalizer "NFKC" is not supported`},
		{"normalizer sequence with lowercase", func(m map[string]any) {
			m["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{
				map[string]any{"type": "NFC"}, map[string]any{"type": "Lowercase"}}}
		}, `normalizer "Lowercase" is not supported`},
		{"pre_tokenizer ByteLevel only", func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}
		}, `pre_tokenizer "ByteLevel" is not supported`},
		{"other split regex", func(m map[string]any) {
			split := m["pre_tokenizer"].(map[string]any)["pretokenizers"].([]any)[0].(map[string]any)
			split["pattern"] = map[string]any{"Regex": `\s+|\w+`}
		}, "is not supported (only the Qwen2 pattern"},
		{"no pre_tokenizer", func(m map[string]any) { m["pre_tokenizer"] = nil }, "pre_tokenizer: none is not supported"},
		{"decoder", func(m map[string]any) { m["decoder"] = map[string]any{"type": "WordPiece"} }, `decoder "WordPiece" is not supported`},
		{"post_processor", func(m map[string]any) { m["post_processor"] = map[string]any{"type": "TemplateProcessing"} },
			`post_processor "TemplateProcessing" is not supported`},
		{"truncation", func(m map[string]any) { m["truncation"] = map[string]any{"max_length": 8} }, "truncation and padding"},
		{"WordPiece model", func(m map[string]any) { model(m)["type"] = "WordPiece" }, `model type "WordPiece" is not supported`},
		{"byte_fallback", func(m map[string]any) { model(m)["byte_fallback"] = true }, "byte_fallback is not supported"},
		{"dropout", func(m map[string]any) { model(m)["dropout"] = 0.1 }, "dropout is not supported"},
		{"subword prefix", func(m map[string]any) { model(m)["continuing_subword_prefix"] = "##" }, "continuing_subword_prefix"},
		{"merge of unknown token", func(m map[string]any) { model(m)["merges"] = []any{"h e", "x yz"} },
			`merge 1 ["x" "yz"]: token "yz" is not in the vocab`},
		{"merge result not in vocab", func(m map[string]any) { model(m)["merges"] = []any{[]any{"q", "q"}} },
			`token "qq" is not in the vocab`},
		{"merge of three tokens", func(m map[string]any) { model(m)["merges"] = []any{"h e", "a b c"} },
			`merge 1: "a b c" is not two tokens`},
		{"merge pair of one", func(m map[string]any) { model(m)["merges"] = []any{[]any{"h"}} }, "merge 0 has 1 tokens, want 2"},
		{"merge of wrong type", func(m map[string]any) { model(m)["merges"] = []any{7} }, "merge 0 is neither"},
		{"fractional id", func(m map[string]any) { model(m)["vocab"].(map[string]any)["h"] = 1.5 }, "want an integer token id"},
		{"negative id", func(m map[string]any) { model(m)["vocab"].(map[string]any)["h"] = -3 }, `"h" has id -3, out of range`},
		{"shared id", func(m map[string]any) { model(m)["vocab"].(map[string]any)["h"] = 0 }, "id 0 is used by both"},
		{"missing byte token", func(m map[string]any) { delete(model(m)["vocab"].(map[string]any), "Ġ") },
			`vocab lacks the byte-level token "Ġ" for byte 0x20`},
		{"single_word", func(m map[string]any) {
			m["added_tokens"].([]any)[0].(map[string]any)["single_word"] = true
		}, "single_word is not supported"},
		{"empty added token", func(m map[string]any) {
			m["added_tokens"].([]any)[0].(map[string]any)["content"] = ""
		}, "empty content"},
		{"no model", func(m map[string]any) { delete(m, "model") }, `no "model"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyJSON(t)
			tc.edit(m)
			path := writeJSON(t, m)
			_, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q\nshould contain %q and the path", err, tc.want)
			}
		})
	}
}

func TestLoadMalformedFiles(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile(tinyPath(t))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw[:len(raw)/2])
	zw.Close()
	files := map[string][]byte{
		"truncated.json": raw[:len(raw)/2],
		"array.json":     []byte(`[1, 2, 3]`),
		"empty.json":     nil,
		"half.json.gz":   gz.Bytes(),
		"badgzip.gz":     {0x1f, 0x8b, 0, 1, 2},
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); err == nil || !strings.HasPrefix(err.Error(), "tokenizer: ") || !strings.Contains(err.Error(), name) {
			t.Errorf("Load(%s) = %v; want an error naming the file", name, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Load(missing) = %v", err)
	}
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("LoadDir(dir without tokenizer.json) = %v", err)
	}
}

func TestLoadDirConfig(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile(tinyPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	writeCfg := func(cfg string) {
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// No config: no EOS, no template.
	tok, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tok.EOSTokenID(); ok || tok.HasChatTemplate() {
		t.Error("without tokenizer_config.json there should be no EOS and no template")
	}
	// A config adds a token missing from tokenizer.json, at the next id, and
	// names the EOS as an object.
	writeCfg(`{"added_tokens_decoder": {"269": {"content": "<|end|>", "special": true},
		"274": {"content": "<|new|>", "special": true, "lstrip": false, "rstrip": false, "normalized": false, "single_word": false}},
		"eos_token": {"content": "<|new|>"}, "chat_template": "{{ messages }}"}`)
	tok, err = LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := tok.TokenID("<|new|>"); !ok || id != 274 || !tok.IsSpecial(274) {
		t.Errorf("TokenID(<|new|>) = %d, %v; want special 274", id, ok)
	}
	if eos, ok := tok.EOSTokenID(); !ok || eos != 274 {
		t.Errorf("EOSTokenID = %d, %v; want 274", eos, ok)
	}
	if !tok.HasChatTemplate() {
		t.Error("HasChatTemplate = false")
	}
	if ids, _ := tok.Encode("a<|new|>"); !slices.Equal(ids, []int{'a', 274}) {
		t.Errorf("Encode(a<|new|>) = %v", ids)
	}
	for cfg, want := range map[string]string{
		`{"eos_token": "<|nope|>"}`:                                 `eos_token "<|nope|>" is not a token`,
		`{"added_tokens_decoder": {"270": {"content": "<|end|>"}}}`: `gives "<|end|>" id 270, but it is token 269`,
		`{"added_tokens_decoder": {"x": {"content": "a"}}}`:         `key "x" is not a token id`,
		`{"eos_token": 5}`:                                          "tokenizer_config.json",
		`not json`:                                                  "tokenizer_config.json",
	} {
		writeCfg(cfg)
		if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %s: error %v, want %q", cfg, err, want)
		}
	}
}

// Hugging Face ignores the ids written in added_tokens and numbers the tokens
// after the vocab in file order; so does Load.
func TestAddedTokenIDsFollowHuggingFace(t *testing.T) {
	m := tinyJSON(t)
	for i, a := range m["added_tokens"].([]any) {
		a.(map[string]any)["id"] = 1000 + 7*i
	}
	tok, err := Load(writeJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := tok.TokenID("<|end|>"); id != 269 {
		t.Errorf("TokenID(<|end|>) = %d, want 269", id)
	}
	if tok.VocabSize() != 274 {
		t.Errorf("VocabSize = %d, want 274", tok.VocabSize())
	}
}

func TestEncodeInvalidUTF8(t *testing.T) {
	tok := qwen2(t)
	for _, tc := range []struct {
		text   string
		offset string
	}{
		{"ab\xffcd", "byte offset 2"},
		{"\xe4\xbd", "byte offset 0"},           // a cut character
		{"héllo \xed\xa0\x80", "byte offset 7"}, // an encoded surrogate
		{"<|im_end|>\xc0\xaf", "byte offset 10"},
	} {
		_, err := tok.Encode(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.offset) || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("Encode(%q) error %v; want invalid UTF-8 at %s", tc.text, err, tc.offset)
		}
	}
}

func TestDecodeBadIDs(t *testing.T) {
	tok := qwen2(t)
	for _, ids := range [][]int{{-1}, {9707, tok.VocabSize()}, {1 << 40}} {
		if _, err := tok.Decode(ids); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("Decode(%v) error %v; want out of range", ids, err)
		}
		d := tok.NewStreamDecoder()
		var err error
		for _, id := range ids {
			if _, err = d.Add(id); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("StreamDecoder.Add(%v) error %v; want out of range", ids, err)
		}
		// A program names the id through the chain of wrapped errors.
		var idErr *IDError
		if !errors.As(err, &idErr) || idErr.ID != ids[len(ids)-1] || idErr.Size != tok.VocabSize() {
			t.Errorf("StreamDecoder.Add(%v) error %v: errors.As gives %+v, want the id and the size %d", ids, err, idErr, tok.VocabSize())
		}
	}
	// An id inside the range that no token has: a vocab with a hole.
	m := tinyJSON(t)
	vocab := m["model"].(map[string]any)["vocab"].(map[string]any)
	vocab["hello"] = 300 // was 259: 259 is now unassigned
	tiny, err := Load(writeJSON(t, m))
	if err != nil {
		t.Fatal(err)
	}
	_, err = tiny.Decode([]int{259})
	var idErr *IDError
	if err == nil || !strings.Contains(err.Error(), "not assigned") || !errors.As(err, &idErr) || idErr.ID != 259 {
		t.Errorf("Decode(hole) error %v; want not assigned, as an IDError for 259", err)
	}
}

func TestEmpty(t *testing.T) {
	tok := qwen2(t)
	ids, err := tok.Encode("")
	if err != nil || len(ids) != 0 {
		t.Errorf("Encode(\"\") = %v, %v", ids, err)
	}
	if s, err := tok.Decode(nil); s != "" || err != nil {
		t.Errorf("Decode(nil) = %q, %v", s, err)
	}
	if s := tok.NewStreamDecoder().Flush(); s != "" {
		t.Errorf("Flush of a new decoder = %q", s)
	}
	if s := tok.ApplyChatTemplate(nil, true); s != "<|im_start|>assistant\n" {
		t.Errorf("ApplyChatTemplate(nil, true) = %q", s)
	}
}

// decodeLossy follows "substitution of maximal subparts", checked here
// against the examples of the Unicode Standard (§3.9, Table 3-8 and 3-11).
func TestDecodeLossy(t *testing.T) {
	for in, want := range map[string]string{
		"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64": "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd",
		"\xC0\xAF\xE0\x80\xBF\xF0\x81\x82\x41":                 "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFDA",
		"\xED\xA0\x80\xED\xBF\xBF\xED\xAF\x41":                 "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFDA",
		"\xF4\x91\x92\x93\xFF\x41\x80\xBF\x42":                 "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFDA\uFFFD\uFFFDB",
		"\xE1\x80\xE2\xF0\x91\x92\xF1\xBF\x41":                 "\uFFFD\uFFFD\uFFFD\uFFFDA",
		"ok 你好 🦀":                                              "ok 你好 🦀",
	} {
		var sb strings.Builder
		if n := decodeLossy(&sb, []byte(in), true); n != len(in) || sb.String() != want {
			t.Errorf("decodeLossy(%q) = %q (%d bytes), want %q", in, sb.String(), n, want)
		}
	}
}

// mergeSmall (short words) and mergeHeap (long words) must agree.
func TestMergeAlgorithmsAgree(t *testing.T) {
	tok := qwen2(t)
	rng := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"a", "e", "in", "the", "er", "你", "好", "🦀", "1", "ing", "tion", "\xe4", "\xbd", " "}
	for trial := 0; trial < 300; trial++ {
		var sb strings.Builder
		n := 2 + rng.IntN(smallWord/3)
		for sb.Len() < n {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		w := sb.String()
		if len(w) > smallWord {
			w = w[:smallWord]
		}
		a := make([]int32, len(w))
		b := make([]int32, len(w))
		for i := 0; i < len(w); i++ {
			a[i], b[i] = tok.byteID[w[i]], tok.byteID[w[i]]
		}
		small, heap := tok.mergeSmall(a), tok.mergeHeap(b)
		if !slices.Equal(small, heap) {
			t.Fatalf("%q: mergeSmall %v, mergeHeap %v", w, small, heap)
		}
	}
}

// FuzzEncode: any valid UTF-8 encodes without panicking and decodes back to
// its NFC form; invalid UTF-8 is an error.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{
		"", "Hello, world!", "<|im_start|>user\nhi<|im_end|>", "  \t\r\n\n x", "I'M we'Ve 'ſ",
		"e\u0301 \u1100\u1161\u11a8", "👨‍👩‍👧‍👦 🏳️‍🌈", "你好，世界", "123456", "<|im_end|>\u0338",
		"\U000105c0\U00011935\U00011930", "\xff\xfe",
	} {
		f.Add(s)
	}
	tok := qwen2(f)
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := tok.Encode(s)
		if !utf8.ValidString(s) {
			if err == nil {
				t.Fatalf("Encode(%q) accepted invalid UTF-8", s)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		checkRoundTrip(t, tok, s)
		checkStream(t, tok, ids)
	})
}

// A Tokenizer is shared by concurrent requests (the word cache is the only
// mutable state). Run with -race.
func TestConcurrentEncode(t *testing.T) {
	tok := qwen2(t)
	cases := loadCases(t, "encode")
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			for i := range cases {
				c := cases[(i+g*7)%len(cases)]
				text := c.Params["text"].(string)
				a, _ := c.Array("ids")
				want, _ := a.Ints()
				got, err := tok.Encode(text)
				if err == nil && !slices.Equal(got, want) {
					err = errors.New(c.Name + ": ids differ under concurrency")
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
