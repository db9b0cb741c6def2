// Package day2 is Week 2 Day 2 of the course: the cost model of one forward
// pass of a Qwen2 model (its FLOPs, and the bytes of weights and of key/value
// cache it moves), to read a profile and a roofline against. The guide's
// chapter "Week 2 Day 2" explains the tasks; grade your work with
// `make check-w2d2`.
package day2

import (
	"fmt"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
)

// Cost is the work of one forward pass over newTokens new positions of one
// sequence (batch 1), as the chapter defines it. FLOPs count a multiply-add
// as two and count only matrix products (what PyTorch's FlopCounterMode
// counts); bytes count each value moved from memory once.
type Cost struct {
	// LinearFLOPs is the seven projections of every layer (q, k, v, o,
	// gate, up, down) over the new positions; biases are not counted.
	LinearFLOPs int64
	// HeadFLOPs is the LM head over every new position (the logits of
	// all of them, as Forward computes).
	HeadFLOPs int64
	// AttentionFLOPs is q·kᵀ and weights·v of every query head against
	// all offset+newTokens keys, masked ones included.
	AttentionFLOPs int64
	// WeightBytes is every weight tensor read once; of an embedding table
	// that is not also the head, only the new tokens' rows.
	WeightBytes int64
	// KVReadBytes is the keys and values attention reads: every layer's
	// cache after this call's positions are appended.
	KVReadBytes int64
	// KVWriteBytes is the keys and values this call appends to the cache.
	KVWriteBytes int64
}

// FLOPs is the total of the three FLOP counts.
func (c Cost) FLOPs() int64 { return c.LinearFLOPs + c.HeadFLOPs + c.AttentionFLOPs }

// Bytes is the total of the three byte counts.
func (c Cost) Bytes() int64 { return c.WeightBytes + c.KVReadBytes + c.KVWriteBytes }

// Intensity is the arithmetic intensity, FLOPs per byte moved: the x
// coordinate of the pass on a roofline.
func (c Cost) Intensity() float64 {
	if c.Bytes() == 0 {
		return 0
	}
	return float64(c.FLOPs()) / float64(c.Bytes())
}

// ForwardCost is the cost of one forward pass of the Qwen2 model cfg over
// newTokens new positions starting at position offset (a prefill of L
// tokens is newTokens=L, offset=0; a decode step at position p is
// newTokens=1, offset=p). weightBytes is the size of one stored weight value
// (2 for bf16), cacheBytes that of one cached key or value (4 for the
// float32 cache of Week 2 Day 1). It refuses a config or arguments that
// describe no model or no call.
func ForwardCost(cfg checkpoint.Config, weightBytes, cacheBytes, newTokens, offset int) (Cost, error) {
	if err := validate(cfg, weightBytes, cacheBytes, newTokens, offset); err != nil {
		return Cost{}, err
	}
	e, i, v := int64(cfg.HiddenSize), int64(cfg.IntermediateSize), int64(cfg.VocabSize)
	layers := int64(cfg.NumHiddenLayers)
	hq, hkv := int64(cfg.NumAttentionHeads), int64(cfg.NumKeyValueHeads)
	d := e / hq
	kv := hkv * d // width of the k and v projections
	l, s := int64(newTokens), int64(offset+newTokens)

	// Weights of one layer, as matrices (rows x columns) and vectors.
	matrices := e*e + kv*e + kv*e + e*e + 3*i*e
	vectors := e + kv + kv + 2*e // q, k, v biases; the two norms
	var c Cost
	c.LinearFLOPs = layers * 2 * l * matrices
	c.HeadFLOPs = 2 * l * e * v
	c.AttentionFLOPs = layers * 2 * (2 * hq * l * s * d) // scores, then weights·v
	params := layers*(matrices+vectors) + e + v*e        // + final norm + head
	if !cfg.TieWordEmbeddings {
		params += l * e // the embedding rows gathered for the new tokens
	}
	c.WeightBytes = params * int64(weightBytes)
	perPosition := layers * 2 * kv * int64(cacheBytes) // keys and values
	c.KVReadBytes = s * perPosition
	c.KVWriteBytes = l * perPosition
	return c, nil
}

// validate says what is wrong with ForwardCost's arguments, if anything.
func validate(cfg checkpoint.Config, weightBytes, cacheBytes, newTokens, offset int) error {
	switch {
	case cfg.HiddenSize <= 0 || cfg.IntermediateSize <= 0 || cfg.VocabSize <= 0 || cfg.NumHiddenLayers <= 0:
		return fmt.Errorf("cost: hidden_size %d, intermediate_size %d, vocab_size %d and num_hidden_layers %d must all be positive",
			cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize, cfg.NumHiddenLayers)
	case cfg.NumAttentionHeads <= 0 || cfg.NumKeyValueHeads <= 0:
		return fmt.Errorf("cost: num_attention_heads %d and num_key_value_heads %d must be positive", cfg.NumAttentionHeads, cfg.NumKeyValueHeads)
	case cfg.HiddenSize%cfg.NumAttentionHeads != 0:
		return fmt.Errorf("cost: hidden_size %d is not a multiple of num_attention_heads %d", cfg.HiddenSize, cfg.NumAttentionHeads)
	case cfg.NumAttentionHeads%cfg.NumKeyValueHeads != 0:
		return fmt.Errorf("cost: num_attention_heads %d is not a multiple of num_key_value_heads %d", cfg.NumAttentionHeads, cfg.NumKeyValueHeads)
	case weightBytes <= 0 || cacheBytes <= 0:
		return fmt.Errorf("cost: bytes per weight (%d) and per cached value (%d) must be positive", weightBytes, cacheBytes)
	case newTokens <= 0:
		return fmt.Errorf("cost: a forward pass needs at least one new token, got %d", newTokens)
	case offset < 0:
		return fmt.Errorf("cost: offset %d is negative", offset)
	}
	return nil
}
