package day3

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// naiveRow is query row i of head j of batch entry n of grouped attention,
// in float64, for q [N, H_q, L, D], k and v [N, H, S, D] and an additive
// mask [L, S] or [N, H_q, L, S] (nil for none): the formula, with query head
// j reading key/value head j/(H_q/H), written independently of the reference.
func naiveRow(q, k, v, mask *tensor.Tensor, n, j, i int) []float32 {
	hq, l, d := q.Dim(1), q.Dim(2), q.Dim(3)
	h, s := k.Dim(1), k.Dim(2)
	kvHead := j / (hq / h)
	qd, kd, vd := q.Data(), k.Data(), v.Data()
	row := qd[((n*hq+j)*l+i)*d:][:d]
	kv := ((n*h + kvHead) * s) * d
	w := make([]float64, s)
	top := math.Inf(-1)
	for c := 0; c < s; c++ {
		dot := 0.0
		for e := 0; e < d; e++ {
			dot += float64(row[e]) * float64(kd[kv+c*d+e])
		}
		w[c] = dot / math.Sqrt(float64(d))
		switch {
		case mask == nil:
		case mask.NDim() == 2:
			w[c] += float64(mask.At(i, c))
		default:
			w[c] += float64(mask.At(n, j, i, c))
		}
		top = max(top, w[c])
	}
	total := 0.0
	for c := range w {
		w[c] = math.Exp(w[c] - top)
		total += w[c]
	}
	out := make([]float32, d)
	for e := range out {
		acc := 0.0
		for c := range w {
			acc += w[c] / total * float64(vd[kv+c*d+e])
		}
		out[e] = float32(acc)
	}
	return out
}

// naiveGrouped is naiveRow for every row: N x H_q x L x D.
func naiveGrouped(q, k, v, mask *tensor.Tensor) *tensor.Tensor {
	nb, hq, l, d := q.Dim(0), q.Dim(1), q.Dim(2), q.Dim(3)
	var out []float32
	for n := 0; n < nb; n++ {
		for j := 0; j < hq; j++ {
			for i := 0; i < l; i++ {
				out = append(out, naiveRow(q, k, v, mask, n, j, i)...)
			}
		}
	}
	return tensor.New(out, nb, hq, l, d)
}

// TestGroupedMaskWithHeadAxis covers the masks the fixtures do not: ones
// with an axis for the query heads, whole or broadcast, which the reference
// splits into key/value heads and groups the same way as the queries.
func TestGroupedMaskWithHeadAxis(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const n, hq, h, l, s, d = 2, 6, 2, 5, 7, 8
	q := tensor.RandN(rng, n, hq, l, d)
	k, v := tensor.RandN(rng, n, h, s, d), tensor.RandN(rng, n, h, s, d)
	full := tensor.RandN(rng, n, hq, l, s)
	perHead := tensor.RandN(rng, hq, l, s)
	perRow := tensor.RandN(rng, n, 1, l, s)
	causal := CausalMask(l, s)
	tests := []struct {
		name       string
		mask, full *tensor.Tensor // as passed, and broadcast to N x H_q x L x S
	}{
		{"none", nil, nil},
		{"L x S", causal, causal},
		{"1 x L x S", tensor.ExpandDims(causal, 0), causal},
		{"H_q x L x S", perHead, tensor.BroadcastTo(perHead, n, hq, l, s)},
		{"N x 1 x L x S", perRow, tensor.BroadcastTo(perRow, n, hq, l, s)},
		{"N x H_q x L x S", full, full},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ScaledDotProductAttentionGrouped(q, k, v, 0, tc.mask)
			grade.AllClose(t, "grouped attention, mask "+tc.name, got, naiveGrouped(q, k, v, tc.full), grade.Products)
		})
	}
}
