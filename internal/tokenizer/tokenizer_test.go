package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
)

// The reference cases are written by refgen/tokenizer.py with Hugging Face
// tokenizers on the real Qwen2 vocabulary (testdata/tokenizer/qwen2).

var (
	qwenOnce sync.Once
	qwenTok  *Tokenizer
	qwenErr  error
)

// qwen2 loads the committed Qwen2 tokenizer once for all tests.
func qwen2(tb testing.TB) *Tokenizer {
	tb.Helper()
	qwenOnce.Do(func() {
		root, err := fixture.Dir()
		if err != nil {
			qwenErr = err
			return
		}
		qwenTok, qwenErr = LoadDir(filepath.Join(root, "tokenizer", "qwen2"))
	})
	if qwenErr != nil {
		tb.Fatal(qwenErr)
	}
	return qwenTok
}

func loadCases(t *testing.T, task string) []*fixture.Case {
	t.Helper()
	cases, err := fixture.Load("tokenizer", task)
	if err != nil {
		t.Fatal(err)
	}
	return cases
}

func caseIDs(t *testing.T, c *fixture.Case) []int {
	t.Helper()
	a, err := c.Array("ids")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := a.Ints()
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func caseString(t *testing.T, c *fixture.Case, name string) string {
	t.Helper()
	s, ok := c.Params[name].(string)
	if !ok {
		t.Fatalf("case %s: parameter %q is not a string", c.Name, name)
	}
	return s
}

// diffIDs describes the first difference between two id sequences, with the
// tokens around it.
func diffIDs(tok *Tokenizer, got, want []int) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	show := func(ids []int) string {
		lo, hi := max(0, i-3), min(len(ids), i+4)
		parts := make([]string, 0, hi-lo)
		for _, id := range ids[lo:hi] {
			s, _ := tok.Token(id)
			parts = append(parts, fmt.Sprintf("%d:%q", id, s))
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprintf("%d ids, want %d; first difference at index %d: got %s, want %s", len(got), len(want), i, show(got), show(want))
}

func TestEncodeMatchesHuggingFace(t *testing.T) {
	tok := qwen2(t)
	cases := loadCases(t, "encode")
	if len(cases) < 40 {
		t.Fatalf("only %d encode cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			text, want := caseString(t, c, "text"), caseIDs(t, c)
			got, err := tok.Encode(text)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("Encode(%.80q): %s", text, diffIDs(tok, got, want))
			}
		})
	}
}

func TestDecodeMatchesHuggingFace(t *testing.T) {
	tok := qwen2(t)
	for _, task := range []string{"encode", "decode"} {
		key := map[string]string{"encode": "decoded", "decode": "text"}[task]
		for _, c := range loadCases(t, task) {
			t.Run(task+"/"+c.Name, func(t *testing.T) {
				ids, want := caseIDs(t, c), caseString(t, c, key)
				got, err := tok.Decode(ids)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("Decode(%v):\n got %q\nwant %q", ids, got, want)
				}
			})
		}
	}
}

// Decode(Encode(x)) gives x back, NFC-normalized.
func TestRoundTrip(t *testing.T) {
	tok := qwen2(t)
	for _, c := range loadCases(t, "encode") {
		t.Run(c.Name, func(t *testing.T) {
			checkRoundTrip(t, tok, caseString(t, c, "text"))
		})
	}
}

// checkRoundTrip checks Decode(Encode(s)) == NFC(s). Two Hugging Face rules
// make that canonical equivalence only (the same NFC) in rare texts:
// normalization runs on the text between added tokens ("<|im_end|>" + U+0338
// stays apart, NFC of the whole would give "≯"), and Hugging Face's NFC knows
// Unicode 9.0, so it leaves combining marks added since unordered (see nfc).
func checkRoundTrip(t *testing.T, tok *Tokenizer, s string) {
	t.Helper()
	ids, err := tok.Encode(s)
	if err != nil {
		t.Fatalf("Encode(%q): %v", s, err)
	}
	got, err := tok.Decode(ids)
	if err != nil {
		t.Fatalf("Decode(Encode(%q)): %v", s, err)
	}
	want := norm.NFC.String(s)
	if got == want {
		return
	}
	if (containsAdded(tok, s) || hasNormBarrier(s)) && norm.NFC.String(got) == want {
		return
	}
	t.Errorf("Decode(Encode(%q)) = %q, want NFC %q", s, got, want)
}

func hasNormBarrier(s string) bool {
	for _, r := range s {
		if isNormBarrier(r) {
			return true
		}
	}
	return false
}

func containsAdded(tok *Tokenizer, s string) bool {
	for content := range tok.added {
		if strings.Contains(s, content) {
			return true
		}
	}
	return false
}

// The stream decoder's pieces concatenate to Decode's text, and none of them
// ends in the middle of a character.
func TestStreamDecoder(t *testing.T) {
	tok := qwen2(t)
	for _, task := range []string{"encode", "decode", "chat"} {
		for _, c := range loadCases(t, task) {
			t.Run(task+"/"+c.Name, func(t *testing.T) {
				checkStream(t, tok, caseIDs(t, c))
			})
		}
	}
}

func checkStream(t *testing.T, tok *Tokenizer, ids []int) {
	t.Helper()
	want, err := tok.Decode(ids)
	if err != nil {
		t.Fatal(err)
	}
	d := tok.NewStreamDecoder()
	var sb strings.Builder
	for i, id := range ids {
		piece, err := d.Add(id)
		if err != nil {
			t.Fatalf("Add(%d): %v", id, err)
		}
		if !utf8.ValidString(piece) {
			t.Fatalf("Add(ids[%d] = %d) returned %q, not valid UTF-8", i, id, piece)
		}
		sb.WriteString(piece)
	}
	rest := d.Flush()
	if !utf8.ValidString(rest) {
		t.Fatalf("Flush returned %q, not valid UTF-8", rest)
	}
	sb.WriteString(rest)
	if sb.String() != want {
		t.Errorf("streamed %q, Decode gives %q", sb.String(), want)
	}
	if d.Flush() != "" {
		t.Error("a second Flush returned text")
	}
}

// A character split over tokens comes out whole, when its last byte arrives.
func TestStreamDecoderHoldsBackPartialCharacters(t *testing.T) {
	tok := qwen2(t)
	crab := "🦀" // four bytes
	d := tok.NewStreamDecoder()
	for i := 0; i < len(crab); i++ {
		id, ok := tok.TokenID(string(byteToRune[crab[i]]))
		if !ok {
			t.Fatalf("no token for byte %#x", crab[i])
		}
		got, err := d.Add(id)
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		if i == len(crab)-1 {
			want = crab
		}
		if got != want {
			t.Fatalf("after byte %d: Add returned %q, want %q", i, got, want)
		}
	}
	// Half a character, then Flush: U+FFFD.
	id, _ := tok.TokenID(string(byteToRune[0xE4]))
	if got, _ := d.Add(id); got != "" {
		t.Fatalf("Add(lead byte) returned %q, want it held back", got)
	}
	if got := d.Flush(); got != "\uFFFD" {
		t.Fatalf("Flush = %q, want U+FFFD", got)
	}
}

func TestChatTemplateMatchesTransformers(t *testing.T) {
	tok := qwen2(t)
	for _, c := range loadCases(t, "chat") {
		t.Run(c.Name, func(t *testing.T) {
			raw, err := json.Marshal(c.Params["messages"])
			if err != nil {
				t.Fatal(err)
			}
			var msgs []Message
			if err := json.Unmarshal(raw, &msgs); err != nil {
				t.Fatal(err)
			}
			gen, err := c.Bool("add_generation_prompt")
			if err != nil {
				t.Fatal(err)
			}
			text := tok.ApplyChatTemplate(msgs, gen)
			if want := caseString(t, c, "text"); text != want {
				t.Fatalf("ApplyChatTemplate:\n got %q\nwant %q", text, want)
			}
			ids, err := tok.Encode(text)
			if err != nil {
				t.Fatal(err)
			}
			if want := caseIDs(t, c); !slices.Equal(ids, want) {
				t.Errorf("Encode(template): %s", diffIDs(tok, ids, want))
			}
		})
	}
}

func TestQwen2Vocabulary(t *testing.T) {
	tok := qwen2(t)
	if got := tok.VocabSize(); got != 151669 {
		t.Errorf("VocabSize = %d, want 151669 (151643 BPE tokens + 26 added)", got)
	}
	for token, id := range map[string]int{
		"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<think>": 151667,
		"Hello": 9707, "Ġworld": 1879, "!": 0, "Ġ": 220, "Ċ": 198,
	} {
		if got, ok := tok.TokenID(token); !ok || got != id {
			t.Errorf("TokenID(%q) = %d, %v; want %d", token, got, ok, id)
		}
		if got, ok := tok.Token(id); !ok || got != token {
			t.Errorf("Token(%d) = %q, %v; want %q", id, got, ok, token)
		}
	}
	if _, ok := tok.TokenID("no such token"); ok {
		t.Error("TokenID of a non-token succeeded")
	}
	for _, id := range []int{-1, tok.VocabSize()} {
		if _, ok := tok.Token(id); ok {
			t.Errorf("Token(%d) succeeded", id)
		}
	}
	if eos, ok := tok.EOSTokenID(); !ok || eos != 151645 {
		t.Errorf("EOSTokenID = %d, %v; want 151645 (<|im_end|>)", eos, ok)
	}
	if !tok.HasChatTemplate() {
		t.Error("HasChatTemplate = false")
	}
	if !tok.IsSpecial(151645) || tok.IsSpecial(151667) || tok.IsSpecial(9707) {
		t.Error("IsSpecial: want <|im_end|> special, <think> and Hello not")
	}
}

// The real vocabulary with its merges written in the legacy "a b" spelling
// (as Qwen2's own tokenizer.json has them) tokenizes identically.
func TestLegacyMergeSpelling(t *testing.T) {
	root, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	data, err := readMaybeGzip(filepath.Join(root, "tokenizer", "qwen2", "tokenizer.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	var model map[string]json.RawMessage
	if err := json.Unmarshal(top["model"], &model); err != nil {
		t.Fatal(err)
	}
	var pairs [][]string
	if err := json.Unmarshal(model["merges"], &pairs); err != nil {
		t.Fatalf("the committed file should use the pair spelling: %v", err)
	}
	legacy := make([]string, len(pairs))
	for i, p := range pairs {
		legacy[i] = p[0] + " " + p[1]
	}
	model["merges"], _ = json.Marshal(legacy)
	top["model"], _ = json.Marshal(model)
	data, _ = json.Marshal(top)
	tok, err := parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range loadCases(t, "encode") {
		got, err := tok.Encode(caseString(t, c, "text"))
		if err != nil {
			t.Fatal(err)
		}
		if want := caseIDs(t, c); !slices.Equal(got, want) {
			t.Errorf("%s: %s", c.Name, diffIDs(tok, got, want))
		}
	}
}

// TestEncodeChatKeepsUserTextAsText checks EncodeChat against transformers
// encoding each message with split_special_tokens=True: a "<|im_end|>" typed
// in a message must stay text, or a user can forge a system or assistant turn.
func TestEncodeChatKeepsUserTextAsText(t *testing.T) {
	tok := qwen2(t)
	imEnd, _ := tok.TokenID("<|im_end|>")
	for _, c := range loadCases(t, "chat_text") {
		t.Run(c.Name, func(t *testing.T) {
			raw, err := json.Marshal(c.Params["messages"])
			if err != nil {
				t.Fatal(err)
			}
			var msgs []Message
			if err := json.Unmarshal(raw, &msgs); err != nil {
				t.Fatal(err)
			}
			gen, err := c.Bool("add_generation_prompt")
			if err != nil {
				t.Fatal(err)
			}
			ids, err := tok.EncodeChat(msgs, gen)
			if err != nil {
				t.Fatal(err)
			}
			want := caseIDs(t, c)
			if !slices.Equal(ids, want) {
				t.Fatalf("EncodeChat: %s", diffIDs(tok, ids, want))
			}
			// One end-of-turn per message and the default system turn, no more.
			turns := len(msgs)
			if len(msgs) > 0 && msgs[0].Role != "system" {
				turns++
			}
			if n := countID(ids, imEnd); n != turns {
				t.Errorf("EncodeChat gave %d <|im_end|> tokens for %d turns", n, turns)
			}
		})
	}
}

func countID(ids []int, id int) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

func TestEncodeTextSpecialTokensStayText(t *testing.T) {
	tok := qwen2(t)
	imEnd, _ := tok.TokenID("<|im_end|>")
	toolCall, _ := tok.TokenID("<tool_call>")
	for _, tc := range []struct {
		text      string
		mustHave  []int // ids that must appear (non-special added tokens)
		mustLack  []int // ids that must not
		sameAsRaw bool  // EncodeText equals Encode (no special token in text)
	}{
		{text: "Hello<|im_end|>", mustLack: []int{imEnd}},
		{text: "<tool_call>x", mustHave: []int{toolCall}, sameAsRaw: true},
		{text: "plain words, 世界", sameAsRaw: true},
	} {
		got, err := tok.EncodeText(tc.text)
		if err != nil {
			t.Fatalf("EncodeText(%q): %v", tc.text, err)
		}
		raw, _ := tok.Encode(tc.text)
		for _, id := range tc.mustLack {
			if slices.Contains(got, id) {
				t.Errorf("EncodeText(%q) = %v contains special id %d", tc.text, got, id)
			}
		}
		for _, id := range tc.mustHave {
			if !slices.Contains(got, id) {
				t.Errorf("EncodeText(%q) = %v lacks added token %d", tc.text, got, id)
			}
		}
		if tc.sameAsRaw != slices.Equal(got, raw) {
			t.Errorf("EncodeText(%q) = %v, Encode = %v; equal should be %v", tc.text, got, raw, tc.sameAsRaw)
		}
		back, _ := tok.Decode(got)
		if back != tc.text {
			t.Errorf("Decode(EncodeText(%q)) = %q", tc.text, back)
		}
	}
}

func TestEncodeChatUTF8ErrorPointsIntoTheMessage(t *testing.T) {
	tok := qwen2(t)
	msgs := []Message{{Role: "user", Content: "fine"}, {Role: "assistant", Content: "ok"}, {Role: "user", Content: "abc\xffdef"}}
	_, err := tok.EncodeChat(msgs, true)
	var bad *InvalidUTF8Error
	if !errors.As(err, &bad) {
		t.Fatalf("EncodeChat error = %v, want an *InvalidUTF8Error", err)
	}
	if bad.Offset != 3 || !strings.Contains(err.Error(), "message 3") {
		t.Errorf("error %q (offset %d): want message 3 and offset 3 in that message's content", err, bad.Offset)
	}
}
