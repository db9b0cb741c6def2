package w1d6

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// scripted is a stand-in model that always predicts the next token of a
// script, so Generate's own logic (template, streaming, stopping) can be
// checked with the real Qwen2 tokenizer without a real Qwen2.
type scripted struct {
	script []int
	vocab  int
	first  []int // the first input, i.e. the encoded prompt
	calls  int
}

func (s *scripted) Forward(tokens [][]int) *tensor.Tensor {
	seq := tokens[0]
	if s.calls == 0 {
		s.first = slices.Clone(seq)
	}
	s.calls++
	next := s.script[min(len(seq)-len(s.first), len(s.script)-1)]
	logits := tensor.Zeros(1, len(seq), s.vocab)
	logits.Data()[(len(seq)-1)*s.vocab+next] = 10
	return logits
}

// GenerateFunc is the day's Generate with the Greedy sampler filled in.
type GenerateFunc func(m Model, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, maxTokens int, eos []int, onText func(string)) (string, error)

// Generate checks Task 3 with the real Qwen2 tokenizer and a scripted model:
// the prompt is the chat template's, the reply streams in whole UTF-8
// characters (emoji and CJK span several byte-level tokens), generation stops
// at the end-of-turn token, which is not part of the reply, and at MaxTokens.
func Generate(t *testing.T, generate GenerateFunc) {
	const task = "W1D6 Task 3 Generate"
	grade.PointToChapter(t, task)
	root, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.LoadDir(filepath.Join(root, "tokenizer", "qwen2"))
	if err != nil {
		t.Fatal(err)
	}
	imEnd, ok := tok.TokenID("<|im_end|>")
	if !ok {
		t.Fatal("the Qwen2 tokenizer has no <|im_end|>")
	}
	msgs := []tokenizer.Message{{Role: "user", Content: "Say hello in two languages."}}
	const reply = "Hello, 世界! 👋🏽 Ça va? 3+4=7"
	ids, err := tok.Encode(reply)
	if err != nil {
		t.Fatal(err)
	}
	stub := false
	t.Run("stops_on_end_of_turn", func(t *testing.T) {
		stub = grade.Run(t, task, func() {
			m := &scripted{script: append(slices.Clone(ids), imEnd), vocab: tok.VocabSize()}
			var pieces []string
			got, err := generate(m, tok, msgs, 100, []int{imEnd}, func(s string) { pieces = append(pieces, s) })
			if err != nil {
				t.Fatalf("%s: %v", task, err)
			}
			prompt, _ := tok.EncodeChat(msgs, true)
			if !slices.Equal(m.first, prompt) {
				t.Fatalf("%s: the model's first input is not the chat-templated prompt\n got %v\nwant %v", task, m.first, prompt)
			}
			if got != reply {
				t.Fatalf("%s: reply %q, want %q", task, got, reply)
			}
			if strings.Join(pieces, "") != reply {
				t.Fatalf("%s: streamed pieces %q do not add up to the reply", task, pieces)
			}
			for _, p := range pieces {
				if !utf8.ValidString(p) {
					t.Fatalf("%s: streamed piece %q splits a UTF-8 character", task, p)
				}
			}
			if m.calls != len(ids)+1 {
				t.Fatalf("%s: the model ran %d times; want %d (one per token, stopping at <|im_end|>)", task, m.calls, len(ids)+1)
			}
		})
	})
	if stub {
		return
	}
	t.Run("stops_at_max_tokens", func(t *testing.T) {
		grade.Run(t, task, func() {
			m := &scripted{script: ids, vocab: tok.VocabSize()}
			got, err := generate(m, tok, msgs, 3, []int{imEnd}, nil)
			if err != nil {
				t.Fatalf("%s: %v", task, err)
			}
			want, _ := tok.Decode(ids[:3])
			if m.calls != 3 || got != want {
				t.Fatalf("%s: with MaxTokens 3 the model ran %d times and replied %q; want 3 runs and %q", task, m.calls, got, want)
			}
		})
	})
	t.Run("message_text_stays_text", func(t *testing.T) {
		grade.Run(t, task, func() {
			msgs, want := forgedTurns(t)
			m := &scripted{script: []int{imEnd}, vocab: tok.VocabSize()}
			if _, err := generate(m, tok, msgs, 5, []int{imEnd}, nil); err != nil {
				t.Fatalf("%s: %v", task, err)
			}
			if !slices.Equal(m.first, want) {
				t.Fatalf("%s: a user message that types \"<|im_end|>\\n<|im_start|>system…\" became control tokens: "+
					"the model saw %d <|im_end|> in a prompt of one user turn (want %d, the template's own). "+
					"Encode the conversation with tok.EncodeChat, which keeps message text as text\n got %v\nwant %v",
					task, count(m.first, imEnd), count(want, imEnd), m.first, want)
			}
		})
	})
	t.Run("max_tokens_zero_is_an_error", func(t *testing.T) {
		grade.Run(t, task, func() {
			m := &scripted{script: ids, vocab: tok.VocabSize()}
			got, err := generate(m, tok, msgs, 0, []int{imEnd}, nil)
			if err == nil {
				t.Fatalf("%s: MaxTokens 0 gave the reply %q and no error; the chapter asks for an error", task, got)
			}
			if m.calls != 0 {
				t.Fatalf("%s: MaxTokens 0 ran the model %d times before returning its error", task, m.calls)
			}
		})
	})
}

// forgedTurns is the tokenizer fixture of a user message that tries to close
// its turn and open a system turn, with the ids transformers gives it when
// message text is encoded with split_special_tokens=True.
func forgedTurns(t *testing.T) ([]tokenizer.Message, []int) {
	t.Helper()
	cases, err := fixture.Load("tokenizer", "chat_text")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if c.Name != "forged_turns" {
			continue
		}
		msgs := grade.MustMessages(t, c)
		return msgs, grade.MustInts(t, c, "ids")
	}
	t.Fatal("testdata/tokenizer/chat_text has no forged_turns case")
	return nil, nil
}

func count(ids []int, id int) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}
