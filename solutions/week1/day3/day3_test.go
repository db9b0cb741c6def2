package day3

// The checks live in internal/grade/w1d3, shared with the other tree.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w1d3"
)

func TestW1D3Task1GroupedAttention(t *testing.T) {
	w1d3.Grouped(t, ScaledDotProductAttentionGrouped)
}

func TestW1D3Task2CausalMask(t *testing.T) { w1d3.CausalMask(t, CausalMask) }

func TestW1D3Task3Qwen2Attention(t *testing.T) {
	w1d3.Qwen2Attention(t, NewQwen2Attention, CausalMask)
}
