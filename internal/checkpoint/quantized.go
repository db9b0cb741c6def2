package checkpoint

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Quantization is config.json's "quantization" block of an MLX checkpoint:
// each quantized `<layer>.weight` is uint32 words of Bits-bit values, low bits
// first, with `<layer>.scales` and `<layer>.biases` per GroupSize inputs, and
// the real weight is value·scale + bias (the "affine" mode).
type Quantization struct {
	GroupSize int `json:"group_size"`
	Bits      int `json:"bits"`
}

func (q *Quantization) validate() error {
	if q.Bits != 4 && q.Bits != 8 {
		return fmt.Errorf("quantization bits %d: only 4 and 8 are supported", q.Bits)
	}
	if q.GroupSize <= 0 || q.GroupSize%(32/q.Bits) != 0 {
		return fmt.Errorf("quantization group_size %d must be a positive multiple of %d", q.GroupSize, 32/q.Bits)
	}
	return nil
}

// PackedWeight is an Out x In weight matrix kept as an MLX affine-quantized
// checkpoint stores it. Row r's inputs are split into groups of GroupSize;
// input j of row r is the Bits-bit value q at bits Bits·(j mod P) of word
// Words[r·In/P + j/P], P = 32/Bits values to a word, low bits first, and the
// weight it stands for is
//
//	w[r][j] = q · Scales[r][j/GroupSize] + Biases[r][j/GroupSize]
//
// Words is a view of the file mapping (a copy only if a writer left it
// misaligned), and Scales and Biases keep their stored dtype and values
// (MLX stores negative scales; they are never recomputed), so a
// PackedWeight costs next to no memory of its own and is valid until the
// Checkpoint is closed. Week 2 computes on this form directly.
type PackedWeight struct {
	Out, In         int
	Bits, GroupSize int
	Words           []uint32       // Out x In/(32/Bits), row-major
	Scales, Biases  *tensor.Tensor // Out x In/GroupSize
}

// IsPacked reports whether the named tensor is a weight the checkpoint
// stores quantized: "<layer>.weight" of dtype U32 beside "<layer>.scales"
// and "<layer>.biases", in a checkpoint whose config has a quantization
// block. Such a weight can be read with Packed, or dequantized with Tensor.
func (ck *Checkpoint) IsPacked(name string) bool {
	base, ok := strings.CutSuffix(name, ".weight")
	f, has := ck.owner[name]
	if !ok || !has || ck.Config.Quantization == nil {
		return false
	}
	info, _ := f.Info(name)
	return info.DType == "U32" && ck.Has(base+".scales") && ck.Has(base+".biases")
}

// Packed returns a quantized weight as it is stored, without dequantizing
// it: the words, scales and biases are the file's own. shape, when given,
// is the unpacked [Out, In] the config implies, and is checked as Tensor
// checks it. It is an error to ask for a weight that is not stored
// quantized (see IsPacked).
func (ck *Checkpoint) Packed(name string, shape ...int) (*PackedWeight, error) {
	f, ok := ck.owner[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint: %s: missing tensor %q", ck.Dir, name)
	}
	if !ck.IsPacked(name) {
		return nil, fmt.Errorf("checkpoint: %s: tensor %q is not stored quantized; read it with Tensor", f.Path(), name)
	}
	base := strings.TrimSuffix(name, ".weight")
	q := ck.Config.Quantization
	words, packed, err := f.Uint32(name)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if len(packed) != 2 {
		return nil, fmt.Errorf("checkpoint: %s: quantized %q has shape %v, want 2 dimensions", f.Path(), name, packed)
	}
	scales, err := ck.owner[base+".scales"].Tensor(base + ".scales")
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	biases, err := ck.owner[base+".biases"].Tensor(base + ".biases")
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	p := &PackedWeight{Out: packed[0], In: packed[1] * (32 / q.Bits), Bits: q.Bits, GroupSize: q.GroupSize,
		Words: words, Scales: scales, Biases: biases}
	groups := []int{p.Out, p.In / p.GroupSize}
	if p.In%p.GroupSize != 0 || !slices.Equal(scales.Shape(), groups) || !slices.Equal(biases.Shape(), groups) {
		return nil, fmt.Errorf("checkpoint: %s: %q: packed %v with group size %d needs scales and biases %v, got %v and %v",
			f.Path(), base, packed, q.GroupSize, groups, scales.Shape(), biases.Shape())
	}
	if len(shape) > 0 && !slices.Equal([]int{p.Out, p.In}, shape) {
		return nil, fmt.Errorf("checkpoint: %s: tensor %q has shape %v, the config implies %v", f.Path(), name, []int{p.Out, p.In}, shape)
	}
	return p, nil
}

// Dequantize returns the weight as a new float32 Out x In tensor. It is
// what Week 1 computes on; it allocates 4·Out·In bytes, which a caller that
// keeps the packed form pays only while it uses the result.
func (p *PackedWeight) Dequantize() *tensor.Tensor {
	perWord := 32 / p.Bits
	wordsPerRow := p.In / perWord
	groups := p.In / p.GroupSize
	s, b := p.Scales.Data(), p.Biases.Data()
	mask := uint32(1)<<p.Bits - 1
	w := make([]float32, p.Out*p.In)
	for r := range p.Out {
		row := w[r*p.In : (r+1)*p.In]
		words := p.Words[r*wordsPerRow : (r+1)*wordsPerRow]
		for j := range row {
			v := float32(words[j/perWord] >> (uint(j%perWord) * uint(p.Bits)) & mask)
			g := r*groups + j/p.GroupSize
			row[j] = v*s[g] + b[g]
		}
	}
	return tensor.New(w, p.Out, p.In)
}
