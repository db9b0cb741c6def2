package checkpoint

import (
	"fmt"
	"slices"
	"strings"
)

// layerTensors are the tensors of one Qwen2 decoder layer, under
// "model.layers.<i>.", in the order they are checked.
var layerTensors = []string{
	"self_attn.q_proj.weight", "self_attn.q_proj.bias",
	"self_attn.k_proj.weight", "self_attn.k_proj.bias",
	"self_attn.v_proj.weight", "self_attn.v_proj.bias",
	"self_attn.o_proj.weight",
	"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
	"input_layernorm.weight", "post_attention_layernorm.weight",
}

// checkTensors holds the config to the weights before anything is built
// from it. The layer count is checked by looking for every tensor of every
// layer, stopping at the first one missing, so num_hidden_layers: 1e9 costs
// one failed lookup after the real layers, not a billion allocations. The
// vocabulary and hidden sizes are checked against the embedding's shape, and
// so the head size, which divides the hidden size. Together with
// MaxPositions that bounds everything a model sizes from the config alone.
func (ck *Checkpoint) checkTensors() error {
	c := &ck.Config
	if err := ck.checkShape("model.embed_tokens.weight", "vocab_size and hidden_size", c.VocabSize, c.HiddenSize); err != nil {
		return err
	}
	layers := "layers"
	if c.NumHiddenLayers == 1 {
		layers = "layer"
	}
	for i := range c.NumHiddenLayers {
		for _, t := range layerTensors {
			name := fmt.Sprintf("model.layers.%d.%s", i, t)
			if !ck.Has(name) {
				return fmt.Errorf("checkpoint: %s: config says %d %s but %s is missing", ck.Dir, c.NumHiddenLayers, layers, name)
			}
			if err := ck.checkPacking(name); err != nil {
				return err
			}
		}
	}
	if err := ck.checkShape("model.norm.weight", "hidden_size", c.HiddenSize); err != nil {
		return err
	}
	if !c.TieWordEmbeddings {
		if !ck.Has("lm_head.weight") {
			return fmt.Errorf("checkpoint: %s: config says tie_word_embeddings is false but lm_head.weight is missing", ck.Dir)
		}
		return ck.checkShape("lm_head.weight", "vocab_size and hidden_size", c.VocabSize, c.HiddenSize)
	}
	return nil
}

// checkShape checks that a tensor is present and has the shape the config
// fields named in fields imply; a packed weight is compared by the shape it
// unpacks to.
func (ck *Checkpoint) checkShape(name, fields string, want ...int) error {
	f, ok := ck.owner[name]
	if !ok {
		return fmt.Errorf("checkpoint: %s: %s is missing", ck.Dir, name)
	}
	if err := ck.checkPacking(name); err != nil {
		return err
	}
	info, _ := f.Info(name)
	got := info.Shape
	if ck.IsPacked(name) {
		p, err := ck.Packed(name)
		if err != nil {
			return err
		}
		got = []int{p.Out, p.In}
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("checkpoint: %s: %s has shape %v, but config.json's %s imply %v", f.Path(), name, got, fields, want)
	}
	return nil
}

// checkPacking refuses a packed (U32) weight that cannot be unpacked: one in
// a checkpoint whose config has no quantization block, or one without its
// scales and biases.
func (ck *Checkpoint) checkPacking(name string) error {
	f := ck.owner[name]
	info, _ := f.Info(name)
	if info.DType != "U32" {
		return nil
	}
	switch base, isWeight := strings.CutSuffix(name, ".weight"); {
	case !isWeight:
		return fmt.Errorf("checkpoint: %s: %s is stored as U32, which only a quantized weight may be", f.Path(), name)
	case ck.Config.Quantization == nil:
		return fmt.Errorf("checkpoint: %s: %s is packed (U32) but config.json has no quantization block", f.Path(), name)
	case !ck.Has(base + ".scales"):
		return fmt.Errorf("checkpoint: %s: %s is packed (U32) but %s.scales is missing", f.Path(), name, base)
	case !ck.Has(base + ".biases"):
		return fmt.Errorf("checkpoint: %s: %s is packed (U32) but %s.biases is missing", f.Path(), name, base)
	}
	return nil
}
