package w2d6

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/suspect"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// roundBF16 rounds every element to bf16 (to nearest, ties to even), as
// the tensor-core kernel rounds q, k and v.
func roundBF16(t *tensor.Tensor) *tensor.Tensor {
	out := make([]float32, t.Size())
	for i, x := range t.Data() {
		u := math.Float32bits(x)
		u = (u + 0x7fff + (u>>16)&1) &^ 0xffff
		out[i] = math.Float32frombits(u)
	}
	return tensor.New(out, t.Shape()...)
}

// TestBF16ToleranceSeparates checks, without a GPU, that the bf16
// tolerances accept attention computed from bf16-rounded inputs and reject
// the mistakes a prefill kernel makes: a causal mask one key off, a
// missing rescale, the wrong key/value head.
func TestBF16ToleranceSeparates(t *testing.T) {
	for i, s := range []RealShape{
		{"G7 D64 L100 S130 causal", 14, 2, 64, 100, 130, true, false, false},
		{"G2 D128 L70 S70 causal+padding", 4, 2, 128, 70, 70, true, true, true},
		{"G8 D64 L65 S200 mask", 16, 2, 64, 65, 200, false, true, false},
	} {
		p, want := s.random(rand.New(rand.NewPCG(9, uint64(i))))
		q, k, v := tensor.ExpandDims(p.q, 0), tensor.ExpandDims(p.k, 0), tensor.ExpandDims(p.v, 0)
		scale := suspect.DefaultScale(s.D)
		if msg := compareBF16(want, want, p.size()); msg != "" {
			t.Errorf("%s: the reference against itself:\n%s", s.Name, msg)
		}
		rounded := suspect.GroupedAttention(roundBF16(q), roundBF16(k), roundBF16(v), scale, fullMask(p.mask, s.Causal, s.L, s.S), suspect.Grouped)
		if msg := compareBF16(rounded, want, p.size()); msg != "" {
			t.Errorf("%s: attention of bf16-rounded inputs is rejected:\n%s", s.Name, msg)
		}
		mistakes := []Mistake{NoRescaleOutput, InterleavedKVHeads}
		if s.Causal {
			mistakes = append(mistakes, CausalOneTooMany, CausalNoDiagonal)
		}
		for _, m := range mistakes {
			if msg := compareBF16(mistaken(q, k, v, scale, p.mask, s.Causal, 64, m), want, p.size()); msg == "" {
				t.Errorf("%s: mistake %d passes the bf16 tolerances", s.Name, m)
			}
		}
	}
}
