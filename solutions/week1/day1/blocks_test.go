package day1

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/w1d1"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// withBlocks runs f with attention cut into blocks of the given number of
// query rows, whatever their scores' size.
func withBlocks(rows int, f func()) {
	budget, minRows := scoreBudget, minBlockRows
	defer func() { scoreBudget, minBlockRows = budget, minRows }()
	scoreBudget, minBlockRows = 1, rows
	f()
}

// TestAttentionInOneRowBlocksPassesFixtures grades Tasks 3 and 4 again with
// every query row attended on its own: the fixtures are short enough to fit
// one block at the usual budget, so this is what puts the blocked path
// through the PyTorch references, masks and batch dimensions included.
func TestAttentionInOneRowBlocksPassesFixtures(t *testing.T) {
	withBlocks(1, func() {
		w1d1.ScaledDotProductAttention(t, ScaledDotProductAttentionSimple)
		w1d1.MultiHeadAttention(t, NewMultiHeadAttention)
	})
}

// naiveAttention is softmax(q·kᵀ·scale + mask)·v in float64, one query row
// at a time, for q [B, L, D], k and v [B, S, D] and a mask broadcast to
// [B, L, S] (nil for none): the formula, written independently of the
// reference.
func naiveAttention(q, k, v, mask *tensor.Tensor, scale float64) *tensor.Tensor {
	b, l, d, s := q.Dim(0), q.Dim(1), q.Dim(2), k.Dim(1)
	qd, kd, vd := q.Data(), k.Data(), v.Data()
	var md []float32
	if mask != nil {
		md = tensor.BroadcastTo(mask, b, l, s).Data()
	}
	out := make([]float32, b*l*d)
	w := make([]float64, s)
	for n := 0; n < b; n++ {
		for i := 0; i < l; i++ {
			top := math.Inf(-1)
			for j := 0; j < s; j++ {
				dot := 0.0
				for c := 0; c < d; c++ {
					dot += float64(qd[(n*l+i)*d+c]) * float64(kd[(n*s+j)*d+c])
				}
				w[j] = dot * scale
				if md != nil {
					w[j] += float64(md[(n*l+i)*s+j])
				}
				top = max(top, w[j])
			}
			total := 0.0
			for j := range w {
				w[j] = math.Exp(w[j] - top)
				total += w[j]
			}
			for c := 0; c < d; c++ {
				acc := 0.0
				for j := range w {
					acc += w[j] / total * float64(vd[(n*s+j)*d+c])
				}
				out[(n*l+i)*d+c] = float32(acc)
			}
		}
	}
	return tensor.New(out, b, l, d)
}

// TestAttentionBlocksMatchFormula cuts attention into blocks that do not
// divide L, under every shape of mask the API allows, and compares with the
// formula. Some masks have a row axis to be cut with the queries, others
// broadcast over the rows and must not be cut.
func TestAttentionBlocksMatchFormula(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const b, l, s, d = 2, 11, 13, 8
	q, k, v := tensor.RandN(rng, b, l, d), tensor.RandN(rng, b, s, d), tensor.RandN(rng, b, s, d)
	inf := float32(math.Inf(-1))
	causal := tensor.Triu(tensor.Full(inf, l, s), s-l+1)
	masks := []struct {
		name string
		mask *tensor.Tensor
	}{
		{"none", nil},
		{"causal L x S", causal},
		{"random B x L x S", tensor.RandN(rng, b, l, s)},
		{"random B x 1 x S, one row for all queries", tensor.RandN(rng, b, 1, s)},
		{"random S", tensor.RandN(rng, s)},
		{"causal with a batch axis, 1 x L x S", tensor.ExpandDims(causal, 0)},
	}
	scale := 1 / math.Sqrt(d)
	for _, m := range masks {
		want := naiveAttention(q, k, v, m.mask, scale)
		for _, rows := range []int{1, 2, 4, 10, l} {
			t.Run(fmt.Sprintf("%s, blocks of %d", m.name, rows), func(t *testing.T) {
				var got *tensor.Tensor
				withBlocks(rows, func() { got = ScaledDotProductAttentionSimple(q, k, v, 0, m.mask) })
				grade.AllClose(t, "attention in blocks", got, want, grade.Products)
			})
		}
	}

	// No batch dimensions at all: q is L x D.
	q1, k1, v1 := tensor.Slice(q, 0, 0, 1), tensor.Slice(k, 0, 0, 1), tensor.Slice(v, 0, 0, 1)
	want := tensor.Squeeze(naiveAttention(q1, k1, v1, causal, scale), 0)
	var got *tensor.Tensor
	withBlocks(3, func() {
		got = ScaledDotProductAttentionSimple(tensor.Squeeze(q1, 0), tensor.Squeeze(k1, 0), tensor.Squeeze(v1, 0), 0, causal)
	})
	grade.AllClose(t, "2-D attention in blocks", got, want, grade.Products)
}

func TestBlockRows(t *testing.T) {
	tests := []struct {
		perRow, want int
	}{
		{1, 1 << 20},               // a single key: the budget's worth of rows
		{14 * 128, 585},            // Qwen2-0.5B, 128 keys
		{14 * 4096, 18},            // 4096 keys
		{14 * 16384, minBlockRows}, // 16k keys: the floor
		{1 << 30, minBlockRows},
	}
	for _, tc := range tests {
		if got := blockRows(tc.perRow); got != tc.want {
			t.Errorf("blockRows(%d) = %d, want %d", tc.perRow, got, tc.want)
		}
	}
}
