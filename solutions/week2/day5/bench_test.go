package day5

// BenchmarkW2D5CPU races each fused CPU loop against the Week 1 operations
// it replaces, on the shapes of a Qwen2-0.5B and a Qwen2-7B layer, for one
// token (decode) and 128 (prefill); the bytes per operation are what the
// fused loop must read and write, so B/s compares the two on one scale.
//
//	go test -run '^$' -bench W2D5CPU ./solutions/week2/day5
//
// BenchmarkW2D5GPU times each kernel with device events, and, on CUDA, the
// unfused pair it replaces (a residual add then RMSNorm; SiLU then a
// product) and a plain copy of the same size as a ceiling, reporting µs per launch and GB/s of the bytes it must move.
//
//	go test -run '^$' -bench W2D5GPU -benchtime 200x ./solutions/week2/day5

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d5"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day2"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day4"
)

func BenchmarkW2D5CPU(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range w2d5.Models {
		table, err := NewRoPETable(m.HeadDim, 4096, m.Theta)
		if err != nil {
			b.Fatal(err)
		}
		w1rope := day2.NewRoPE(m.HeadDim, 4096, m.Theta, false)
		for _, rows := range []int{1, 128} {
			e, in := m.Hidden, m.Inter
			x, delta := w2d5.Random(r, 1, 0, rows, e), w2d5.Random(r, 1, 0, rows, e)
			w := tensor.AsType(w2d5.Random(r, 0.1, 1, e), tensor.BFloat16)
			q, k := w2d5.Random(r, 1, 0, 1, rows, m.Hq, m.HeadDim), w2d5.Random(r, 1, 0, 1, rows, m.Hkv, m.HeadDim)
			gate, up := w2d5.Random(r, 2, 0, rows, in), w2d5.Random(r, 1, 0, rows, in)
			norm := day4.NewRMSNorm(e, w, m.Eps)
			offsets := []int{100}
			normBytes := int64(4*2*rows*e + 2*e)
			ropeBytes := int64(4 * 2 * rows * (m.Hq + m.Hkv) * m.HeadDim)
			cases := []struct {
				op, impl string
				bytes    int64
				run      func()
			}{
				{"RMSNorm", "fused", normBytes, func() { RMSNorm(x, w, m.Eps) }},
				{"RMSNorm", "week1", normBytes, func() { norm.Forward(x) }},
				{"AddRMSNorm", "fused", normBytes + int64(8*rows*e), func() { AddRMSNorm(x, delta, w, m.Eps) }},
				{"AddRMSNorm", "week1", normBytes + int64(8*rows*e), func() { x2 := tensor.Add(x, delta); norm.Forward(x2) }},
				{"RoPE", "fused", ropeBytes, func() { RoPE(q, k, table, offsets) }},
				{"RoPE", "week1", ropeBytes, func() { w1rope.Forward(q, offsets); w1rope.Forward(k, offsets) }},
				{"SwiGLU", "fused", int64(12 * rows * in), func() { SwiGLU(gate, up) }},
				{"SwiGLU", "week1", int64(12 * rows * in), func() { tensor.Mul(day4.SiLU(gate), up) }},
			}
			for _, c := range cases {
				b.Run(fmt.Sprintf("%s/rows=%d/%s/%s", m.Name, rows, c.op, c.impl), func(b *testing.B) {
					b.SetBytes(c.bytes)
					b.ReportAllocs()
					for range b.N {
						c.run()
					}
				})
			}
		}
	}
}

// unfusedCUDA is what the fused kernels replace, one kernel per step, for
// the GPU benchmark's comparison.
const unfusedCUDA = `
extern "C" __global__ void add(float* y, const float* a, const float* b, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a[i] + b[i];
}
extern "C" __global__ void silu(float* y, const float* x, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] / (1.0f + expf(-x[i]));
}
extern "C" __global__ void copy(float* y, const float* x, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i];
}
extern "C" __global__ void mul(float* y, const float* a, const float* b, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a[i] * b[i];
}
`

func BenchmarkW2D5GPU(b *testing.B) {
	d := kerneltest.Open(b)
	f, err := NewFused(d)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var add, silu, mul, cp *kernels.Kernel
	if d.Backend() == kernels.CUDA {
		mod, err := d.Compile(unfusedCUDA)
		if err != nil {
			b.Fatal(err)
		}
		defer mod.Close()
		add, _ = mod.Kernel("add")
		silu, _ = mod.Kernel("silu")
		mul, _ = mod.Kernel("mul")
		cp, _ = mod.Kernel("copy")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, m := range w2d5.Models {
		table, err := NewRoPETable(m.HeadDim, 32768, m.Theta)
		if err != nil {
			b.Fatal(err)
		}
		rope, err := UploadRoPE(d, table)
		if err != nil {
			b.Fatal(err)
		}
		for _, rows := range []int{1, 512, 4096} {
			e, in := m.Hidden, m.Inter
			act := func(cols int) *devtensor.Activations {
				a, err := devtensor.NewActivations(d, rows, cols)
				if err != nil {
					b.Fatal(err)
				}
				if err := a.Upload(w2d5.Random(r, 1, 0, rows, cols)); err != nil {
					b.Fatal(err)
				}
				return a
			}
			x, h, delta, y := act(e), act(e), act(e), act(e)
			q, k := act(m.Hq*m.HeadDim), act(m.Hkv*m.HeadDim)
			gate, up, tmp, out := act(in), act(in), act(in), act(in)
			w, err := devtensor.UploadVector(d, w2d5.Random(r, 0.1, 1, e))
			if err != nil {
				b.Fatal(err)
			}
			offsets, err := kernels.Upload(d, make([]int32, rows))
			if err != nil {
				b.Fatal(err)
			}
			grid := func(n int) kernels.LaunchConfig {
				return kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(n, Block)), Block: kernels.D1(Block)}
			}
			ne, ni := int64(rows*e), int64(rows*in)
			cases := []struct {
				name  string
				bytes int64
				run   func() error
			}{
				{"rmsnorm", 4 * (2*ne + int64(e)), func() error { return f.RMSNorm(y, x, w, m.Eps) }},
				{"add_rmsnorm", 4 * (4*ne + int64(e)), func() error { return f.AddRMSNorm(y, h, delta, w, m.Eps) }},
				{"add_then_rmsnorm", 4 * (4*ne + int64(e)), func() error {
					if add == nil {
						return errSkip
					}
					if err := d.Launch(add, grid(int(ne)), h.Buf, h.Buf, delta.Buf, ne); err != nil {
						return err
					}
					return f.RMSNorm(y, h, w, m.Eps)
				}},
				{"rope", 8 * int64(rows*(m.Hq+m.Hkv)*m.HeadDim), func() error { return f.RoPE(q, k, rope, offsets, 1) }},
				{"swiglu", 12 * ni, func() error { return f.SwiGLU(out, gate, up) }},
				{"silu_then_mul", 12 * ni, func() error {
					if silu == nil {
						return errSkip
					}
					if err := d.Launch(silu, grid(int(ni)), tmp.Buf, gate.Buf, ni); err != nil {
						return err
					}
					return d.Launch(mul, grid(int(ni)), out.Buf, tmp.Buf, up.Buf, ni)
				}},
				// The ceiling on the same buffers: a plain copy of gate.
				{"copy", 8 * ni, func() error {
					if cp == nil {
						return errSkip
					}
					return d.Launch(cp, grid(int(ni)), tmp.Buf, gate.Buf, ni)
				}},
			}
			for _, c := range cases {
				b.Run(fmt.Sprintf("%s/rows=%d/%s", m.Name, rows, c.name), func(b *testing.B) { timeGPU(b, d, c.bytes, c.run) })
			}
			for _, a := range []*devtensor.Activations{x, h, delta, y, q, k, gate, up, tmp, out} {
				a.Free()
			}
			w.Free()
			offsets.Free()
		}
		rope.Free()
	}
}

var errSkip = fmt.Errorf("not run: the unfused comparison kernels are CUDA only")

func timeGPU(b *testing.B, d *kernels.Device, bytes int64, run func() error) {
	if err := run(); err == errSkip {
		b.Skip(err)
	} else if err != nil {
		b.Fatal(err)
	}
	// A GPU that has been idle runs at a fraction of its clocks until the
	// driver raises them, which takes milliseconds of steady work: launch
	// for a while before timing, or a small kernel measures the idle clock.
	for warm := time.Now().Add(100 * time.Millisecond); time.Now().Before(warm); {
		if err := run(); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Synchronize(); err != nil {
		b.Fatal(err)
	}
	per, host := kerneltest.DeviceTime(b, d, b.N, func(int) error { return run() })
	b.ReportMetric(float64(per.Nanoseconds())/1e3, "us/gpu")
	b.ReportMetric(float64(bytes)/per.Seconds()/1e9, "GB/s")
	b.ReportMetric(float64(host.Nanoseconds())/1e3, "us/host")
}
