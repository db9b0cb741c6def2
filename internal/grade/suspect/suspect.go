// Package suspect computes what Week 1's operations return with a known
// mistake in them, from a fixture case's inputs, so that a failing check can
// say "your output is what this mistake gives". The results are diagnoses
// only: every expected value still comes from the fixtures.
//
// The functions are written plainly with internal/tensor, for clarity rather
// than speed; none of them shares code with either tree's day packages.
package suspect

import (
	"math"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Softmax normalises x along axis, subtracting the maximum first.
func Softmax(x *tensor.Tensor, axis int) *tensor.Tensor {
	e := tensor.Exp(tensor.Sub(x, tensor.Max(x, axis, true)))
	return tensor.Div(e, tensor.Sum(e, axis, true))
}

// DefaultScale is 1/sqrt(d).
func DefaultScale(d int) float32 { return float32(1 / math.Sqrt(float64(d))) }

// Attention is softmax(q·kᵀ·scale + mask)·v with the softmax taken over
// softmaxAxis of the scores (-1, the keys, is right; -2, the queries, is
// the mistake). scale is used as given: 0 is not replaced by a default.
func Attention(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor, softmaxAxis int) *tensor.Tensor {
	scores := tensor.MulScalar(tensor.MatmulT(q, k), scale)
	if mask != nil {
		scores = tensor.Add(scores, mask)
	}
	return tensor.Matmul(Softmax(scores, softmaxAxis), v)
}

// AttentionMaskAfter adds the mask to the weights after the softmax.
func AttentionMaskAfter(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor) *tensor.Tensor {
	w := Softmax(tensor.MulScalar(tensor.MatmulT(q, k), scale), -1)
	return tensor.Matmul(tensor.Add(w, mask), v)
}

// KVHead maps query head j of hq to one of h key/value heads.
type KVHead func(j, hq, h int) int

// Grouped maps query head j to key/value head j / (hq/h), as it should.
func Grouped(j, hq, h int) int { return j / (hq / h) }

// Interleaved maps query head j to key/value head j mod h: the mistake of
// splitting the head axis as G x H instead of H x G.
func Interleaved(j, hq, h int) int { return j % h }

// GroupedAttention is grouped-query attention over q (N.. x Hq x L x D) and
// k, v (N.. x H x S x D), with query head j reading the key/value head
// kvHead picks, by copying heads rather than broadcasting.
func GroupedAttention(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor, kvHead KVHead) *tensor.Tensor {
	axis := q.NDim() - 3
	hq, h := q.Dim(axis), k.Dim(axis)
	idx := make([]int, hq)
	for j := range idx {
		idx[j] = kvHead(j, hq, h)
	}
	return Attention(q, tensor.Take(k, idx, axis), tensor.Take(v, idx, axis), scale, mask, -1)
}

// Linear is x·wᵀ + b over the last axis of x; b may be nil.
func Linear(x, w, b *tensor.Tensor) *tensor.Tensor {
	shape := x.Shape()
	y := tensor.MatmulT(tensor.Reshape(x, -1, shape[len(shape)-1]), w)
	if b != nil {
		y = tensor.Add(y, b)
	}
	shape[len(shape)-1] = w.Dim(0)
	return tensor.Reshape(y, shape...)
}

// RoPE rotates x (N x L x H x D) with row n starting at offsets[n] (nil:
// every row at 0), angles in float64. traditional pairs neighbours, else
// the two halves.
func RoPE(x *tensor.Tensor, offsets []int, base float64, traditional bool) *tensor.Tensor {
	n, l, h, d := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	src := x.Data()
	dst := make([]float32, len(src))
	half := d / 2
	for b := range n {
		start := 0
		if offsets != nil {
			start = offsets[b]
		}
		for t := range l {
			p := float64(start + t)
			for head := range h {
				at := ((b*l+t)*h + head) * d
				in, out := src[at:at+d], dst[at:at+d]
				for i := range half {
					angle := p * math.Pow(base, -float64(2*i)/float64(d))
					c, s := math.Cos(angle), math.Sin(angle)
					j, k := i, i+half
					if traditional {
						j, k = 2*i, 2*i+1
					}
					out[j] = float32(float64(in[j])*c - float64(in[k])*s)
					out[k] = float32(float64(in[j])*s + float64(in[k])*c)
				}
			}
		}
	}
	return tensor.New(dst, n, l, h, d)
}

// Mistake is a known way to get Qwen2's attention layer wrong.
type Mistake int

// The mistakes Qwen2Attention can make.
const (
	None               Mistake = iota
	TraditionalRoPE            // RoPE with neighbouring pairs instead of halves
	RoPEAfterTranspose         // RoPE on N x H x L x D: turned by head number, not position
	NoRoPE                     // no rotation at all
	ScaleByHidden              // 1/sqrt(E) instead of 1/sqrt(D)
	InterleavedKVHeads         // query head j reads key/value head j mod H
)

// AttentionWeights are a Qwen2 attention layer's weights ([out, in]).
type AttentionWeights struct {
	WQ, BQ, WK, BK, WV, BV, WO *tensor.Tensor
}

// Qwen2Attention is Qwen2's attention layer on x (N x L x E), positions from
// 0, with one mistake (or None).
func Qwen2Attention(x, mask *tensor.Tensor, w AttentionWeights, heads, kvHeads int, theta float64, m Mistake) *tensor.Tensor {
	n, l, e := x.Dim(0), x.Dim(1), x.Dim(2)
	d := e / heads
	split := func(wt, b *tensor.Tensor, h int) *tensor.Tensor {
		return tensor.Reshape(Linear(x, wt, b), n, l, h, d)
	}
	q, k, v := split(w.WQ, w.BQ, heads), split(w.WK, w.BK, kvHeads), split(w.WV, w.BV, kvHeads)
	heads1st := func(t *tensor.Tensor) *tensor.Tensor { return tensor.Transpose(t, 0, 2, 1, 3) }
	switch m {
	case NoRoPE:
	case RoPEAfterTranspose:
		// Given N x H x L x D, RoPE reads axis 1 (heads) as positions.
		q, k = heads1st(RoPE(heads1st(q), nil, theta, false)), heads1st(RoPE(heads1st(k), nil, theta, false))
	default:
		q, k = RoPE(q, nil, theta, m == TraditionalRoPE), RoPE(k, nil, theta, m == TraditionalRoPE)
	}
	scale := DefaultScale(d)
	if m == ScaleByHidden {
		scale = DefaultScale(e)
	}
	kvHead := KVHead(Grouped)
	if m == InterleavedKVHeads {
		kvHead = Interleaved
	}
	o := GroupedAttention(heads1st(q), heads1st(k), heads1st(v), scale, mask, kvHead)
	return Linear(tensor.Reshape(heads1st(o), n, l, e), w.WO, nil)
}

// MHAMistake is a known way to get Day 1's multi-head attention wrong.
type MHAMistake int

// The mistakes MultiHeadAttention can make.
const (
	MHAScaleByHidden MHAMistake = iota + 1 // 1/sqrt(E) instead of 1/sqrt(D)
	MHAReshapeOnly                         // heads split by one reshape to N x H x L x D, no transpose
)

// MultiHeadAttention is Day 1's multi-head attention with one mistake.
func MultiHeadAttention(query, key, value, mask, wq, wk, wv, wo *tensor.Tensor, heads int, m MHAMistake) *tensor.Tensor {
	n, l, e := query.Dim(0), query.Dim(1), query.Dim(2)
	d := e / heads
	split := func(x, w *tensor.Tensor) *tensor.Tensor {
		y := Linear(x, w, nil)
		if m == MHAReshapeOnly {
			return tensor.Reshape(y, n, heads, x.Dim(1), d)
		}
		return tensor.Transpose(tensor.Reshape(y, n, x.Dim(1), heads, d), 0, 2, 1, 3)
	}
	scale := DefaultScale(d)
	if m == MHAScaleByHidden {
		scale = DefaultScale(e)
	}
	o := Attention(split(query, wq), split(key, wk), split(value, wv), scale, mask, -1)
	if m == MHAReshapeOnly {
		o = tensor.Reshape(o, n, l, e)
	} else {
		o = tensor.Reshape(tensor.Transpose(o, 0, 2, 1, 3), n, l, e)
	}
	return Linear(o, wo, nil)
}
