package day4

import (
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
	w2day6 "github.com/tinyllm-go/tinyllm/solutions/week2/day6"
)

// benchCall is a decode step of seqs sequences at context ctx with
// Qwen2-0.5B's heads (14 query heads on 2, D 64) in pages of 16 handed out
// in a scrambled order.
func benchCall(seqs, ctx int) (q *tensor.Tensor, k, v []float32, shape PageShape, ps []PagedSeq) {
	rng := rand.New(rand.NewPCG(1, 2))
	per := (ctx + 1 + 15) / 16
	shape = PageShape{NumPages: seqs * per, PageSize: 16, KVHeads: 2, HeadDim: 64}
	k = tensor.RandN(rng, shape.LayerFloats()).Data()
	v = tensor.RandN(rng, shape.LayerFloats()).Data()
	order := rng.Perm(shape.NumPages)
	for i := range seqs {
		ps = append(ps, PagedSeq{Context: ctx, Len: 1, BlockTable: order[i*per : (i+1)*per]})
	}
	return tensor.RandN(rng, seqs, 14, 64), k, v, shape, ps
}

// gather is what paged attention avoids: a sequence's keys and values
// copied out of the pages into dense 1 x H x S x D tensors.
func gather(k, v []float32, shape PageShape, s PagedSeq) (*tensor.Tensor, *tensor.Tensor) {
	n, h, d := s.Context+s.Len, shape.KVHeads, shape.HeadDim
	kd, vd := make([]float32, h*n*d), make([]float32, h*n*d)
	for p := range n {
		at := ((s.BlockTable[p/shape.PageSize]*shape.PageSize + p%shape.PageSize) * h) * d
		for hi := range h {
			copy(kd[(hi*n+p)*d:(hi*n+p+1)*d], k[at+hi*d:at+(hi+1)*d])
			copy(vd[(hi*n+p)*d:(hi*n+p+1)*d], v[at+hi*d:at+(hi+1)*d])
		}
	}
	return tensor.New(kd, 1, h, n, d), tensor.New(vd, 1, h, n, d)
}

// BenchmarkPagedDecode times one layer's attention of a decode step of 64
// sequences at context 512 (Qwen2-0.5B heads, pages of 16): PagedAttention
// through the block tables, against gathering each sequence's keys into a
// dense copy and running Week 2 Day 6's FlashAttention on it.
//
//	go test -run '^$' -bench PagedDecode ./solutions/week3/day4
func BenchmarkPagedDecode(b *testing.B) {
	q, k, v, shape, seqs := benchCall(64, 512)
	b.Run("paged", func(b *testing.B) {
		for range b.N {
			if _, err := PagedAttention(q, k, v, shape, seqs, 0, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gather+flash", func(b *testing.B) {
		for range b.N {
			for i, s := range seqs {
				kd, vd := gather(k, v, shape, s)
				qi := tensor.Reshape(tensor.Slice(q, 0, i, i+1), 1, 14, 1, 64)
				w2day6.FlashAttention(qi, kd, vd, 0, nil, true)
			}
		}
	})
}
