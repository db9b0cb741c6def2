package day1

import (
	"fmt"
	"math"
	"sync"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/scratch"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	w1day1 "github.com/tinyllm-go/tinyllm/solutions/week1/day1"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day3"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day4"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day5"
)

// CachedModel is a model with a KV cache: Forward(tokens, offset, caches),
// ForwardLast and NewCaches. It is declared once, in internal/llm, for every
// day and the command-line program.
type CachedModel = llm.CachedModel

// Qwen2AttentionWeek2 is Week 1's Qwen2Attention (the same weights and RoPE
// tables, embedded) with a forward pass that continues a sequence from a
// cache instead of starting it at position 0.
type Qwen2AttentionWeek2 struct {
	*day3.Qwen2Attention
}

// Forward maps x (B x L x HiddenSize), the tokens at positions offset …
// offset+L-1, to B x L x HiddenSize. It rotates this step's queries and keys
// for their positions, appends the keys and values to cache (which must
// hold offset positions), and lets every query attend to all offset+L
// cached positions. mask is nil (a single new token sees everything) or an
// additive L x (offset+L) mask, such as day3.CausalMask(L, offset+L).
func (a *Qwen2AttentionWeek2) Forward(x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	return a.forward(nil, x, offset, cache, mask)
}

// forward is Forward with its activations in ws (nil: new tensors). The
// result is ws's "attn.out".
func (a *Qwen2AttentionWeek2) forward(ws *scratch.Buffers, x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	if got := cache.Offset(); got != offset {
		panic(fmt.Sprintf("day1.Qwen2AttentionWeek2.Forward: tokens start at position %d but the cache holds %d positions", offset, got))
	}
	n, l := x.Dim(0), x.Dim(1)
	// Week 1's Linear for each of q, k and v, in one pass: in a decode step
	// the three products share one hand-off to the cores.
	qkv := tensor.MatmulTEachInto([]*tensor.Tensor{
		ws.Tensor("attn.q", n, l, a.WQ.Dim(0)), ws.Tensor("attn.k", n, l, a.WK.Dim(0)), ws.Tensor("attn.v", n, l, a.WV.Dim(0)),
	}, x, a.WQ, a.WK, a.WV)
	project := func(y, b *tensor.Tensor, heads int) *tensor.Tensor {
		if b != nil {
			tensor.AddRowsInPlace(y, b)
		}
		return tensor.Reshape(y, n, l, heads, a.HeadDim)
	}
	// Only the new positions are rotated: the cached keys were rotated for
	// their own positions when they were new, and a rotation depends on
	// nothing but the position.
	at := []int{offset}
	q := a.RoPE.Forward(project(qkv[0], a.BQ, a.NumHeads), at)
	k := a.RoPE.Forward(project(qkv[1], a.BK, a.NumKVHeads), at)
	v := project(qkv[2], a.BV, a.NumKVHeads)
	q, k, v = ws.HeadsFirst("attn.qh", q), ws.HeadsFirst("attn.kh", k), ws.HeadsFirst("attn.vh", v)
	var o *tensor.Tensor
	if fc, ok := cache.(*FullCache); ok {
		// The reference's own cache is read where it lies, one head's
		// block at a time, instead of being gathered into one tensor.
		fc.append("append", k, v)
		o = attendInPlace(q, fc, mask, ws.Tensor("attn.o", q.Shape()...))
	} else {
		keys, values := cache.UpdateAndFetch(k, v)
		o = day3.ScaledDotProductAttentionGrouped(q, keys, values, 0, mask)
	}
	o = tensor.Reshape(ws.HeadsFirst("attn.ctx", o), n*l, a.NumHeads*a.HeadDim)
	// Week 1's Linear, into the layer's own buffer.
	return tensor.MatmulTInto(ws.Tensor("attn.out", n, l, a.WO.Dim(0)), o, a.WO)
}

func init() { llm.AttendInCache = appendAndAttend }

// appendAndAttend is llm.AttendInCache for the reference's FullCache: the
// Week 2 engines of later days (W2D3's 4-bit model) attend in place too.
func appendAndAttend(q, k, v *tensor.Tensor, cache KVCache, mask, dst *tensor.Tensor) (*tensor.Tensor, bool) {
	fc, ok := cache.(*FullCache)
	if !ok {
		return nil, false
	}
	fc.append("append", k, v)
	return attendInPlace(q, fc, mask, dst), true
}

// attendInPlace is grouped-query attention of q (B x Hq x L x D) over
// every position cached in c, reading each key/value head's block in the
// cache's own storage: the Hq/H query heads that share a key/value head
// attend to its block together. mask is as in Qwen2AttentionWeek2.Forward.
// The result is written into dst, q's shape, or a new tensor when dst is
// nil.
func attendInPlace(q *tensor.Tensor, c *FullCache, mask, dst *tensor.Tensor) *tensor.Tensor {
	b, hq, l, d := q.Dim(0), q.Dim(1), q.Dim(2), q.Dim(3)
	if hq%c.h != 0 || b != c.b || d != c.d {
		panic(fmt.Sprintf("day1.attendInPlace: queries %v do not fit a cache of %v (B x H x S x D)", q.Shape(), []int{c.b, c.h, c.offset, c.d}))
	}
	g := hq / c.h
	qd := q.Data()
	if dst == nil {
		dst = tensor.Zeros(q.Shape()...)
	}
	out := dst.Data()
	if l == 1 && mask == nil {
		clear(out) // attendOne adds the weighted values into it
		attendOne(qd, out, c, g)
		return dst
	}
	if attendPrompt(qd, out, c, g, l, mask) {
		return dst
	}
	// The key/value heads are independent: attend to them on different
	// cores. Each one's products and softmax are small in a decode step
	// (one query row per head), too small to be worth splitting further,
	// so this is where the parallelism is; the operations inside run
	// inline on whichever core took the head.
	tensor.ParallelFor(b*c.h, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			bi, h := i/c.h, i%c.h
			at := (bi*hq + h*g) * l * d
			group := tensor.New(qd[at:at+g*l*d], g, l, d)
			kb, vb := c.block(bi, h)
			keys, values := tensor.New(kb, 1, c.offset, d), tensor.New(vb, 1, c.offset, d)
			copy(out[at:at+g*l*d], w1day1.ScaledDotProductAttentionSimple(group, keys, values, 0, mask).Data())
		}
	})
	return dst
}

// attendOne is attendInPlace for a decode step: one new token, no mask.
// The general path builds a scores tensor, a softmax and a product per
// key/value head from whole-tensor operations; for one query row per head
// those cost more than the arithmetic (about a millisecond per token over
// Qwen2-0.5B's 24 layers), so each query head's row is done here with the
// same kernels on slices: the scores are dot products with the cached
// keys, the weights their softmax, the output the weighted sum of the
// cached values.
//
// The g query heads that share a key/value head take the cached rows
// attendBlock at a time, each head in turn, so that a block is read from
// memory once and then from the L1 cache by the other g-1 heads. Head by
// head over the whole cache instead, a long cache is read g times a step:
// at 2,048 positions Qwen2-0.5B's 512 KB of keys per key/value head and
// layer, 7 times, from the L3 cache at best.
func attendOne(qd, out []float32, c *FullCache, g int) { attendRows(qd, out, c, g, attendBlock) }

// attendRows is attendOne taking the cached rows block at a time; a block
// of c.offset rows is the order before blocks, each query head over the
// whole cache in turn (BenchmarkAttendOne compares the two).
func attendRows(qd, out []float32, c *FullCache, g, block int) {
	d, s := c.d, c.offset
	scale := float32(1 / math.Sqrt(float64(d)))
	tensor.ParallelFor(c.b*c.h, 1, func(lo, hi int) {
		buf := attendScratch.Get().(*[]float32)
		defer attendScratch.Put(buf)
		if n := g*s + g*d + g; cap(*buf) < n {
			*buf = make([]float32, n+n/4) // room for the next steps' longer cache
		}
		scores, qs, sums := (*buf)[:g*s], (*buf)[g*s:g*s+g*d], (*buf)[g*s+g*d:g*s+g*d+g]
		for i := lo; i < hi; i++ {
			kb, vb := c.block(i/c.h, i%c.h)
			for j := range g {
				at := (i*g + j) * d // query head h·g+j of batch row i/c.h
				for t, x := range qd[at : at+d] {
					qs[j*d+t] = x * scale // d multiplications instead of s
				}
			}
			for r0 := 0; r0 < s; r0 += block {
				r1 := min(r0+block, s)
				for j := range g {
					tensor.DotRows(qs[j*d:(j+1)*d], kb, r0*d, d, scores[j*s+r0:j*s+r1])
				}
			}
			for j := range g {
				row := scores[j*s : (j+1)*s]
				top := maxOf(row)
				for t := range row {
					row[t] -= top
				}
				tensor.ExpSlice(row, row)
				sums[j] = sumOf(row)
			}
			for r0 := 0; r0 < s; r0 += block {
				r1 := min(r0+block, s)
				for j := range g {
					at := (i*g + j) * d
					tensor.SumRows(scores[j*s+r0:j*s+r1], vb, r0*d, d, out[at:at+d])
				}
			}
			for j := range g {
				o := out[(i*g+j)*d : (i*g+j+1)*d]
				for t := range o {
					o[t] /= sums[j] // the weights' normalisation, on d outputs instead of s weights
				}
			}
		}
	})
}

// attendScratch holds the scores, scaled queries and sums of attendRows
// from one step to the next, one slice per core at work: a step's
// attention then leaves no garbage (g·S floats a key/value head and layer,
// 57 KB at 2,048 positions of Qwen2-0.5B), and the collector runs less.
var attendScratch = sync.Pool{New: func() any { return new([]float32) }}

// attendBlock is the cached positions attendOne takes at a time: 64 rows
// of a head's keys or values, 16 KB for Qwen2-0.5B's 64 floats a row,
// which stay in a 32 KB L1 cache while the g query heads read them.
const attendBlock = 64

// maxOf and sumOf are the largest value and the sum of a row of scores
// (at least one), with four running values each, so that a long row is not
// one chain of dependent operations (a float addition waits several cycles
// for the one before it).
func maxOf(v []float32) float32 {
	m := [4]float32{v[0], v[0], v[0], v[0]}
	i := 0
	for ; i+4 <= len(v); i += 4 {
		for j, x := range v[i : i+4] {
			if x > m[j] {
				m[j] = x
			}
		}
	}
	for _, x := range v[i:] {
		if x > m[0] {
			m[0] = x
		}
	}
	return max(m[0], m[1], m[2], m[3])
}

func sumOf(v []float32) float32 {
	var s [4]float32
	i := 0
	for ; i+4 <= len(v); i += 4 {
		s[0] += v[i]
		s[1] += v[i+1]
		s[2] += v[i+2]
		s[3] += v[i+3]
	}
	for _, x := range v[i:] {
		s[0] += x
	}
	return (s[0] + s[1]) + (s[2] + s[3])
}

// Qwen2TransformerBlockWeek2 is Week 1's decoder layer with the cached
// attention: the same norms and MLP, the same two residuals.
type Qwen2TransformerBlockWeek2 struct {
	InputNorm, PostAttentionNorm *day4.RMSNorm
	Attention                    *Qwen2AttentionWeek2
	MLP                          *day4.Qwen2MLP
}

// Forward maps x (B x L x HiddenSize) at positions offset … offset+L-1 to
// the same shape; cache and mask as in Qwen2AttentionWeek2.Forward.
func (b *Qwen2TransformerBlockWeek2) Forward(x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	return b.forward(nil, x, offset, cache, mask)
}

// forward is Forward with the layer's activations in ws (nil: new
// tensors). The result is ws's "mlp.out", which may be x itself (the
// previous layer's result): it is written last, after x is read for the
// last time.
func (b *Qwen2TransformerBlockWeek2) forward(ws *scratch.Buffers, x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	// Each residual is added into the output of the branch, a buffer of
	// this layer's own: the same values as tensor.Add, no new tensor.
	n1 := ws.RMSNorm("norm", x, b.InputNorm.Weight, b.InputNorm.Eps)
	h := tensor.AddInPlace(b.Attention.forward(ws, n1, offset, cache, mask), x)
	n2 := ws.RMSNorm("norm", h, b.PostAttentionNorm.Weight, b.PostAttentionNorm.Eps)
	return tensor.AddInPlace(mlp(ws, b.MLP, n2), h)
}

// mlp is m.Forward(x) with its activations in ws (nil: new tensors): the
// result is ws's "mlp.out".
func mlp(ws *scratch.Buffers, m *day4.Qwen2MLP, x *tensor.Tensor) *tensor.Tensor {
	shape := x.Shape()
	rows := x.Size() / m.Dim
	gu := tensor.MatmulTEachInto([]*tensor.Tensor{ws.Tensor("mlp.gate", rows, m.HiddenDim), ws.Tensor("mlp.up", rows, m.HiddenDim)},
		tensor.Reshape(x, rows, m.Dim), m.WGate, m.WUp)
	out := ws.Tensor("mlp.out", shape...)
	tensor.MatmulTInto(out, tensor.SwiGLUInPlace(gu[0], gu[1]), m.WDown)
	return out
}

// Qwen2ModelWeek2 is the whole model with a KV cache: the weights of the
// Week 1 model, and a forward pass that takes only the new tokens, the
// position of the first of them, and one cache per layer.
type Qwen2ModelWeek2 struct {
	Config    checkpoint.Config
	Embedding *day5.Embedding
	Layers    []*Qwen2TransformerBlockWeek2
	Norm      *day4.RMSNorm
	LMHead    *tensor.Tensor // nil when the embeddings are tied

	// buffers keeps the activations of a forward pass for the next one
	// (see internal/scratch): after the first pass over the longest
	// piece, a prefill or a decode step allocates only its logits and a
	// few small tensors. nil (a model built by hand) allocates them all.
	buffers *scratch.Buffers
}

// NewQwen2ModelWeek2 builds the model from an open checkpoint, with the same
// tensors, shapes and errors as day5.NewQwen2ModelWeek1.
func NewQwen2ModelWeek2(ck *checkpoint.Checkpoint) (*Qwen2ModelWeek2, error) {
	w1, err := day5.NewQwen2ModelWeek1(ck)
	if err != nil {
		return nil, err
	}
	// A decode step reads every norm and bias whole, and reading a 16-bit
	// tensor's values (tensor.Data) widens them into a new slice each
	// time: about 300 KB of garbage a Qwen2-0.5B step, enough for the
	// collector to run at every step. Widened once here, they are read in
	// place; the values are the same, since float32 holds every bf16 and
	// f16 exactly.
	m := &Qwen2ModelWeek2{Config: w1.Config, Embedding: w1.Embedding, Norm: widenNorm(w1.Norm), LMHead: w1.LMHead, buffers: scratch.New()}
	for _, l := range w1.Layers {
		a := *l.Attention
		a.BQ, a.BK, a.BV = tensor.AsFloat32(a.BQ), tensor.AsFloat32(a.BK), tensor.AsFloat32(a.BV)
		m.Layers = append(m.Layers, &Qwen2TransformerBlockWeek2{
			InputNorm: widenNorm(l.InputNorm), PostAttentionNorm: widenNorm(l.PostAttentionNorm),
			Attention: &Qwen2AttentionWeek2{&a}, MLP: l.MLP,
		})
	}
	return m, nil
}

// widenNorm is a copy of n with its weights in float32.
func widenNorm(n *day4.RMSNorm) *day4.RMSNorm {
	c := *n
	c.Weight = tensor.AsFloat32(c.Weight)
	return &c
}

// NewCaches returns one empty FullCache per layer, for one batch of
// sequences.
func (m *Qwen2ModelWeek2) NewCaches() []KVCache {
	caches := make([]KVCache, len(m.Layers))
	for i := range caches {
		caches[i] = NewFullCache()
	}
	return caches
}

// Forward runs B x L new token ids, at positions offset … offset+L-1 of
// every sequence, through the model and returns their logits,
// B x L x VocabSize. caches holds one cache per layer, each with offset
// positions; each grows by L. Prefill is a call with offset 0 and the whole
// prompt; a decode step is a call with one token.
func (m *Qwen2ModelWeek2) Forward(tokens [][]int, offset int, caches []KVCache) *tensor.Tensor {
	ws := m.buffers.Claim()
	defer ws.Release()
	return m.head(ws, m.layers(ws, tokens, offset, caches))
}

// ForwardLast is Forward for the last position alone: B x 1 x VocabSize
// logits. The caches still grow by all L positions.
func (m *Qwen2ModelWeek2) ForwardLast(tokens [][]int, offset int, caches []KVCache) *tensor.Tensor {
	ws := m.buffers.Claim()
	defer ws.Release()
	h := m.layers(ws, tokens, offset, caches)
	return m.head(ws, tensor.Take(h, []int{h.Dim(1) - 1}, 1))
}

// layers embeds the new tokens and runs them through every decoder layer,
// each with its own cache: B x L x HiddenSize, in ws (nil: a new tensor).
func (m *Qwen2ModelWeek2) layers(ws *scratch.Buffers, tokens [][]int, offset int, caches []KVCache) *tensor.Tensor {
	if len(caches) != len(m.Layers) {
		panic(fmt.Sprintf("day1.Qwen2ModelWeek2: %d caches for %d layers", len(caches), len(m.Layers)))
	}
	h := m.Embedding.Forward(tokens)
	l := h.Dim(1)
	// The new queries sit at the bottom of an L x (offset+L) score matrix:
	// query i may see every cached position and the new ones up to itself.
	// A single token sees everything, so it needs no mask at all.
	var mask *tensor.Tensor
	if l > 1 {
		mask = day3.CausalMask(l, offset+l)
	}
	for i, layer := range m.Layers {
		h = layer.forward(ws, h, offset, caches[i], mask)
	}
	return h
}

// head applies the final norm and the output projection: B x P x
// HiddenSize hidden states give B x P x VocabSize logits, a new tensor
// (the caller keeps it; ws only holds the norm's output).
func (m *Qwen2ModelWeek2) head(ws *scratch.Buffers, h *tensor.Tensor) *tensor.Tensor {
	h = ws.RMSNorm("norm", h, m.Norm.Weight, m.Norm.Eps)
	if m.LMHead == nil {
		return m.Embedding.AsLinear(h)
	}
	return w1day1.Linear(h, m.LMHead, nil)
}
