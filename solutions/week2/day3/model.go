package day3

import (
	"fmt"
	"slices"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	w1day1 "github.com/tinyllm-go/tinyllm/solutions/week1/day1"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day2"
	w1day3 "github.com/tinyllm-go/tinyllm/solutions/week1/day3"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day4"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day5"
	w2day1 "github.com/tinyllm-go/tinyllm/solutions/week2/day1"
	fused "github.com/tinyllm-go/tinyllm/solutions/week2/day5"
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
		return forwardEach(x, l)[0]
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
	if got := cache.Offset(); got != offset {
		panic(fmt.Sprintf("day3.Qwen2AttentionWeek2.Forward: tokens start at position %d but the cache holds %d positions", offset, got))
	}
	n, l := x.Dim(0), x.Dim(1)
	qkv := forwardEach(x, a.Q, a.K, a.V)
	at := []int{offset}
	q := a.RoPE.Forward(tensor.Reshape(qkv[0], n, l, a.NumHeads, a.HeadDim), at)
	k := a.RoPE.Forward(tensor.Reshape(qkv[1], n, l, a.NumKVHeads, a.HeadDim), at)
	v := tensor.Reshape(qkv[2], n, l, a.NumKVHeads, a.HeadDim)
	q, k, v = headsFirst(q), headsFirst(k), headsFirst(v)
	// W2D1's reference cache is read where it lies (llm.AttendInCache);
	// any other cache is gathered by its UpdateAndFetch.
	var o *tensor.Tensor
	ok := false
	if attend := llm.AttendInCache; attend != nil {
		o, ok = attend(q, k, v, cache, mask)
	}
	if !ok {
		keys, values := cache.UpdateAndFetch(k, v)
		o = w1day3.ScaledDotProductAttentionGrouped(q, keys, values, 0, mask)
	}
	o = tensor.Reshape(headsFirst(o), n, l, a.NumHeads*a.HeadDim)
	return a.O.Forward(o)
}

// headsFirst swaps axes 1 and 2 of a B x L x H x D tensor (or back): a
// copy in general, but for a decode step (an axis of length 1 moves) the
// elements keep their order, so a reshape that shares the data does.
func headsFirst(t *tensor.Tensor) *tensor.Tensor {
	if t.Dim(1) == 1 || t.Dim(2) == 1 {
		return tensor.Reshape(t, t.Dim(0), t.Dim(2), t.Dim(1), t.Dim(3))
	}
	return tensor.Transpose(t, 0, 2, 1, 3)
}

// Qwen2MLPWeek2 is Week 1's SwiGLU MLP, down(silu(gate(x))·up(x)), with
// Linear projections.
type Qwen2MLPWeek2 struct {
	Gate, Up, Down *Linear
}

// Forward maps x of shape N.. x HiddenSize to the same shape.
func (m *Qwen2MLPWeek2) Forward(x *tensor.Tensor) *tensor.Tensor {
	gu := forwardEach(x, m.Gate, m.Up)
	// SiLU(gate)·up over gate, which the product just made: Week 1's
	// SiLU and Mul without their two intermediate tensors.
	return m.Down.Forward(tensor.SwiGLUInPlace(gu[0], gu[1]))
}

// forwardEach is Forward of each of ls on the same x. When all are packed,
// the engine multiplies them in one pass (tensor.MatmulPackedEach, or
// tensor.MatmulQ4Each with 8-bit activations): in a decode step that is
// one hand-off to the cores instead of three for q, k and v, and x is
// readied once. The results are the same as one at a time.
func forwardEach(x *tensor.Tensor, ls ...*Linear) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(ls))
	if q4s := q4Of(ls); q4s != nil && x.NDim() > 0 && x.Dim(-1) == q4s[0].In {
		for i, y := range tensor.MatmulQ4Each(x, q4s...) {
			if ls[i].Bias != nil {
				addBiasInPlace(y, ls[i].Bias)
			}
			out[i] = y
		}
		return out
	}
	ws := make([]*tensor.PackedMatrix, len(ls))
	for i, l := range ls {
		if l.Packed == nil || x.NDim() == 0 || x.Dim(-1) != l.Packed.In {
			for i, l := range ls {
				out[i] = l.Forward(x)
			}
			return out
		}
		ws[i] = packedMatrix(l.Packed)
	}
	for i, y := range tensor.MatmulPackedEach(x, ws...) {
		if ls[i].Bias != nil {
			y = tensor.Add(y, ls[i].Bias)
		}
		out[i] = y
	}
	return out
}

// addBiasInPlace adds bias (Out values) to every row of y (N.. x Out,
// float32, a product just made): the values of tensor.Add(y, bias)
// without a new tensor.
func addBiasInPlace(y, bias *tensor.Tensor) {
	b, d := bias.Data(), y.Data()
	n := len(b)
	for r := 0; r+n <= len(d); r += n {
		row := d[r : r+n]
		for j, v := range b {
			row[j] += v
		}
	}
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

	// fastNorms, set where the program allowed 8-bit activations and the
	// machine has them (tensor.Int8Activations: the tinyllm command's
	// engine on a quantized checkpoint), are the two norms'
	// weights in float32 for W2D5's fused RMSNorm: one pass over each row
	// instead of Week 1's five whole-tensor operations, which in a 4-bit
	// decode step cost as much as a tenth of the products' time. The days'
	// checks build the model without them.
	fastNorms [2]*tensor.Tensor
}

// Forward maps x (B x L x HiddenSize) at positions offset … offset+L-1 to
// the same shape; cache and mask as in Qwen2AttentionWeek2.Forward.
func (b *Qwen2TransformerBlockWeek2) Forward(x *tensor.Tensor, offset int, cache KVCache, mask *tensor.Tensor) *tensor.Tensor {
	h := b.residual(x, b.Attention.Forward(b.norm(0, b.InputNorm, x), offset, cache, mask))
	return b.residual(h, b.MLP.Forward(b.norm(1, b.PostAttentionNorm, h)))
}

// residual is tensor.Add(x, delta). On the engine's fast path (fastNorms
// set) delta is a product the layer just made and owns, so x is added into
// it instead of into a new tensor: the same values, two allocations fewer
// per layer.
func (b *Qwen2TransformerBlockWeek2) residual(x, delta *tensor.Tensor) *tensor.Tensor {
	if b.fastNorms[0] == nil || delta.DType() != tensor.Float32 || x.DType() != tensor.Float32 || !slices.Equal(x.Shape(), delta.Shape()) {
		return tensor.Add(x, delta)
	}
	d := delta.Data()
	for i, v := range x.Data() {
		d[i] = v + d[i]
	}
	return delta
}

// norm is n.Forward(x), through the fused RMSNorm where fastNorms[i] is set.
func (b *Qwen2TransformerBlockWeek2) norm(i int, n *day4.RMSNorm, x *tensor.Tensor) *tensor.Tensor {
	if w := b.fastNorms[i]; w != nil && x.DType() == tensor.Float32 {
		return fused.RMSNorm(x, w, n.Eps)
	}
	return n.Forward(x)
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
		t, err = ck.Tensor(name, n)
		return t
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
	m := &Qwen2ModelWeek2{Config: c, Embedding: &Embedding{}}
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
	if err == nil && tensor.Int8Activations() {
		for _, l := range m.Layers {
			for i, n := range []*day4.RMSNorm{l.InputNorm, l.PostAttentionNorm} {
				l.fastNorms[i] = tensor.AsType(n.Weight, tensor.Float32)
			}
		}
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
	return m.head(m.layers(tokens, offset, caches))
}

// ForwardLast is Forward for the last position alone: B x 1 x VocabSize
// logits. The caches still grow by all L positions.
func (m *Qwen2ModelWeek2) ForwardLast(tokens [][]int, offset int, caches []KVCache) *tensor.Tensor {
	h := m.layers(tokens, offset, caches)
	return m.head(tensor.Take(h, []int{h.Dim(1) - 1}, 1))
}

func (m *Qwen2ModelWeek2) layers(tokens [][]int, offset int, caches []KVCache) *tensor.Tensor {
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
		h = layer.Forward(h, offset, caches[i], mask)
	}
	return h
}

func (m *Qwen2ModelWeek2) head(h *tensor.Tensor) *tensor.Tensor {
	h = m.Norm.Forward(h)
	if m.LMHead == nil {
		return m.Embedding.AsLinear(h)
	}
	return m.LMHead.Forward(h)
}
