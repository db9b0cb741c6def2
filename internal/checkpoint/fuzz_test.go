package checkpoint

import (
	"path/filepath"
	"slices"
	"testing"
)

// FuzzConfig feeds arbitrary config.json bytes to the config parser and
// then to the check against the weights of a real checkpoint: the tied
// bf16 one, or its MLX 4-bit copy when quantized is set. Neither may panic,
// and a config both accept must describe those weights: the sizes the files
// fix (vocabulary, hidden size, quantization) exactly, no more layers than
// they hold, and numbers within the limits validate promises. The seed
// corpus in testdata/fuzz/FuzzConfig holds the hostile configs the loader
// must refuse (a billion layers, 2^28 positions, sizes past int64, ...); go
// test replays it, and `go test -fuzz FuzzConfig ./internal/checkpoint`
// searches for more.
func FuzzConfig(f *testing.F) {
	var cks [2]*Checkpoint
	for i, dir := range []string{tiedDir(f), q4Dir(f)} {
		ck, err := Open(dir)
		if err != nil {
			f.Fatal(err)
		}
		defer ck.Close()
		cks[i] = ck
	}
	f.Fuzz(func(t *testing.T, raw []byte, quantized bool) {
		c, err := parseConfig(raw)
		if err != nil {
			return
		}
		switch {
		case c.VocabSize <= 0, c.HiddenSize <= 0, c.IntermediateSize <= 0, c.NumHiddenLayers <= 0,
			c.NumAttentionHeads <= 0, c.NumKeyValueHeads <= 0, c.MaxPositionEmbeddings <= 0:
			t.Fatalf("accepted a size that is not positive: %+v", c)
		case c.MaxPositionEmbeddings > MaxPositions:
			t.Fatalf("accepted max_position_embeddings %d", c.MaxPositionEmbeddings)
		case c.HiddenSize%c.NumAttentionHeads != 0, c.NumAttentionHeads%c.NumKeyValueHeads != 0, c.HeadDim()%2 != 0:
			t.Fatalf("accepted heads that do not divide: %+v", c)
		case !(c.RopeTheta > 0) || !(c.RMSNormEps > 0):
			t.Fatalf("accepted rope_theta %g, rms_norm_eps %g", c.RopeTheta, c.RMSNormEps)
		}
		base := cks[0]
		if quantized {
			base = cks[1]
		}
		ck := *base
		ck.Config = c
		if ck.checkTensors() != nil {
			return
		}
		if c.VocabSize != 256 || c.HiddenSize != 64 || c.NumHiddenLayers > 2 {
			t.Fatalf("accepted vocab %d, hidden %d, %d layers for weights of 256, 64 and 2", c.VocabSize, c.HiddenSize, c.NumHiddenLayers)
		}
		if quantized && (c.Quantization == nil || *c.Quantization != Quantization{GroupSize: 32, Bits: 4}) {
			t.Fatalf("accepted quantization %+v for 4-bit weights in groups of 32", c.Quantization)
		}
		if _, err := ck.Tensor("model.embed_tokens.weight", c.VocabSize, c.HiddenSize); err != nil {
			t.Fatalf("accepted, but the embedding does not load: %v", err)
		}
	})
}

// FuzzIndex feeds arbitrary model.safetensors.index.json bytes to the
// index parser. It must not panic, and the shard names it accepts must be
// distinct, sorted, and name .safetensors files inside the model folder.
// The seed corpus in testdata/fuzz/FuzzIndex includes names that escape it.
func FuzzIndex(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		names, err := parseIndex(raw)
		if err != nil {
			return
		}
		if len(names) == 0 || !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Fatalf("accepted shard list %q", names)
		}
		dir := filepath.Join("models", "m")
		for _, n := range names {
			p := filepath.Join(dir, n)
			if filepath.Dir(p) != dir || filepath.Base(p) != n || filepath.Ext(n) != ".safetensors" {
				t.Fatalf("accepted shard name %q, which is %s inside %s", n, p, dir)
			}
		}
	})
}
