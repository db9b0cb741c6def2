package day3

import (
	"fmt"
	"slices"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/scratch"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	w1day1 "github.com/tinyllm-go/tinyllm/solutions/week1/day1"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day2"
	w1day3 "github.com/tinyllm-go/tinyllm/solutions/week1/day3"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day4"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day5"
	w2day1 "github.com/tinyllm-go/tinyllm/solutions/week2/day1"
)

// CachedModel is a model with a KV cache (see internal/llm).
type CachedModel = llm.CachedModel

// KVCache is one layer's key/value cache (see internal/llm).
type KVCache = llm.KVCache

// Linear is one projection, x·Wᵀ + b, with its weight kept the way the
// checkpoint stores it: exactly one of Float and Packed is set.
type Linear struct {
	Float  *tensor.Tensor // Out x In, nil when the weight is packed
	Packed *PackedWeight  // nil when the weight is a float tensor
	Bias   *tensor.Tensor // Out values, nil for a projection without one

	// q4 is Packed as the engine's 8-bit-activation kernels take it, set
	// by NewQwen2ModelWeek2 where they apply (see fastQ4).
	q4 *tensor.Q4Matrix
}

// Forward maps x (N.. x In) to N.. x Out, through QuantizedLinear for a
// packed weight and Week 1's Linear for a float one.
func (l *Linear) Forward(x *tensor.Tensor) *tensor.Tensor {
	if l.q4 != nil {
		return forwardEach(nil, []string{""}, x, l)[0]
	}
	if l.Packed != nil {
		return QuantizedLinear(x, l.Packed, l.Bias)
	}
	return w1day1.Linear(x, l.Float, l.Bias)
}

// Embedding is the token table, float (Week 1's Embedding) or packed
// (VocabSize x HiddenSize): exactly one of Float and Packed is set.
type Embedding struct {
	Float  *day5.Embedding
	Packed *PackedWeight

	q4 *tensor.Q4Matrix // Packed for the 8-bit-activation kernels, or nil
}

// Forward gathers the rows of B x L token ids: B x L x HiddenSize float32
// vectors. A packed table dequantizes only the rows it gathers.
func (e *Embedding) Forward(tokens [][]int) *tensor.Tensor {
	if e.Packed == nil {
		return e.Float.Forward(tokens)
	}
	p := e.Packed
	b, l := len(tokens), 0
	if b > 0 {
		l = len(tokens[0])
	}
	per := 32 / p.Bits
	wordsPerRow, groups := p.In/per, p.In/p.GroupSize
	out := make([]float32, 0, b*l*p.In)
	for i, seq := range tokens {
		if len(seq) != l {
			panic(fmt.Sprintf("day3.Embedding.Forward: sequence %d has %d tokens, sequence 0 has %d", i, len(seq), l))
		}
		for _, id := range seq {
			if id < 0 || id >= p.Out {
				panic(fmt.Sprintf("day3.Embedding.Forward: token id %d is outside the vocabulary of %d", id, p.Out))
			}
			// One row is a 1 x In packed weight of its own.
			row := &PackedWeight{Out: 1, In: p.In, Bits: p.Bits, GroupSize: p.GroupSize,
				Words:  p.Words[id*wordsPerRow : (id+1)*wordsPerRow],
				Scales: rowOf(p.Scales, id, groups),
				Biases: rowOf(p.Biases, id, groups)}
			out = append(out, Dequantize(row).Data()...)
		}
	}
	return tensor.New(out, b, l, p.In)
}

// rowOf returns row r of t, a matrix of n columns, as a 1 x n tensor of
// t's dtype, without widening the rest of t.
func rowOf(t *tensor.Tensor, r, n int) *tensor.Tensor {
	switch t.DType() {
	case tensor.BFloat16:
		return tensor.FromBF16(t.Bits()[r*n:(r+1)*n], 1, n)
	case tensor.Float16:
		return tensor.FromF16(t.Bits()[r*n:(r+1)*n], 1, n)
	}
	return tensor.New(t.Data()[r*n:(r+1)*n], 1, n)
}

// AsLinear uses the table as the output head: N.. x HiddenSize gives
// N.. x VocabSize, on the packed table when it is packed.
func (e *Embedding) AsLinear(x *tensor.Tensor) *tensor.Tensor {
	if e.Packed == nil {
		return e.Float.AsLinear(x)
	}
	if e.q4 != nil {
		return tensor.MatmulQ4Each(x, e.q4)[0]
	}
	return QuantizedMatmul(x, e.Packed)
}

// Qwen2AttentionWeek2 is W2D1's cached attention with its four
// projections as Linear layers, so that each can be packed or float.
type Qwen2AttentionWeek2 struct {
	NumHeads, NumKVHeads, HeadDim int
	Q, K, V, O                    *Linear // q, k and v with their biases
	RoPE                          *day2.RoPE
}

// Forward maps x (B x L x HiddenSize), the tokens at positions offset …
// offset+L-1, to B x L x HiddenSize, as W2D1's Qwen2AttentionWeek2.Forward.
func (a *Qwen2AttentionWeek2) Forward(x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	return a.forward(nil, x, offset, cache, mask)
}

// forward is Forward with its activations in ws (nil: new tensors).
func (a *Qwen2AttentionWeek2) forward(ws *scratch.Buffers, x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	if got := cache.Offset(); got != offset {
		panic(fmt.Sprintf("day3.Qwen2AttentionWeek2.Forward: tokens start at position %d but the cache holds %d positions", offset, got))
	}
	n, l := x.Dim(0), x.Dim(1)
	qkv := forwardEach(ws, []string{"attn.q", "attn.k", "attn.v"}, x, a.Q, a.K, a.V)
	at := []int{offset}
	q := a.RoPE.Forward(tensor.Reshape(qkv[0], n, l, a.NumHeads, a.HeadDim), at)
	k := a.RoPE.Forward(tensor.Reshape(qkv[1], n, l, a.NumKVHeads, a.HeadDim), at)
	v := tensor.Reshape(qkv[2], n, l, a.NumKVHeads, a.HeadDim)
	q, k, v = ws.HeadsFirst("attn.qh", q), ws.HeadsFirst("attn.kh", k), ws.HeadsFirst("attn.vh", v)
	// W2D1's reference cache is read where it lies (llm.AttendInCache);
	// any other cache is gathered by its UpdateAndFetch.
	var o *tensor.Tensor
	ok := false
	if attend := llm.AttendInCache; attend != nil {
		o, ok = attend(q, k, v, cache, mask, ws.Tensor("attn.o", q.Shape()...))
	}
	if !ok {
		keys, values := cache.UpdateAndFetch(k, v)
		o = w1day3.ScaledDotProductAttentionGrouped(q, keys, values, 0, mask)
	}
	o = tensor.Reshape(ws.HeadsFirst("attn.ctx", o), n, l, a.NumHeads*a.HeadDim)
	return forwardEach(ws, []string{"attn.out"}, o, a.O)[0]
}

// Qwen2MLPWeek2 is Week 1's SwiGLU MLP, down(silu(gate(x))·up(x)), with
// Linear projections.
type Qwen2MLPWeek2 struct {
	Gate, Up, Down *Linear
}

// Forward maps x of shape N.. x HiddenSize to the same shape.
func (m *Qwen2MLPWeek2) Forward(x *tensor.Tensor) *tensor.Tensor {
	return m.forward(nil, x)
}

// forward is Forward with its activations in ws (nil: new tensors).
func (m *Qwen2MLPWeek2) forward(ws *scratch.Buffers, x *tensor.Tensor) *tensor.Tensor {
	// A decode step (one row) never takes the row blocks: test that first.
	if ws != nil && x.NDim() > 0 && x.Size()/x.Dim(-1) > mlpRows {
		gate, down := q4Of([]*Linear{m.Gate, m.Up}), q4Of([]*Linear{m.Down})
		if gate != nil && down != nil && x.Dim(-1) == gate[0].In && m.Gate.Bias == nil && m.Up.Bias == nil && m.Down.Bias == nil {
			return m.forwardRows(ws, x, gate[0], gate[1], down[0])
		}
	}
	gu := forwardEach(ws, []string{"mlp.gate", "mlp.up"}, x, m.Gate, m.Up)
	// SiLU(gate)·up over gate, which the product just made: Week 1's
	// SiLU and Mul without their two intermediate tensors.
	return forwardEach(ws, []string{"mlp.out"}, tensor.SwiGLUInPlace(gu[0], gu[1]), m.Down)[0]
}

// mlpRows is how many rows of a prefill piece the MLP takes at a time on
// 4-bit weights with 8-bit activations. Its gate and up outputs are the
// largest activations of a pass (2 x 4864 floats a row for Qwen2-0.5B:
// 5 MB for a piece of 128 rows, as much as all the others together);
// 32 rows at a time keep them at 1.2 MB. The products take x four rows
// at a time whatever the block, so this costs them nothing measurable.
const mlpRows = 32

// forwardRows is forward on 8-bit activations over blocks of mlpRows
// rows of x, each written into its rows of ws's "mlp.out".
func (m *Qwen2MLPWeek2) forwardRows(ws *scratch.Buffers, x *tensor.Tensor, gate, up, down *tensor.Q4Matrix) *tensor.Tensor {
	shape := x.Shape()
	dim := shape[len(shape)-1]
	rows, xd := x.Size()/dim, x.Data() // float32 x: its own storage, not a copy
	out := ws.Tensor("mlp.out", shape...)
	od := out.Data()
	for r0 := 0; r0 < rows; r0 += mlpRows {
		n := min(mlpRows, rows-r0)
		gu := tensor.MatmulQ4EachInto([]*tensor.Tensor{ws.Tensor("mlp.gate", n, gate.Out), ws.Tensor("mlp.up", n, up.Out)},
			tensor.New(xd[r0*dim:(r0+n)*dim], n, dim), gate, up)
		tensor.MatmulQ4EachInto([]*tensor.Tensor{tensor.New(od[r0*dim:(r0+n)*dim], n, dim)},
			tensor.SwiGLUInPlace(gu[0], gu[1]), down)
	}
	return out
}

// forwardEach is Forward of each of ls on the same x. When all are packed,
// the engine multiplies them in one pass (tensor.MatmulPackedEach, or
// tensor.MatmulQ4Each with 8-bit activations): in a decode step that is
// one hand-off to the cores instead of three for q, k and v, and x is
// readied once. The results are the same as one at a time. With 8-bit
// activations the products go into ws's buffers of the given names (one
// per layer of ls); the other paths make new tensors.
func forwardEach(ws *scratch.Buffers, names []string, x *tensor.Tensor, ls ...*Linear) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(ls))
	if q4s := q4Of(ls); q4s != nil && x.NDim() > 0 && x.Dim(-1) == q4s[0].In {
		shape := x.Shape()
		for i, w := range q4s {
			shape[len(shape)-1] = w.Out
			out[i] = ws.Tensor(names[i], shape...)
		}
		for i, y := range tensor.MatmulQ4EachInto(out, x, q4s...) {
			if ls[i].Bias != nil {
				tensor.AddRowsInPlace(y, ls[i].Bias)
			}
		}
		return out
	}
	pms := make([]*tensor.PackedMatrix, len(ls))
	for i, l := range ls {
		if l.Packed == nil || x.NDim() == 0 || x.Dim(-1) != l.Packed.In {
			for i, l := range ls {
				out[i] = l.Forward(x)
			}
			return out
		}
		pms[i] = packedMatrix(l.Packed)
	}
	for i, y := range tensor.MatmulPackedEach(x, pms...) {
		if ls[i].Bias != nil {
			y = tensor.Add(y, ls[i].Bias)
		}
		out[i] = y
	}
	return out
}

// q4Of returns the Q4Matrix of each of ls, or nil unless all have one.
func q4Of(ls []*Linear) []*tensor.Q4Matrix {
	q4s := make([]*tensor.Q4Matrix, len(ls))
	for i, l := range ls {
		if l.q4 == nil || l.q4.In != ls[0].q4.In {
			return nil
		}
		q4s[i] = l.q4
	}
	return q4s
}

// fastQ4 returns p as a tensor.Q4Matrix for the engine's 8-bit-activation
// kernels, or nil where they do not apply: unless the program allowed them
// (tensor.AllowInt8Activations, which the tinyllm command does) on a
// machine that has them (amd64 with AVX2), for 8-bit codes, for groups
// other than 64, and for scales and biases that are not bf16. The matrix
// shares p's memory.
//
// Rounding each activation to 8 bits (one scale per 64 inputs) moves the
// logits slightly (see the W2D3 chapter) and lets the product multiply
// small integers, which AVX2 does 32 at a time. The graded functions of
// the day (QuantizedMatmul, QuantizedLinear) and the model as the checks
// build it stay float-exact.
func fastQ4(p *PackedWeight) *tensor.Q4Matrix {
	if !tensor.Int8Activations() || p.Bits != 4 || p.GroupSize != 64 ||
		p.Scales.DType() != tensor.BFloat16 || p.Biases.DType() != tensor.BFloat16 {
		return nil
	}
	return &tensor.Q4Matrix{Out: p.Out, In: p.In, Words: p.Words, Scales: p.Scales.Bits(), Biases: p.Biases.Bits()}
}

// Qwen2TransformerBlockWeek2 is the decoder layer: Week 1's norms and two
// residuals around this day's attention and MLP.
type Qwen2TransformerBlockWeek2 struct {
	InputNorm, PostAttentionNorm *day4.RMSNorm
	Attention                    *Qwen2AttentionWeek2
	MLP                          *Qwen2MLPWeek2
}

// Forward maps x (B x L x HiddenSize) at positions offset … offset+L-1 to
// the same shape; cache and mask as in Qwen2AttentionWeek2.Forward.
func (b *Qwen2TransformerBlockWeek2) Forward(x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	return b.forward(nil, x, offset, cache, mask)
}

// forward is Forward with the layer's activations in ws (nil: new
// tensors), as W2D1's: Week 1's norms in one pass over each row (the same
// values as its five whole-tensor operations, which in a 4-bit decode step
// cost as much as a tenth of the products' time), and each residual added
// into the branch's output, which the layer owns. With 8-bit activations
// the result is ws's "mlp.out", which may be x itself: it is written
// after x is read for the last time.
func (b *Qwen2TransformerBlockWeek2) forward(ws *scratch.Buffers, x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	n1 := ws.RMSNorm("norm", x, b.InputNorm.Weight, b.InputNorm.Eps)
	h := residual(x, b.Attention.forward(ws, n1, offset, cache, mask))
	n2 := ws.RMSNorm("norm", h, b.PostAttentionNorm.Weight, b.PostAttentionNorm.Eps)
	return residual(h, b.MLP.forward(ws, n2))
}

// residual is tensor.Add(x, delta) for a delta the layer just made (a
// product of its own, or its buffer), added into delta: the same values
// without a new tensor.
func residual(x, delta *tensor.Tensor) *tensor.Tensor {
	if delta.DType() != tensor.Float32 || !slices.Equal(x.Shape(), delta.Shape()) {
		return tensor.Add(x, delta)
	}
	return tensor.AddInPlace(delta, x)
}

// Qwen2ModelWeek2 is the Week 2 model with a KV cache whose weight
// matrices stay as the checkpoint stores them: packed for an MLX quantized
// checkpoint, float (bf16, f16, f32) otherwise.
type Qwen2ModelWeek2 struct {
	Config    checkpoint.Config
	Embedding *Embedding
	Layers    []*Qwen2TransformerBlockWeek2
	Norm      *day4.RMSNorm
	LMHead    *Linear // nil when the embeddings are tied

	// buffers keeps the activations of a forward pass for the next one,
	// as W2D1's model does (internal/scratch); nil allocates them all.
	buffers *scratch.Buffers
}

// NewQwen2ModelWeek2 builds the model from an open checkpoint, with the
// tensor names and shapes of day5.NewQwen2ModelWeek1. A weight the
// checkpoint stores packed (ck.IsPacked) is kept packed; the q/k/v biases
// and the norm weights are float tensors in every checkpoint.
func NewQwen2ModelWeek2(ck *checkpoint.Checkpoint) (*Qwen2ModelWeek2, error) {
	c := ck.Config
	hd := c.HeadDim()
	qDim, kvDim := c.NumAttentionHeads*hd, c.NumKeyValueHeads*hd
	var err error
	vector := func(name string, n int) *tensor.Tensor {
		if err != nil {
			return nil
		}
		var t *tensor.Tensor
		// Widened once here: a step reads every norm and bias whole (see
		// W2D1's NewQwen2ModelWeek2).
		t, err = ck.Tensor(name, n)
		return tensor.AsFloat32(t)
	}
	matrix := func(name string, out, in int) (*tensor.Tensor, *PackedWeight, *tensor.Q4Matrix) {
		if err != nil {
			return nil, nil, nil
		}
		if !ck.IsPacked(name) {
			var t *tensor.Tensor
			t, err = ck.Tensor(name, out, in)
			return t, nil, nil
		}
		var p *PackedWeight
		p, err = ck.Packed(name, out, in)
		if err != nil {
			return nil, nil, nil
		}
		if q4 := fastQ4(p); q4 != nil {
			// The 8-bit-activation kernels read the checkpoint's bf16
			// scales and biases where they lie.
			return nil, p, q4
		}
		// Scales and biases are widened to float32 once here (a few percent
		// of the packed size), not on every product.
		w := *p
		w.Scales, w.Biases = tensor.AsType(p.Scales, tensor.Float32), tensor.AsType(p.Biases, tensor.Float32)
		return nil, &w, nil
	}
	linear := func(name string, out, in int, bias bool) *Linear {
		l := &Linear{}
		l.Float, l.Packed, l.q4 = matrix(name+".weight", out, in)
		if bias {
			l.Bias = vector(name+".bias", out)
		}
		return l
	}
	m := &Qwen2ModelWeek2{Config: c, Embedding: &Embedding{}, buffers: scratch.New()}
	table, packed, q4 := matrix("model.embed_tokens.weight", c.VocabSize, c.HiddenSize)
	if packed != nil {
		m.Embedding.Packed, m.Embedding.q4 = packed, q4
	} else {
		m.Embedding.Float = day5.NewEmbedding(c.VocabSize, c.HiddenSize, table)
	}
	eps := float32(c.RMSNormEps)
	for i := range c.NumHiddenLayers {
		p := fmt.Sprintf("model.layers.%d.", i)
		m.Layers = append(m.Layers, &Qwen2TransformerBlockWeek2{
			InputNorm:         day4.NewRMSNorm(c.HiddenSize, vector(p+"input_layernorm.weight", c.HiddenSize), eps),
			PostAttentionNorm: day4.NewRMSNorm(c.HiddenSize, vector(p+"post_attention_layernorm.weight", c.HiddenSize), eps),
			Attention: &Qwen2AttentionWeek2{
				NumHeads: c.NumAttentionHeads, NumKVHeads: c.NumKeyValueHeads, HeadDim: hd,
				Q:    linear(p+"self_attn.q_proj", qDim, c.HiddenSize, true),
				K:    linear(p+"self_attn.k_proj", kvDim, c.HiddenSize, true),
				V:    linear(p+"self_attn.v_proj", kvDim, c.HiddenSize, true),
				O:    linear(p+"self_attn.o_proj", c.HiddenSize, qDim, false),
				RoPE: day2.NewRoPE(hd, c.MaxPositionEmbeddings, c.RopeTheta, false),
			},
			MLP: &Qwen2MLPWeek2{
				Gate: linear(p+"mlp.gate_proj", c.IntermediateSize, c.HiddenSize, false),
				Up:   linear(p+"mlp.up_proj", c.IntermediateSize, c.HiddenSize, false),
				Down: linear(p+"mlp.down_proj", c.HiddenSize, c.IntermediateSize, false),
			},
		})
	}
	m.Norm = day4.NewRMSNorm(c.HiddenSize, vector("model.norm.weight", c.HiddenSize), eps)
	if !c.TieWordEmbeddings {
		m.LMHead = linear("lm_head", c.VocabSize, c.HiddenSize, false)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// NewCaches returns one empty W2D1 FullCache per layer.
func (m *Qwen2ModelWeek2) NewCaches() []KVCache {
	caches := make([]KVCache, len(m.Layers))
	for i := range caches {
		caches[i] = w2day1.NewFullCache()
	}
	return caches
}

// Forward runs B x L new token ids at positions offset … offset+L-1
// through the model and returns their logits, B x L x VocabSize; each of
// the caches (one per layer, offset positions) grows by L.
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

// layers embeds the new tokens and runs them through every decoder layer:
// B x L x HiddenSize, which may be one of ws's buffers.
func (m *Qwen2ModelWeek2) layers(ws *scratch.Buffers, tokens [][]int, offset int, caches []KVCache) *tensor.Tensor {
	if len(caches) != len(m.Layers) {
		panic(fmt.Sprintf("day3.Qwen2ModelWeek2: %d caches for %d layers", len(caches), len(m.Layers)))
	}
	h := m.Embedding.Forward(tokens)
	l := h.Dim(1)
	var mask *tensor.Tensor
	if l > 1 {
		mask = w1day3.CausalMask(l, offset+l)
	}
	for i, layer := range m.Layers {
		h = layer.forward(ws, h, offset, caches[i], mask)
	}
	return h
}

// head is the final norm and the output projection: new logits, which the
// caller keeps.
func (m *Qwen2ModelWeek2) head(ws *scratch.Buffers, h *tensor.Tensor) *tensor.Tensor {
	h = ws.RMSNorm("norm", h, m.Norm.Weight, m.Norm.Eps)
	if m.LMHead == nil {
		return m.Embedding.AsLinear(h)
	}
	return m.LMHead.Forward(h)
}
