package day5

// The checks live in internal/grade/w1d5, shared with the other tree.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w1d5"
)

func TestW1D5Task1TransformerBlock(t *testing.T) {
	w1d5.TransformerBlock(t, NewQwen2TransformerBlock)
}

func TestW1D5Task2EmbeddingForward(t *testing.T) { w1d5.EmbeddingForward(t, NewEmbedding) }

func TestW1D5Task3EmbeddingAsLinear(t *testing.T) { w1d5.EmbeddingAsLinear(t, NewEmbedding) }

func TestW1D5Task4Model(t *testing.T) { w1d5.WholeModel(t, NewQwen2ModelWeek1) }

func TestW1D5Task4ModelMLXQuantized(t *testing.T) { w1d5.QuantizedModel(t, NewQwen2ModelWeek1) }

func TestW1D5Task5ForwardLast(t *testing.T) { w1d5.LastPosition(t, NewQwen2ModelWeek1) }
