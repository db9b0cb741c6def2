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

// quantizedBase returns "<layer>" if name is "<layer>.weight" and the
// checkpoint stores that layer quantized.
func (ck *Checkpoint) quantizedBase(name string) (string, bool) {
	base, ok := strings.CutSuffix(name, ".weight")
	if !ok || ck.Config.Quantization == nil {
		return "", false
	}
	return base, ck.Has(base+".scales") && ck.Has(base+".biases")
}

// dequantize widens a quantized layer to a float32 [out, in] tensor: Week 1
// computes on plain weights (Week 2 computes on the packed form directly).
func (ck *Checkpoint) dequantize(base string) (*tensor.Tensor, error) {
	q := ck.Config.Quantization
	f := ck.owner[base+".weight"]
	words, shape, err := f.Uint32(base + ".weight")
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	scales, err := ck.Tensor(base + ".scales")
	if err != nil {
		return nil, err
	}
	biases, err := ck.Tensor(base + ".biases")
	if err != nil {
		return nil, err
	}
	perWord := 32 / q.Bits
	if len(shape) != 2 {
		return nil, fmt.Errorf("checkpoint: %s: quantized %q has shape %v, want 2 dimensions", f.Path(), base+".weight", shape)
	}
	out, in := shape[0], shape[1]*perWord
	groups := in / q.GroupSize
	want := []int{out, groups}
	if in%q.GroupSize != 0 || !slices.Equal(scales.Shape(), want) || !slices.Equal(biases.Shape(), want) {
		return nil, fmt.Errorf("checkpoint: %s: %q: packed %v with group size %d needs scales and biases %v, got %v and %v",
			f.Path(), base, shape, q.GroupSize, want, scales.Shape(), biases.Shape())
	}
	s, b := scales.Data(), biases.Data()
	mask := uint32(1)<<q.Bits - 1
	w := make([]float32, out*in)
	for r := 0; r < out; r++ {
		row := w[r*in : (r+1)*in]
		for j := range row {
			word := words[r*shape[1]+j/perWord]
			v := float32(word >> (uint(j%perWord) * uint(q.Bits)) & mask)
			g := r*groups + j/q.GroupSize
			row[j] = v*s[g] + b[g]
		}
	}
	return tensor.New(w, out, in), nil
}
