package w1d6

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// ShippedModel checks Tasks 2 and 3 on the model that ships in
// models/tinyqwen-chat, against Hugging Face (refgen/shipped.py): the
// chat-templated prompt encodes to the same ids, GenerateTokens produces the
// same greedy reply ids, and Generate returns the same text.
func ShippedModel[M Model](t *testing.T, newModel func(ck *checkpoint.Checkpoint) (M, error),
	generateTokens func(model M, prompt []int, maxTokens int, eos []int, onToken func(id int)) []int,
	generate GenerateFunc) {
	const task = "W1D6 Tasks 2 and 3 on the shipped model"
	grade.PointToChapter(t, task)
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "models", "tinyqwen-chat")
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := ck.ReadGenerationConfig()
	if err != nil {
		t.Fatal(err)
	}
	var m M
	if grade.Run(t, task, func() { m, err = newModel(ck) }) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	grade.Cases(t, task, "shipped", "greedy", func(t *testing.T, c *fixture.Case) {
		msgs := grade.MustMessages(t, c)
		prompt, err := tok.Encode(tok.ApplyChatTemplate(msgs, true))
		if err != nil {
			t.Fatal(err)
		}
		if want := grade.MustInts(t, c, "prompt_ids"); !slices.Equal(prompt, want) {
			t.Fatalf("%s, case %s: the prompt encodes to %v, Hugging Face gives %v", task, c.Name, prompt, want)
		}
		maxTokens := grade.MustInt(t, c, "max_tokens")
		want := grade.MustInts(t, c, "ids")
		if got := generateTokens(m, prompt, maxTokens, gen.EOSTokenIDs, nil); !slices.Equal(got, want) {
			t.Fatalf("%s, case %s: GenerateTokens gave %v, Hugging Face %v", task, c.Name, got, want)
		}
		reply, err := generate(m, tok, msgs, maxTokens, gen.EOSTokenIDs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if wantText := c.Params["reply"].(string); reply != wantText {
			t.Fatalf("%s, case %s: Generate replied %q, Hugging Face %q", task, c.Name, reply, wantText)
		}
	})
}
