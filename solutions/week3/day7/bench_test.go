package day7

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade/w2d1"
	"github.com/tinyllm-go/tinyllm/internal/npy"
	w2d1ref "github.com/tinyllm-go/tinyllm/solutions/week2/day1"
)

// BenchmarkSpeculative answers the parity conversations of
// testdata/shipped/greedy greedily with the shipped model: "plain" alone,
// "k=K" with the shipped draft proposing K tokens. One op is all the
// conversations; tok/s counts their tokens, and the k=K runs report the
// share of proposals accepted and the tokens per target pass. Compare the
// ns/op of plain and k=K for the speed-up:
//
//	go test -run '^$' -bench Speculative -benchtime 5x ./solutions/week3/day7
func BenchmarkSpeculative(b *testing.B) {
	root, err := fixture.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	load := func(name string) *w2d1ref.Qwen2ModelWeek2 {
		ck, err := checkpoint.Open(filepath.Join(root, "models", name))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ck.Close() })
		m, err := w2d1ref.NewQwen2ModelWeek2(ck)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	target, draft := load("tinyqwen-chat"), load("tinyqwen-draft")
	cases, err := fixture.Load("shipped", "greedy")
	if err != nil {
		b.Fatal(err)
	}
	var prompts [][]int
	for _, c := range cases {
		a, err := c.Array("prompt_ids")
		if err != nil {
			b.Fatal(err)
		}
		prompts = append(prompts, npyInts(b, a))
	}
	const maxTokens = 64
	eos := []int{3071, 3069} // the shipped model's generation_config.json
	tokens := 0
	b.Run("plain", func(b *testing.B) {
		for range b.N {
			tokens = 0
			for _, p := range prompts {
				tokens += len(w2d1ref.GenerateTokens(target, p, w2d1.Greedy{}, maxTokens, eos, 0, nil))
			}
		}
		b.ReportMetric(float64(tokens*b.N)/b.Elapsed().Seconds(), "tok/s")
	})
	for _, k := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			var st Stats
			n := 0
			for range b.N {
				for _, p := range prompts {
					ids, s, err := SpeculativeGenerate(target, draft, p, SpecOptions{K: k, MaxTokens: maxTokens, EOS: eos})
					if err != nil {
						b.Fatal(err)
					}
					n += len(ids)
					st.Steps, st.Proposed, st.Accepted, st.Generated = st.Steps+s.Steps, st.Proposed+s.Proposed, st.Accepted+s.Accepted, st.Generated+s.Generated
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tok/s")
			b.ReportMetric(100*st.AcceptanceRate(), "%accepted")
			b.ReportMetric(float64(st.Generated)/float64(st.Steps+b.N*len(prompts)), "tok/pass")
		})
	}
}

// npyInts reads an integer array of a fixture.
func npyInts(b *testing.B, a *npy.Array) []int {
	b.Helper()
	ids, err := a.Ints()
	if err != nil {
		b.Fatal(err)
	}
	return ids
}
