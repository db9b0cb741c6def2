package devtensor

import (
	"fmt"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
)

// UploadStacked uploads the named matrices of a checkpoint (rows[i] x in
// each) stacked by rows into one device weight, so that q, k and v (or gate
// and up) become one matrix product: bf16 when they are stored as floats
// (other float dtypes are rounded to bf16), the packed 4-bit form when the
// checkpoint stores them quantized. Mixing the two is an error.
func UploadStacked(dev *kernels.Device, ck *checkpoint.Checkpoint, names []string, rows []int, in int) (*Weight, error) {
	packed := ck.IsPacked(names[0])
	for _, n := range names[1:] {
		if ck.IsPacked(n) != packed {
			return nil, fmt.Errorf("%s and %s are stored differently (one quantized, one not); the GPU model stacks them into one matrix", names[0], n)
		}
	}
	total := 0
	for _, r := range rows {
		total += r
	}
	if !packed {
		bits := make([]uint16, 0, total*in)
		for i, n := range names {
			t, err := ck.Tensor(n, rows[i], in)
			if err != nil {
				return nil, err
			}
			bits = append(bits, bf16Bits(t)...)
		}
		return UploadBF16(dev, tensor.FromBF16(bits, total, in))
	}
	var stacked *checkpoint.PackedWeight
	var scales, biases []uint16
	for i, n := range names {
		p, err := ck.Packed(n, rows[i], in)
		if err != nil {
			return nil, err
		}
		if len(names) == 1 {
			return UploadPacked(dev, p)
		}
		if stacked == nil {
			stacked = &checkpoint.PackedWeight{In: in, Bits: p.Bits, GroupSize: p.GroupSize}
		}
		stacked.Out += p.Out
		stacked.Words = append(stacked.Words, p.Words...)
		scales = append(scales, bf16Bits(p.Scales)...)
		biases = append(biases, bf16Bits(p.Biases)...)
	}
	groups := in / stacked.GroupSize
	stacked.Scales = tensor.FromBF16(scales, total, groups)
	stacked.Biases = tensor.FromBF16(biases, total, groups)
	return UploadPacked(dev, stacked)
}

// UploadVectors uploads the named 1-D tensors of a checkpoint (lens[i]
// values each), concatenated, as one float32 vector: the norms' weights
// and the stacked q/k/v biases.
func UploadVectors(dev *kernels.Device, ck *checkpoint.Checkpoint, names []string, lens []int) (*Vector, error) {
	var all []float32
	for i, n := range names {
		t, err := ck.Tensor(n, lens[i])
		if err != nil {
			return nil, err
		}
		all = append(all, t.Data()...)
	}
	return UploadVector(dev, tensor.New(all, len(all)))
}
