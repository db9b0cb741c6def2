package w2d3

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// The real-shape weights are too large to commit (a 4864 x 896 projection
// is 2 MB packed), so refgen/w2d3.py and this file draw the same words,
// scales and biases from a counter-based splitmix64 stream; only x and
// MLX's results are stored. Scales and biases are dyadic fractions with
// small numerators, exact in float32 on both sides.

// splitmix64 returns output i (0-based) of the counter-based stream of seed.
func splitmix64(seed uint64, i int) uint64 {
	z := seed + uint64(i+1)*0x9E3779B97F4A7C15
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

// generatedWeight is the packed Out x In weight of refgen's generated_weight.
func generatedWeight(seed uint64, out, in, bits, groupSize int) *checkpoint.PackedWeight {
	words := make([]uint32, out*in*bits/32)
	for i := range words {
		words[i] = uint32(splitmix64(seed, i) >> 32)
	}
	g := out * in / groupSize
	scales, biases := make([]float32, g), make([]float32, g)
	for i := range scales {
		s := splitmix64(seed+1, i)
		v := float64(s>>56+1) / 4096
		if s>>55&1 == 1 {
			v = -v
		}
		m := int64(splitmix64(seed+2, i) >> 54)
		scales[i] = float32(v)
		biases[i] = float32(-float64(int(1)<<(bits-1))*v + float64(m-512)/16384)
	}
	return &checkpoint.PackedWeight{Out: out, In: in, Bits: bits, GroupSize: groupSize, Words: words,
		Scales: tensor.New(scales, out, in/groupSize), Biases: tensor.New(biases, out, in/groupSize)}
}

// checksums are those of refgen's checksum: the sum of the words modulo
// 2^32, and the sum of word i times i+1 modulo 2^64.
func checksums(words []uint32) (uint32, uint64) {
	var sum uint32
	var weighted uint64
	for i, w := range words {
		sum += w
		weighted += uint64(w) * uint64(i+1)
	}
	return sum, weighted
}

// realWeight re-creates a real-shape case's weight and checks it is the one
// MLX computed on.
func realWeight(t *testing.T, c *fixture.Case) *checkpoint.PackedWeight {
	t.Helper()
	seed := grade.MustInt(t, c, "generator_seed")
	p := generatedWeight(uint64(seed), grade.MustInt(t, c, "out_features"), grade.MustInt(t, c, "in_features"),
		grade.MustInt(t, c, "bits"), grade.MustInt(t, c, "group_size"))
	sum, weighted := checksums(p.Words)
	wantWeighted, _ := c.Params["words_weighted_sum"].(string)
	if int(sum) != grade.MustInt(t, c, "words_sum") || strconv.FormatUint(weighted, 10) != wantWeighted {
		t.Fatalf("case %s: the generated weight is not the one refgen/w2d3.py generated (checksums %d, %d; want %v, %s): "+
			"internal/grade/w2d3/gen.go and refgen/w2d3.py disagree; this is a fault of the course, not of your code",
			c.Name, sum, weighted, c.Params["words_sum"], wantWeighted)
	}
	return p
}

// fixtureWeight reads a case's packed weight: words, scales and biases.
func fixtureWeight(t *testing.T, c *fixture.Case) *checkpoint.PackedWeight {
	t.Helper()
	a, err := c.Array("words")
	if err != nil {
		t.Fatal(err)
	}
	if a.DType != "uint32" || len(a.Shape) != 2 {
		t.Fatalf("case %s: words are %s %v, want a uint32 matrix", c.Name, a.DType, a.Shape)
	}
	bits := grade.MustInt(t, c, "bits")
	p := &checkpoint.PackedWeight{Out: a.Shape[0], In: a.Shape[1] * 32 / bits, Bits: bits, GroupSize: grade.MustInt(t, c, "group_size"),
		Words: a.Uint32, Scales: grade.MustTensor(t, c, "scales"), Biases: grade.MustTensor(t, c, "biases")}
	if p.Scales.Dim(1)*p.GroupSize != p.In {
		t.Fatalf("case %s: %d groups of %d do not cover %d inputs", c.Name, p.Scales.Dim(1), p.GroupSize, p.In)
	}
	return p
}

// describe names a packed weight's format for a failure message.
func describe(p *checkpoint.PackedWeight) string {
	return fmt.Sprintf("%d x %d, %d-bit, groups of %d", p.Out, p.In, p.Bits, p.GroupSize)
}
