package day3

// The checks live in internal/grade/w2d3, shared with the other tree.

import (
	"fmt"

	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/grade/w2d3"
)

func TestW2D3Task1Dequantize(t *testing.T) { w2d3.Dequantize(t, Dequantize) }

func TestW2D3Task1DequantizeRealShapes(t *testing.T) { w2d3.DequantizeReal(t, Dequantize) }

func TestW2D3Task2QuantizedMatmul(t *testing.T) { w2d3.Matmul(t, QuantizedMatmul) }

func TestW2D3Task2QuantizedMatmulRealShapes(t *testing.T) { w2d3.MatmulReal(t, QuantizedMatmul) }

func TestW2D3Task2StaysPacked(t *testing.T) { w2d3.MatmulStaysPacked(t, QuantizedMatmul) }

func TestW2D3Task2RefusesBadShapes(t *testing.T) { w2d3.MatmulRefusesBadShapes(t, QuantizedMatmul) }

func TestW2D3Task3QuantizedLinear(t *testing.T) { w2d3.Linear(t, QuantizedLinear) }

func newEmbedding(table *checkpoint.PackedWeight) *Embedding { return &Embedding{Packed: table} }

func TestW2D3Task4Embedding(t *testing.T) { w2d3.EmbeddingCheck(t, newEmbedding) }

func TestW2D3Task4EmbeddingStaysPacked(t *testing.T) { w2d3.EmbeddingStaysPacked(t, newEmbedding) }

func TestW2D3Task5QuantizedModel(t *testing.T) { w2d3.QuantizedModel(t, NewQwen2ModelWeek2) }

func TestW2D3Task5FloatModel(t *testing.T) { w2d3.FloatModel(t, NewQwen2ModelWeek2) }

// storage reads how the model holds each weight matrix off its fields.
func storage(m *Qwen2ModelWeek2) map[string]string {
	out := map[string]string{}
	kind := func(float bool, packed bool) string {
		switch {
		case packed && !float:
			return "packed"
		case float && !packed:
			return "float"
		case float && packed:
			return "both float and packed"
		}
		return ""
	}
	if e := m.Embedding; e != nil {
		out["model.embed_tokens.weight"] = kind(e.Float != nil, e.Packed != nil)
	}
	add := func(name string, l *Linear) {
		if l != nil {
			out[name+".weight"] = kind(l.Float != nil, l.Packed != nil)
		}
	}
	for i, b := range m.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		if a := b.Attention; a != nil {
			add(p+"self_attn.q_proj", a.Q)
			add(p+"self_attn.k_proj", a.K)
			add(p+"self_attn.v_proj", a.V)
			add(p+"self_attn.o_proj", a.O)
		}
		if f := b.MLP; f != nil {
			add(p+"mlp.gate_proj", f.Gate)
			add(p+"mlp.up_proj", f.Up)
			add(p+"mlp.down_proj", f.Down)
		}
	}
	add("lm_head", m.LMHead)
	return out
}

func TestW2D3Task5StaysPacked(t *testing.T) { w2d3.StaysPacked(t, NewQwen2ModelWeek2, storage) }
