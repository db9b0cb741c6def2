package day1

// The checks live in internal/grade/w2d1, shared with the other tree.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d1"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day3"
)

func newCache() llm.KVCache { return NewFullCache() }

func TestW2D1Task1FullCache(t *testing.T) { w2d1.Cache(t, newCache) }

func TestW2D1Task1AmortisedGrowth(t *testing.T) { w2d1.AmortisedGrowth(t, newCache) }

func TestW2D1Task2Attention(t *testing.T) {
	w2d1.Attention(t, func(hiddenSize, numHeads, numKVHeads int, wq, bq, wk, bk, wv, bv, wo *tensor.Tensor, maxSeqLen int, theta float64) *Qwen2AttentionWeek2 {
		return &Qwen2AttentionWeek2{day3.NewQwen2Attention(hiddenSize, numHeads, numKVHeads, wq, bq, wk, bk, wv, bv, wo, maxSeqLen, theta)}
	}, newCache)
}

func TestW2D1Task3Model(t *testing.T) { w2d1.Decode(t, NewQwen2ModelWeek2) }

func TestW2D1Task3ForwardLast(t *testing.T) { w2d1.DecodeLast(t, NewQwen2ModelWeek2) }

func TestW2D1Task3ChunkedPrefill(t *testing.T) { w2d1.Chunked(t, NewQwen2ModelWeek2) }

func TestW2D1Task4Prefill(t *testing.T) { w2d1.Prefill(t, NewQwen2ModelWeek2, Prefill) }

func TestW2D1Task4GenerateTokens(t *testing.T) {
	w2d1.GenerateTokens(t, NewQwen2ModelWeek2, func(m llm.CachedModel, prompt []int, n int, eos []int, chunk int, on func(int)) []int {
		return GenerateTokens(m, prompt, w2d1.Greedy{}, n, eos, chunk, on)
	})
}

func TestW2D1Task5Generate(t *testing.T) {
	w2d1.Generate(t, NewQwen2ModelWeek2, func(m llm.CachedModel, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, n int, eos []int, chunk int, on func(string)) (string, error) {
		return Generate(m, tok, msgs, w2d1.Greedy{}, Options{MaxTokens: n, EOS: eos, PrefillChunk: chunk, OnText: on})
	})
}
