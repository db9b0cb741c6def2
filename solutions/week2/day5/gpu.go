package day5

// The fused kernels on the GPU: fused.cu (NVIDIA) and fused.metal (Apple)
// hold one kernel per operation; the methods of Fused validate shapes and
// launch them on device buffers from kernels/devtensor.

import (
	_ "embed"
	"fmt"

	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
)

//go:embed fused.cu
var fusedCUDA string

//go:embed fused.metal
var fusedMetal string

// Block is the threads per block (threadgroup) of every kernel: 8 warps, so
// a row of Qwen2-7B's 3584 values is 14 values a thread. (Provided.)
const Block = 256

// KernelNames are the kernels each source must declare. (Provided.)
var KernelNames = []string{"rmsnorm", "rope", "swiglu", "add_rmsnorm"}

// Source returns the kernel source for a backend (kernels.CUDA or
// kernels.Metal), or "". (Provided.)
func Source(backend string) string {
	switch backend {
	case kernels.CUDA:
		return fusedCUDA
	case kernels.Metal:
		return fusedMetal
	}
	return ""
}

// Fused holds the compiled kernels for one device. (Provided.)
type Fused struct {
	dev                               *kernels.Device
	mod                               *kernels.Module
	rmsnorm, rope, swiglu, addRMSNorm *kernels.Kernel
}

// NewFused compiles the day's source for dev and looks up its kernels. A
// compile error carries the compiler's log. (Provided.)
func NewFused(dev *kernels.Device) (*Fused, error) {
	mod, err := dev.Compile(Source(dev.Backend()))
	if err != nil {
		return nil, fmt.Errorf("compiling the fused kernels for %s: %w", dev.Backend(), err)
	}
	f := &Fused{dev: dev, mod: mod}
	for _, k := range []struct {
		name string
		dst  **kernels.Kernel
	}{{"rmsnorm", &f.rmsnorm}, {"rope", &f.rope}, {"swiglu", &f.swiglu}, {"add_rmsnorm", &f.addRMSNorm}} {
		if *k.dst, err = mod.Kernel(k.name); err != nil {
			mod.Close()
			return nil, err
		}
	}
	return f, nil
}

// Close unloads the kernels. (Provided.)
func (f *Fused) Close() error { return f.mod.Close() }

// DeviceRoPE is a RoPETable resident on the device: Cos and Sin hold
// MaxPos x Dims/2 float32 values each. (Provided.)
type DeviceRoPE struct {
	Dims, MaxPos int
	Cos, Sin     *kernels.Buffer
}

// UploadRoPE copies a table to the device once. (Provided.)
func UploadRoPE(dev *kernels.Device, t *RoPETable) (*DeviceRoPE, error) {
	if err := devtensor.CheckFits(dev, 8*int64(len(t.Cos))); err != nil {
		return nil, fmt.Errorf("UploadRoPE: %w", err)
	}
	r := &DeviceRoPE{Dims: t.Dims, MaxPos: t.MaxPos}
	var err error
	if r.Cos, err = kernels.Upload(dev, t.Cos); err == nil {
		if r.Sin, err = kernels.Upload(dev, t.Sin); err != nil {
			r.Cos.Free()
		}
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Free releases the table's device memory. (Provided.)
func (r *DeviceRoPE) Free() error {
	err := r.Cos.Free()
	if err2 := r.Sin.Free(); err == nil {
		err = err2
	}
	return err
}

// checkNorm validates y = norm(x)·w for one or more inputs x of the same
// shape and sets y's rows. (Provided.)
func checkNorm(op string, y *devtensor.Activations, w *devtensor.Vector, xs ...*devtensor.Activations) error {
	for _, x := range xs {
		if x.Cols != w.Len || x.Rows != xs[0].Rows {
			return fmt.Errorf("%s: input of %d x %d with a weight of %d (and a first input of %d rows): the widths must be the weight's and the rows equal", op, x.Rows, x.Cols, w.Len, xs[0].Rows)
		}
	}
	if y.Cols != w.Len {
		return fmt.Errorf("%s: output of %d columns, want the weight's %d", op, y.Cols, w.Len)
	}
	return y.SetRows(xs[0].Rows)
}

// checkRoPEGPU validates a launch of the rope kernel and returns the number
// of rows N of L tokens. (Provided.)
func checkRoPEGPU(q, k *devtensor.Activations, r *DeviceRoPE, offsets *kernels.Buffer, seqLen int) (int, error) {
	d := r.Dims
	switch {
	case q.Cols%d != 0 || k.Cols%d != 0:
		return 0, fmt.Errorf("rope: q of %d and k of %d columns are not whole heads of %d", q.Cols, k.Cols, d)
	case q.Rows != k.Rows:
		return 0, fmt.Errorf("rope: q has %d rows, k %d", q.Rows, k.Rows)
	case seqLen <= 0 || q.Rows%seqLen != 0:
		return 0, fmt.Errorf("rope: %d tokens are not rows of L = %d", q.Rows, seqLen)
	case offsets == nil || offsets.Size() < 4*(q.Rows/seqLen):
		return 0, fmt.Errorf("rope: the offsets buffer must hold one int32 for each of the %d rows", q.Rows/seqLen)
	}
	return q.Rows / seqLen, nil
}

// RMSNorm computes y = x / sqrt(mean(x²) + eps) · w for every row of x
// (Rows x D, D = w.Len), one block of Block threads per row. It queues the
// kernel and returns.
func (f *Fused) RMSNorm(y, x *devtensor.Activations, w *devtensor.Vector, eps float32) error {
	if err := checkNorm("rmsnorm", y, w, x); err != nil {
		return err
	}
	cfg := kernels.LaunchConfig{Grid: kernels.D1(x.Rows), Block: kernels.D1(Block)}
	return f.dev.Launch(f.rmsnorm, cfg, y.Buf, x.Buf, w.Buf, int32(x.Rows), int32(x.Cols), eps)
}

// RoPE rotates q (N·L x Hq·D) and k (N·L x Hk·D) in place, pairs (i, i+D/2)
// of each head: the tokens of row n (q's rows n·L … n·L+L-1) sit at
// positions offsets[n] + 0 … L-1, offsets holding N int32 values on the
// device. One thread per pair, Block threads per block. It queues the
// kernel and returns.
func (f *Fused) RoPE(q, k *devtensor.Activations, r *DeviceRoPE, offsets *kernels.Buffer, seqLen int) error {
	if _, err := checkRoPEGPU(q, k, r, offsets, seqLen); err != nil {
		return err
	}
	hq, hk := q.Cols/r.Dims, k.Cols/r.Dims
	pairs := q.Rows * (hq + hk) * r.Dims / 2
	cfg := kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(pairs, Block)), Block: kernels.D1(Block)}
	return f.dev.Launch(f.rope, cfg, q.Buf, k.Buf, r.Cos, r.Sin, offsets,
		int32(q.Rows), int32(seqLen), int32(hq), int32(hk), int32(r.Dims), int32(r.MaxPos))
}

// SwiGLU computes y = silu(gate)·up elementwise (all Rows x I), one thread
// per element. It queues the kernel and returns.
func (f *Fused) SwiGLU(y, gate, up *devtensor.Activations) error {
	if gate.Rows != up.Rows || gate.Cols != up.Cols || y.Cols != gate.Cols {
		return fmt.Errorf("swiglu: gate %d x %d, up %d x %d and y of %d columns must have one shape", gate.Rows, gate.Cols, up.Rows, up.Cols, y.Cols)
	}
	if err := y.SetRows(gate.Rows); err != nil {
		return err
	}
	n := gate.Rows * gate.Cols
	cfg := kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(n, Block)), Block: kernels.D1(Block)}
	return f.dev.Launch(f.swiglu, cfg, y.Buf, gate.Buf, up.Buf, int64(n))
}

// AddRMSNorm adds delta into h in place (h += delta) and computes
// y = RMSNorm(h)·w, one block of Block threads per row. It queues the
// kernel and returns.
func (f *Fused) AddRMSNorm(y, h, delta *devtensor.Activations, w *devtensor.Vector, eps float32) error {
	if err := checkNorm("add_rmsnorm", y, w, h, delta); err != nil {
		return err
	}
	cfg := kernels.LaunchConfig{Grid: kernels.D1(h.Rows), Block: kernels.D1(Block)}
	return f.dev.Launch(f.addRMSNorm, cfg, y.Buf, h.Buf, delta.Buf, w.Buf, int32(h.Rows), int32(h.Cols), eps)
}
