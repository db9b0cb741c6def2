// Package devtensor is what lives on the GPU between kernel launches, and
// for how long: weights are uploaded once and stay resident (bf16, or MLX
// affine 4-bit exactly as packed); activations live in float32 buffers
// allocated once for the largest step and reused; the only crossings between
// the CPU tensor package and the device are the explicit Upload and Download
// calls here, never one per operation. Every allocation is checked against
// the device's free memory first (CheckFits).
//
// The Week 2 GPU days (matmul, fused kernels, attention, the whole model)
// share these types, in both the learner's tree and the solutions.
package devtensor

import (
	"errors"
	"fmt"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
)

// Headroom is the device memory CheckFits leaves free beyond what is asked
// for: the driver, the compiled kernels and the allocator's rounding need
// some, and a model that fills the card to the last byte fails later, at a
// worse moment.
const Headroom = 256 << 20

// Weight is an N x K weight matrix resident on the device, in one of two
// forms: bfloat16 (Bits 16: W holds N·K bf16 words, row-major), or MLX affine
// 4-bit (Bits 4: W holds the N x K/8 uint32 words exactly as the checkpoint
// packs them, low nibble first, and Scales and Biases hold N x K/GroupSize
// bf16 values). y = x·Wᵀ takes x as M x K and gives M x N.
type Weight struct {
	N, K           int
	Bits           int // 16 (bf16) or 4
	GroupSize      int // 64 or 128 for 4-bit; 0 for bf16
	W              *kernels.Buffer
	Scales, Biases *kernels.Buffer // nil for bf16
}

// Quantized reports whether the weight is 4-bit.
func (w *Weight) Quantized() bool { return w.Bits == 4 }

// Bytes is the device memory the weight occupies.
func (w *Weight) Bytes() int64 { return WeightBytes(w.N, w.K, w.Bits, w.GroupSize) }

// Free releases the weight's device memory.
func (w *Weight) Free() error {
	var errs []error
	for _, b := range []*kernels.Buffer{w.W, w.Scales, w.Biases} {
		if b != nil {
			errs = append(errs, b.Free())
		}
	}
	return errors.Join(errs...)
}

// WeightBytes is the device memory of an n x k weight: 2 bytes an element
// for bf16 (bits 16); for 4-bit, half a byte an element plus a bf16 scale
// and a bf16 bias per group of group elements.
func WeightBytes(n, k, bits, group int) int64 {
	if bits == 16 {
		return 2 * int64(n) * int64(k)
	}
	return int64(n)*int64(k)*int64(bits)/8 + 2*2*int64(n)*int64(k/group)
}

// ModelWeightBytes is the device memory the weights of a Qwen2 model take
// when every matrix (the projections, the MLP, the embedding and, if the
// model has one, the untied head) is stored with the given bits (16 for
// bf16, or 4 with group) and the small vectors (q/k/v biases, RMSNorm
// weights) in bf16. It is what a GPU engine checks with CheckFits before it
// uploads anything.
func ModelWeightBytes(cfg checkpoint.Config, bits, group int) int64 {
	e, inter, v := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize
	headDim := e / cfg.NumAttentionHeads
	kv := cfg.NumKeyValueHeads * headDim
	layer := WeightBytes(e, e, bits, group) + // q
		2*WeightBytes(kv, e, bits, group) + // k, v
		WeightBytes(e, e, bits, group) + // o
		2*WeightBytes(inter, e, bits, group) + // gate, up
		WeightBytes(e, inter, bits, group) + // down
		2*int64(e+2*kv) + // q/k/v biases
		2*2*int64(e) // two RMSNorm weights
	total := int64(cfg.NumHiddenLayers)*layer + WeightBytes(v, e, bits, group) + 2*int64(e) // + final norm
	if !cfg.TieWordEmbeddings {
		total += WeightBytes(v, e, bits, group)
	}
	return total
}

// CheckFits returns an error, before anything is allocated, when need bytes
// plus Headroom are more than the device has free.
func CheckFits(dev *kernels.Device, need int64) error {
	free, total, err := dev.MemInfo()
	if err != nil {
		return err
	}
	if need+Headroom > free {
		return fmt.Errorf("%s: %s needed (+%s headroom) but only %s of %s free", dev, gib(need), gib(Headroom), gib(free), gib(total))
	}
	return nil
}

func gib(b int64) string { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }

// UploadBF16 copies a bfloat16 N x K tensor to the device once. Any other
// dtype or rank is an error: converting here would hide a second copy of
// the model in a different precision.
func UploadBF16(dev *kernels.Device, t *tensor.Tensor) (*Weight, error) {
	if t.DType() != tensor.BFloat16 || t.NDim() != 2 {
		return nil, fmt.Errorf("UploadBF16: want a 2-D bfloat16 tensor, got %v %v", t.DType(), t.Shape())
	}
	w := &Weight{N: t.Dim(0), K: t.Dim(1), Bits: 16}
	if err := CheckFits(dev, w.Bytes()); err != nil {
		return nil, fmt.Errorf("UploadBF16 %v: %w", t.Shape(), err)
	}
	var err error
	if w.W, err = kernels.Upload(dev, t.Bits()); err != nil {
		return nil, err
	}
	return w, nil
}

// UploadPacked copies a 4-bit MLX weight to the device once, as it is
// packed. Its scales and biases travel as bf16, the dtype MLX writes for a
// bf16 model; values stored in another dtype are rounded to bf16 on the way.
// 8-bit weights and group sizes other than 64 and 128 are errors.
func UploadPacked(dev *kernels.Device, p *checkpoint.PackedWeight) (*Weight, error) {
	if p.Bits != 4 || (p.GroupSize != 64 && p.GroupSize != 128) {
		return nil, fmt.Errorf("UploadPacked: %d-bit weights with group size %d; the GPU kernels take 4-bit with groups of 64 or 128", p.Bits, p.GroupSize)
	}
	groups := p.Out * (p.In / p.GroupSize)
	if p.In%p.GroupSize != 0 || len(p.Words) != p.Out*p.In/8 || p.Scales.Size() != groups || p.Biases.Size() != groups {
		return nil, fmt.Errorf("UploadPacked: %d x %d weight with %d words, %d scales and %d biases is not consistent", p.Out, p.In, len(p.Words), p.Scales.Size(), p.Biases.Size())
	}
	w := &Weight{N: p.Out, K: p.In, Bits: 4, GroupSize: p.GroupSize}
	if err := CheckFits(dev, w.Bytes()); err != nil {
		return nil, fmt.Errorf("UploadPacked %d x %d: %w", p.Out, p.In, err)
	}
	var err error
	if w.W, err = kernels.Upload(dev, p.Words); err == nil {
		if w.Scales, err = kernels.Upload(dev, bf16Bits(p.Scales)); err == nil {
			w.Biases, err = kernels.Upload(dev, bf16Bits(p.Biases))
		}
	}
	if err != nil {
		w.Free()
		return nil, err
	}
	return w, nil
}

func bf16Bits(t *tensor.Tensor) []uint16 {
	if t.DType() == tensor.BFloat16 {
		return t.Bits()
	}
	return tensor.AsType(t, tensor.BFloat16).Bits()
}

// Activations is a float32 matrix on the device, allocated once for up to
// MaxRows rows of Cols and reused from step to step: Rows says how many rows
// the current step uses.
type Activations struct {
	Buf                 *kernels.Buffer
	Rows, Cols, MaxRows int
}

// NewActivations allocates room for maxRows x cols float32 values. Its
// content is undefined until an Upload or a kernel writes it.
func NewActivations(dev *kernels.Device, maxRows, cols int) (*Activations, error) {
	if maxRows <= 0 || cols <= 0 {
		return nil, fmt.Errorf("NewActivations(%d, %d): both must be positive", maxRows, cols)
	}
	need := 4 * int64(maxRows) * int64(cols)
	if err := CheckFits(dev, need); err != nil {
		return nil, fmt.Errorf("NewActivations %d x %d: %w", maxRows, cols, err)
	}
	b, err := dev.Alloc(int(need))
	if err != nil {
		return nil, err
	}
	return &Activations{Buf: b, Rows: maxRows, Cols: cols, MaxRows: maxRows}, nil
}

// SetRows sets how many rows the next step uses.
func (a *Activations) SetRows(rows int) error {
	if rows <= 0 || rows > a.MaxRows {
		return fmt.Errorf("activations of %d x %d: %d rows asked for", a.MaxRows, a.Cols, rows)
	}
	a.Rows = rows
	return nil
}

// Upload copies a float32 rows x Cols tensor in, and sets Rows.
func (a *Activations) Upload(t *tensor.Tensor) error {
	if t.DType() != tensor.Float32 || t.NDim() != 2 || t.Dim(1) != a.Cols {
		return fmt.Errorf("Activations.Upload: want float32 [rows, %d], got %v %v", a.Cols, t.DType(), t.Shape())
	}
	if err := a.SetRows(t.Dim(0)); err != nil {
		return err
	}
	return kernels.Write(a.Buf, 0, t.Data())
}

// Download copies the current Rows x Cols out into a new tensor, after the
// work launched before it has finished.
func (a *Activations) Download() (*tensor.Tensor, error) {
	data, err := kernels.Download[float32](a.Buf, a.Rows*a.Cols)
	if err != nil {
		return nil, err
	}
	return tensor.New(data, a.Rows, a.Cols), nil
}

// Free releases the buffer.
func (a *Activations) Free() error { return a.Buf.Free() }
