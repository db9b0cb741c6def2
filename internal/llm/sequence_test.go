package llm

import (
	"slices"
	"testing"
)

func TestPagesFor(t *testing.T) {
	for _, c := range []struct{ n, size, want int }{
		{0, 16, 0}, {1, 16, 1}, {16, 16, 1}, {17, 16, 2}, {32768, 16, 2048}, {5, 1, 5},
	} {
		if got := PagesFor(c.n, c.size); got != c.want {
			t.Errorf("PagesFor(%d, %d) = %d, want %d", c.n, c.size, got, c.want)
		}
	}
}

func TestSequenceAndChunks(t *testing.T) {
	prompt := []int{7, 8, 9}
	s := NewSequence(4, prompt, 5)
	prompt[0] = 0 // the sequence holds a copy
	s.Tokens = append(s.Tokens, 11)
	s.NumCached = 3
	if !slices.Equal(s.Prompt(), []int{7, 8, 9}) || !slices.Equal(s.Output(), []int{11}) || s.NumOutput() != 1 || s.Len() != 4 {
		t.Errorf("prompt %v output %v (%d) len %d; want [7 8 9], [11] (1), 4", s.Prompt(), s.Output(), s.NumOutput(), s.Len())
	}
	if s.Uncached() != 1 || s.Status != SeqWaiting || s.Finished() {
		t.Errorf("uncached %d, status %v; want 1, waiting", s.Uncached(), s.Status)
	}
	decode := ScheduledChunk{Seq: s, Start: 3, Len: 1}
	prefill := ScheduledChunk{Seq: s, Start: 0, Len: 2}
	if !decode.Samples() || prefill.Samples() || !slices.Equal(decode.Tokens(), []int{11}) || !slices.Equal(prefill.Tokens(), []int{7, 8}) {
		t.Errorf("decode samples %v tokens %v, prefill samples %v tokens %v", decode.Samples(), decode.Tokens(), prefill.Samples(), prefill.Tokens())
	}
	if n := (Batch{decode, prefill}).NumTokens(); n != 3 {
		t.Errorf("NumTokens = %d, want 3", n)
	}
	if SeqFinished.String() != "finished" || SeqStatus(9).String() != "SeqStatus(9)" {
		t.Errorf("status strings %q, %q", SeqFinished, SeqStatus(9))
	}
}
