package day4

import (
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
	w2day6 "github.com/tinyllm-go/tinyllm/week2/day6"
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
//	go test -run '^$' -bench PagedDecode ./week3/day4
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

// BenchmarkW3D4PagedGPU times the paged attention kernel on the device
// (events around b.N launches, after 100 ms of warm-up launches so the
// clocks are up): decode steps of many sequences and a prefill chunk after
// a cached context, pages of 16 in a scrambled order. GB/s counts the keys
// and values the launch must read once.
//
//	go test -run '^$' -bench W3D4PagedGPU ./week3/day4   (on a GPU machine)
func BenchmarkW3D4PagedGPU(b *testing.B) {
	d := kerneltest.Open(b)
	a, err := NewPagedKernels(d)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	for _, c := range []struct {
		name                string
		seqs, ctx, rows     int
		hq, h, dim, pageLen int
	}{
		{"0.5B heads, decode 256 seqs at 1024", 256, 1024, 1, 14, 2, 64, 16},
		{"0.5B heads, decode 64 seqs at 4096", 64, 4096, 1, 14, 2, 64, 16},
		{"7B heads, decode 64 seqs at 2048", 64, 2048, 1, 28, 4, 128, 16},
		{"0.5B heads, chunk of 512 after 1536", 1, 1536, 512, 14, 2, 64, 16},
	} {
		b.Run(c.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(3, 4))
			per := (c.ctx + c.rows + c.pageLen - 1) / c.pageLen
			shape := PageShape{NumPages: c.seqs * per, PageSize: c.pageLen, KVHeads: c.h, HeadDim: c.dim}
			order := rng.Perm(shape.NumPages)
			seqs := make([]PagedSeq, c.seqs)
			for i := range seqs {
				seqs[i] = PagedSeq{Context: c.ctx, Len: c.rows, BlockTable: order[i*per : (i+1)*per]}
			}
			t := c.seqs * c.rows
			var bufs []*kernels.Buffer
			defer func() {
				for _, x := range bufs {
					x.Free()
				}
			}()
			alloc := func(floats int) *kernels.Buffer {
				x, err := d.Alloc(4 * floats)
				if err != nil {
					b.Fatal(err)
				}
				bufs = append(bufs, x)
				return x
			}
			k, v := alloc(shape.LayerFloats()), alloc(shape.LayerFloats())
			q, out := alloc(t*c.hq*c.dim), alloc(t*c.hq*c.dim)
			for _, x := range []*kernels.Buffer{k, v, q} {
				if err := x.Fill(0x3c); err != nil { // small positive floats
					b.Fatal(err)
				}
			}
			meta, err := UploadMeta(d, shape, seqs, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer meta.Free()
			bytes := int64(2*4*c.h*c.dim) * int64(c.seqs) * int64(c.ctx+c.rows)
			kerneltest.TimeGPU(b, d, bytes, func() error { return a.Attention(out, q, k, v, c.hq, meta, 0) })
		})
	}
}
