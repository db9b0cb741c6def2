package day4

// y = x·Wᵀ on the GPU, as a ladder of kernels from naive to fast, in bf16
// and in MLX 4-bit. You write rungs 1 and 2: their kernels in matmul.cu
// (NVIDIA) and matmul.metal (Apple) — the one for your machine is enough to
// pass — and their launches, V1 and V2, below. Rungs 3 and 4
// (matmul_fast.cu, matmul_fast.metal) and everything marked (Provided.) are
// given, to read and to race against.

import (
	_ "embed"
	"fmt"

	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
)

//go:embed matmul.cu
var matmulCUDA string

//go:embed matmul.metal
var matmulMetal string

//go:embed matmul_fast.cu
var fastCUDA string

//go:embed matmul_fast.metal
var fastMetal string

// Rung is one version of the kernel ladder. (Provided.)
type Rung int

// The rungs, naive to fast. (Provided.)
const (
	V1Naive      Rung = 1 // one thread per output
	V2Warp       Rung = 2 // a warp (SIMD group) per output, shuffle reduction
	V3Vector     Rung = 3 // 16-byte loads, up to 8 rows of x per pass over W
	V4TensorCore Rung = 4 // 64 x 64 tiles on the matrix units, for M >= 16
)

// Rungs lists every rung in order. (Provided.)
var Rungs = []Rung{V1Naive, V2Warp, V3Vector, V4TensorCore}

// String names the rung ("v1 naive"). (Provided.)
func (r Rung) String() string {
	switch r {
	case V1Naive:
		return "v1 naive"
	case V2Warp:
		return "v2 warp"
	case V3Vector:
		return "v3 vector"
	case V4TensorCore:
		return "v4 tensor core"
	}
	return fmt.Sprintf("Rung(%d)", int(r))
}

// PrefillRows is the number of rows of x from which Linear picks the tensor
// core rung: below it the product is a few matrix-vector products bound by
// reading W, which rung 3 reads once for every few rows of x. (Provided.)
const PrefillRows = 16

// Block is the threads per block (threadgroup) of every rung: 8 warps of
// 32, so rungs 2 and 3 compute 8 rows of W per block. Rung 4 uses 128.
// (Provided.)
const Block = 256

// Source returns a kernel file of this folder for a backend: file is
// "matmul" (rungs 1 and 2) or "matmul_fast" (rungs 3 and 4); backend is
// kernels.CUDA or kernels.Metal. Anything else gives "". (Provided.)
func Source(backend, file string) string {
	switch backend + "/" + file {
	case kernels.CUDA + "/matmul":
		return matmulCUDA
	case kernels.Metal + "/matmul":
		return matmulMetal
	case kernels.CUDA + "/matmul_fast":
		return fastCUDA
	case kernels.Metal + "/matmul_fast":
		return fastMetal
	}
	return ""
}

// Matmul holds the compiled kernels of every rung for one device.
// (Provided.)
type Matmul struct {
	dev      *kernels.Device
	mods     []*kernels.Module
	bf16, q4 [5]*kernels.Kernel // by rung
	// Rows of W per warp and of x per pass that rung 3 was compiled for.
	v3W, v3X int
	// Rung 3's 4-bit matrix-vector variant (CUDA only) and its rows per warp.
	gemv  *kernels.Kernel
	gvRow int
}

// The CUDA build of rung 3: 4 rows of W per warp, 2 rows of x per pass, 2
// loads in flight per row of W (the benchmark's variants chose these on an
// H200); its 4-bit matrix-vector variant takes gvRows rows of W per warp
// with gvUnroll loads in flight per row, its registers capped so that
// gvMinB blocks fit on a multiprocessor (BenchmarkW2D4GemvVariants). The Metal source has 1 and 8
// written in, and no matrix-vector variant.
var cudaV3 = v3Config{wrows: 4, xrows: 2, unroll: 2, gvRows: 8, gvUnroll: 1, gvMinB: 2}

type v3Config struct{ wrows, xrows, unroll, gvRows, gvUnroll, gvMinB int }

// NewMatmul compiles both kernel files for dev and looks up the kernels
// matmul_bf16_v1 … v4 and matmul_q4_v1 … v4. A compile error carries the
// compiler's log. (Provided.)
func NewMatmul(dev *kernels.Device) (*Matmul, error) { return newMatmul(dev, cudaV3) }

func newMatmul(dev *kernels.Device, v3 v3Config) (*Matmul, error) {
	m := &Matmul{dev: dev, v3W: 1, v3X: 8}
	var opts []string
	if dev.Backend() == kernels.CUDA {
		m.v3W, m.v3X = v3.wrows, v3.xrows
		m.gvRow = v3.gvRows
		opts = []string{fmt.Sprintf("-DV3_WROWS=%d", v3.wrows), fmt.Sprintf("-DV3_ROWS=%d", v3.xrows), fmt.Sprintf("-DV3_UNROLL=%d", v3.unroll),
			fmt.Sprintf("-DGV_ROWS=%d", v3.gvRows), fmt.Sprintf("-DGV_UNROLL=%d", v3.gvUnroll), fmt.Sprintf("-DGV_MINB=%d", v3.gvMinB)}
	}
	for _, file := range []struct {
		name  string
		rungs []Rung
	}{{"matmul", []Rung{V1Naive, V2Warp}}, {"matmul_fast", []Rung{V3Vector, V4TensorCore}}} {
		mod, err := dev.Compile(Source(dev.Backend(), file.name), opts...)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("compiling %s for %s: %w", file.name, dev.Backend(), err)
		}
		m.mods = append(m.mods, mod)
		for _, r := range file.rungs {
			if m.bf16[r], err = mod.Kernel(fmt.Sprintf("matmul_bf16_v%d", r)); err == nil {
				m.q4[r], err = mod.Kernel(fmt.Sprintf("matmul_q4_v%d", r))
			}
			if err != nil {
				m.Close()
				return nil, err
			}
		}
		if file.name == "matmul_fast" && dev.Backend() == kernels.CUDA {
			if m.gemv, err = mod.Kernel("matmul_q4_gemv"); err != nil {
				m.Close()
				return nil, err
			}
		}
	}
	return m, nil
}

// Close unloads the kernels. (Provided.)
func (m *Matmul) Close() error {
	var first error
	for _, mod := range m.mods {
		if err := mod.Close(); err != nil && first == nil {
			first = err
		}
	}
	m.mods = nil
	return first
}

// check validates the shapes of y = x·Wᵀ and sets y's rows. (Provided.)
func check(y, x *devtensor.Activations, w *devtensor.Weight) error {
	if x.Cols != w.K {
		return fmt.Errorf("matmul: x is %d x %d but W is %d x %d: x's columns must be W's K", x.Rows, x.Cols, w.N, w.K)
	}
	if y.Cols != w.N {
		return fmt.Errorf("matmul: y has %d columns, want W's N = %d", y.Cols, w.N)
	}
	return y.SetRows(x.Rows)
}

// args are a launch's arguments in the kernels' order: y, x, then W (bf16)
// or its words, scales and biases (4-bit), then M, N, K and, for 4-bit, the
// group size, as int32. (Provided.)
func args(y, x *devtensor.Activations, w *devtensor.Weight) []any {
	if w.Quantized() {
		return []any{y.Buf, x.Buf, w.W, w.Scales, w.Biases, int32(x.Rows), int32(w.N), int32(w.K), int32(w.GroupSize)}
	}
	return []any{y.Buf, x.Buf, w.W, int32(x.Rows), int32(w.N), int32(w.K)}
}

func (m *Matmul) kernel(r Rung, w *devtensor.Weight) *kernels.Kernel {
	if w.Quantized() {
		return m.q4[r]
	}
	return m.bf16[r]
}

// V1 computes y = x·Wᵀ with one thread per output element: Block threads
// per block and just enough blocks for the M·N outputs, on a
// one-dimensional grid. It queues the kernel and returns without waiting.
func (m *Matmul) V1(y, x *devtensor.Activations, w *devtensor.Weight) error {
	// Your code here (W2D4).
	panic("TODO(W2D4): implement Matmul.V1")
}

// V2 computes y = x·Wᵀ with one warp (SIMD group) of 32 threads per output
// element: Block threads per block make Block/32 warps, which take
// consecutive rows n of W for one row m of x; the grid is ceil(N/(Block/32))
// blocks along X and M along Y. It queues the kernel and returns without
// waiting.
func (m *Matmul) V2(y, x *devtensor.Activations, w *devtensor.Weight) error {
	// Your code here (W2D4).
	panic("TODO(W2D4): implement Matmul.V2")
}

// V3 computes y = x·Wᵀ with 16-byte loads of W, each warp taking a few rows
// of W and a few rows of x per pass (grid Y covers the passes). bf16 weights
// need K to be a multiple of 8 (a row must start on 16 bytes); 4-bit ones
// always qualify. On CUDA a 4-bit product with one row of x goes to the
// matrix-vector variant matmul_q4_gemv. (Provided.)
func (m *Matmul) V3(y, x *devtensor.Activations, w *devtensor.Weight) error {
	if err := check(y, x, w); err != nil {
		return err
	}
	if w.K%8 != 0 {
		return fmt.Errorf("matmul v3: K = %d is not a multiple of 8; use V2", w.K)
	}
	if m.gemv != nil && w.Quantized() && x.Rows == 1 {
		wk := gemvSplit(w.N, w.K, m.gvRow, m.dev.Info().Multiprocessors)
		cfg := kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(w.N, m.gvRow*(Block/32)/wk)), Block: kernels.D1(Block)}
		return m.dev.Launch(m.gemv, cfg, y.Buf, x.Buf, w.W, w.Scales, w.Biases, int32(w.N), int32(w.K), int32(w.GroupSize), int32(wk))
	}
	cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: kernels.Blocks(w.N, m.v3W*Block/32), Y: kernels.Blocks(x.Rows, m.v3X), Z: 1}, Block: kernels.D1(Block)}
	return m.dev.Launch(m.kernel(V3Vector, w), cfg, args(y, x, w)...)
}

// gemvSplit is how many warps of a block share one set of rows (1, 2, 4 or
// 8) in matmul_q4_gemv: the fewest that give about four blocks per
// multiprocessor, as long as every lane still has a 16-byte piece of a row
// to load.
func gemvSplit(n, k, rows, sms int) int {
	wk, k32 := 1, k/32
	for wk < Block/32 && kernels.Blocks(n, rows*(Block/32)/wk) < 4*max(sms, 1) && 32*2*wk <= k32 {
		wk *= 2
	}
	return wk
}

// V4 computes y = x·Wᵀ on the matrix units (CUDA: mma.sync on bf16 with
// float32 accumulation; Metal: simdgroup matrices), each block a 64 x 64
// tile of y, 128 threads. x is rounded to bf16 on the way in on CUDA, which
// the chapter's looser v4 tolerance accounts for. K must be a multiple of 8.
// (Provided.)
func (m *Matmul) V4(y, x *devtensor.Activations, w *devtensor.Weight) error {
	if err := check(y, x, w); err != nil {
		return err
	}
	if w.K%8 != 0 {
		return fmt.Errorf("matmul v4: K = %d is not a multiple of 8; use V2", w.K)
	}
	cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: kernels.Blocks(w.N, 64), Y: kernels.Blocks(x.Rows, 64), Z: 1}, Block: kernels.D1(128)}
	return m.dev.Launch(m.kernel(V4TensorCore, w), cfg, args(y, x, w)...)
}

// Run launches one rung. (Provided.)
func (m *Matmul) Run(r Rung, y, x *devtensor.Activations, w *devtensor.Weight) error {
	switch r {
	case V1Naive:
		return m.V1(y, x, w)
	case V2Warp:
		return m.V2(y, x, w)
	case V3Vector:
		return m.V3(y, x, w)
	case V4TensorCore:
		return m.V4(y, x, w)
	}
	return fmt.Errorf("matmul: no rung %d", int(r))
}

// Pick is the rung Linear uses for M rows of x and weight w: the tensor
// core tiles from PrefillRows rows, the vector kernel below, and the warp
// kernel when K rules the vector loads out. (Provided.)
func Pick(rows int, w *devtensor.Weight) Rung {
	switch {
	case w.K%8 != 0:
		return V2Warp
	case rows >= PrefillRows:
		return V4TensorCore
	}
	return V3Vector
}

// Linear computes y = x·Wᵀ with the rung Pick chooses. It queues the work
// and returns; Download (or the device's Synchronize) waits for it.
// (Provided.)
func (m *Matmul) Linear(y, x *devtensor.Activations, w *devtensor.Weight) error {
	return m.Run(Pick(x.Rows, w), y, x, w)
}
