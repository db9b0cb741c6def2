package main

import (
	"math"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/bench"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
)

// TestRooflinePoints checks the arithmetic that places a run on the plot,
// with a config small enough to count by hand: V=10, E=4, I=6, one layer,
// 2 heads of D=2, 1 key/value head, tied, bf16 weights, a float32 cache.
func TestRooflinePoints(t *testing.T) {
	cfg := checkpoint.Config{VocabSize: 10, HiddenSize: 4, IntermediateSize: 6, NumHiddenLayers: 1,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, TieWordEmbeddings: true, DType: "bfloat16"}
	// Matrices of the layer: q 16, k 8, v 8, o 16, gate/up/down 72: 120 values.
	// Vectors: q/k/v biases 4+2+2, two norms 8: 16. Final norm 4, head 40.
	const weights = 2 * (120 + 16 + 4 + 40)
	perPos := 2 * 2 * 4 // keys and values, kv width 2, float32
	r := &bench.Result{PromptLen: 3, GenLen: 5, TTFTSeconds: 0.5, DecodeTokPerS: 10}
	pts, err := rooflinePoints(cfg, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 {
		t.Fatalf("got %d points, want prefill and decode", len(pts))
	}
	// Prefill of 3: linear 2*3*120, head once (the last position's logits)
	// 2*4*10, attention 2 products * 2*2 heads*3*3*2.
	prefillFLOPs := float64(2*3*120 + 2*4*10 + 2*(2*2*3*3*2))
	prefillBytes := float64(weights + 3*perPos + 3*perPos)
	// Decode at 3+5/2 = 5: S = 6.
	decodeFLOPs := float64(2*120 + 2*4*10 + 2*(2*2*1*6*2))
	decodeBytes := float64(weights + 6*perPos + perPos)
	for _, tc := range []struct {
		i                 int
		label             string
		intensity, flopsS float64
	}{
		{0, "prefill 3 tokens", prefillFLOPs / prefillBytes, prefillFLOPs / 0.5},
		{1, "decode at 5", decodeFLOPs / decodeBytes, decodeFLOPs * 10},
	} {
		p := pts[tc.i]
		if p.Label != tc.label || math.Abs(p.Intensity-tc.intensity) > 1e-12 || math.Abs(p.FLOPS-tc.flopsS) > 1e-9 {
			t.Errorf("point %d = %+v, want %q at %g FLOP/byte, %g FLOP/s", tc.i, p, tc.label, tc.intensity, tc.flopsS)
		}
	}
	cfg.DType = "int8"
	if _, err := rooflinePoints(cfg, r); err == nil || !strings.Contains(err.Error(), `no cost model for weights of dtype "int8"`) {
		t.Errorf("an int8 checkpoint gave %v, want a refusal that names the dtype", err)
	}
}
