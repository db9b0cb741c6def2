package day1

// The checks live in internal/grade/w3d1, shared with the other tree.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/grade/w3d1"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	w2day1 "github.com/tinyllm-go/tinyllm/solutions/week2/day1"
)

// week2 is this tree's Week 2 model, the reference each request is run
// through alone.
func week2(ck *checkpoint.Checkpoint) (llm.CachedModel, error) { return w2day1.NewQwen2ModelWeek2(ck) }

func layer0(m *Qwen2ModelWeek3) w3d1.AttentionLayer { return m.Blocks[0].Attention }

func TestW3D1Task1Attention(t *testing.T) { w3d1.Attention(t, NewQwen2ModelWeek3, layer0) }

func TestW3D1Task2Batch(t *testing.T) { w3d1.Batch(t, NewQwen2ModelWeek3, week2) }

func TestW3D1Task2Quantized(t *testing.T) {
	w3d1.QuantizedBatch(t, "models/tinyqwen-chat-4bit", NewQwen2ModelWeek3, week2)
}

func TestW3D1Task2RefusesBadBatches(t *testing.T) { w3d1.RefusesBadBatches(t, NewQwen2ModelWeek3) }
