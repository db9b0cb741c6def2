package day3

import (
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
	w1day1 "github.com/tinyllm-go/tinyllm/solutions/week1/day1"
)

// randomPacked is an Out x In 4-bit weight with random codes, scales and
// biases (float32), for timing only.
func randomPacked(out, in int) *PackedWeight {
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([]uint32, out*in/8)
	for i := range words {
		words[i] = rng.Uint32()
	}
	g := in / 64
	return &PackedWeight{Out: out, In: in, Bits: 4, GroupSize: 64, Words: words,
		Scales: tensor.RandUniform(rng, -0.05, 0.05, out, g), Biases: tensor.RandUniform(rng, -0.4, 0.4, out, g)}
}

// BenchmarkMatVec times one decode-step product with Qwen2-0.5B's MLP up
// projection (4864 x 896), 4-bit beside bf16 through Week 1's Linear; the
// GB/s metric counts the weight bytes read (words, scales and biases as
// bf16, or the bf16 matrix):
//
//	go test -run '^$' -bench MatVec ./solutions/week2/day3
func BenchmarkMatVec(b *testing.B) {
	p := randomPacked(4864, 896)
	x := tensor.RandN(rand.New(rand.NewPCG(3, 4)), 1, 896)
	b.Run("q4_g64", func(b *testing.B) {
		bytes := float64(len(p.Words)*4 + 2*2*p.Scales.Size())
		for b.Loop() {
			QuantizedMatmul(x, p)
		}
		b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
	b.Run("bf16", func(b *testing.B) {
		w := tensor.AsType(Dequantize(p), tensor.BFloat16)
		for b.Loop() {
			w1day1.Linear(x, w, nil)
		}
		b.ReportMetric(float64(2*w.Size())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
}
