package day4

// y = x·Wᵀ on the GPU, as a ladder of kernels from naive to fast, in bf16
// and in MLX 4-bit. matmul.cu / matmul.metal hold rungs 1 and 2 (the
// learner's), matmul_fast.cu / matmul_fast.metal rungs 3 to 5, and
// matmul_wgmma.cu rung 6 (Hopper).

import (
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"

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

//go:embed matmul_wgmma.cu
var wgmmaCUDA string

// Rung is one version of the kernel ladder. (Provided.)
type Rung int

// The rungs, naive to fast. (Provided.)
const (
	V1Naive      Rung = 1 // one thread per output
	V2Warp       Rung = 2 // a warp (SIMD group) per output, shuffle reduction
	V3Vector     Rung = 3 // 16-byte loads, up to 8 rows of x per pass over W
	V4TensorCore Rung = 4 // 64 x 64 tiles on the matrix units, for M >= 16
	V5Pipelined  Rung = 5 // 128-wide tiles fed by asynchronous copies (CUDA)
	V6Warpgroup  Rung = 6 // Hopper's warpgroup products (wgmma) on rung 5's tiles
)

// Rungs lists every rung in order. (Provided.)
var Rungs = []Rung{V1Naive, V2Warp, V3Vector, V4TensorCore, V5Pipelined, V6Warpgroup}

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
	case V5Pipelined:
		return "v5 pipelined"
	case V6Warpgroup:
		return "v6 warpgroup"
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
// "matmul" (rungs 1 and 2), "matmul_fast" (rungs 3 to 5) or, for CUDA only,
// "matmul_wgmma" (rung 6); backend is kernels.CUDA or kernels.Metal.
// Anything else gives "". (Provided.)
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
	case kernels.CUDA + "/matmul_wgmma":
		return wgmmaCUDA
	}
	return ""
}

// Matmul holds the compiled kernels of every rung for one device.
// (Provided.)
type Matmul struct {
	dev      *kernels.Device
	mods     []*kernels.Module
	bf16, q4 [5]*kernels.Kernel // by rung, 1 to 4
	// Rung 5 (CUDA only): the kernels for 128- and 64-wide tiles of W,
	// x's conversion to bf16, and the bf16 copy of x it writes.
	v5, v5n64, toBF16  *kernels.Kernel
	v5split, sumSplits *kernels.Kernel // rung 5 over ranges of K, and their sum
	xbf, part          *kernels.Buffer // x rounded to bf16; split rung 5's partial results
	// Rung 6 (compute capability 9.0 only, else nil): 128 x 128 tiles
	// (and their deep build), 64 x 128, 128 x 64 and 128 x 256 tiles, the
	// split-K build, the stages it was compiled for, and the benchmark's
	// knobs (v6BM, v6BN 0: pick by shape, else always tiles that tall or
	// wide; v6Split 0: pick, else always that many ranges of K; v6Deep:
	// always the deep build).
	v6, v6deep, v6m64, v6n64, v6n256, v6split *kernels.Kernel
	v6Stages, v6BM, v6BN, v6Split             int
	v6Deep                                    bool
	v6Err                                     error // why rung 6 did not compile on a 9.0 device, if it did not
	// 4-bit W decoded to bf16 for rungs 5 and 6 (q4ToBF16 writes wbf).
	q4ToBF16 *kernels.Kernel
	wbf      *kernels.Buffer
	// The tensor-core matrix-vector variant's preparation of x, and x
	// prepared.
	prepX          *kernels.Kernel
	xq             *kernels.Buffer
	v5BK, v5Stages int
	v5BN           int // 0: pick by shape; 64 or 128: always (benchmark)
	// Rows of W per warp and of x per pass that rung 3 was compiled for.
	v3W, v3X int
	// Rung 3's 4-bit matrix-vector variants (CUDA only): float32, with its
	// rows per warp, and on the tensor cores, 16 or 32 rows per warp.
	gemv   *kernels.Kernel
	gvRow  int
	gemvTC [3]*kernels.Kernel
	tcRT   int // 0: pick by shape; 1 or 2: always that kernel (benchmark)
	// The staged-x matrix-vector variant, and the benchmark's knobs: gxOn
	// makes V3 take it, gxWK forces the warps per set of rows, gxCap caps
	// the grid at gxCap blocks a multiprocessor.
	gemvX       *kernels.Kernel
	gxOn        bool
	gxWK, gxCap int
	// The matrix-vector variant on x in int8 parts, V3's pick for one row
	// of x and a 4-bit W, and the benchmark's knobs: q8Off makes V3 take
	// the older variants, q8WK and q8Cap are gxWK and gxCap for it.
	gemvQ8      *kernels.Kernel
	q8Off       bool
	q8WK, q8Cap int
	q8Levels    int // int8 parts of x it was compiled for (MQ_LEVELS)
	// Its build with two slices of a row a round (matmul_q4_gemv_q8_u2),
	// V3's pick where rows are no more than columns or long (u2Cols);
	// q8U2 forces it on (1) or off (-1) (benchmark; 0: by shape).
	gemvQ8U2 *kernels.Kernel
	q8U2     int
	// Its build whose last q8ProdWarps warps stage x while the others
	// multiply (matmul_q4_gemv_q8_u2p), V3's pick where it would take the
	// two-slice build with one warp a set of rows and rows of at least
	// prodCols columns; q8Prod forces it on (1) or off (-1) (benchmark and
	// checks; 0: by shape).
	gemvQ8U2P   *kernels.Kernel
	q8Prod      int
	q8ProdWarps int // the producer warps it was compiled for (MQ_PROD)
	// The int8-part kernels on x already rounded in device memory
	// (V3Rounded): copied into each block's shared memory first
	// (matmul_q4_gemv_q8r, _q8r_u2) or read where it is (_q8rd, _q8rd_u2;
	// rxDirect forces those on (1) or off (-1), 0: by shape); and the
	// launch that rounds x (matmul_q8_round_x: RoundX).
	gemvQ8R, gemvQ8RU2, gemvQ8RU2P, gemvQ8RD, gemvQ8RDU2, roundX *kernels.Kernel
	rxDirect                                                     int
	// The copying kernel with four slices a round (matmul_q4_gemv_q8r_u4),
	// for rows that are one such round (u4Rows, u4Picked); rxU4 forces it
	// on (1) or off (-1) where V3Rounded copies x without producer warps
	// (benchmark and checks; 0: by shape).
	gemvQ8RU4 *kernels.Kernel
	rxU4      int
	// Rung 3's bf16 and staged-x kernels ask for their first weights
	// before they wait for the launch ahead, and are launched with
	// Overlap: inside a captured graph they start while it drains. noPDL
	// launches them plainly (benchmark); v3WK forces the warps per set of
	// rows of the bf16 kernel (benchmark; 0: v3Split's pick); l2Pre
	// forces their request for all their weights into L2 on (1) or off
	// (-1) (benchmark; 0: l2Prefetch's pick).
	noPDL bool
	v3WK  int
	l2Pre int
}

// l2PrefetchMax is the largest W (bytes as stored) whose blocks ask for all
// of it into L2 before they wait for the launch ahead.
const l2PrefetchMax = 16 << 20

// l2Prefetch is the pre argument of rung 3's bf16 and staged-x kernels for
// W: 1 when its blocks ask for all their weights into L2 before they wait
// for the launch ahead. That pays for a small W, whose blocks are all on
// the GPU at once; a large one's later blocks start only as earlier ones
// finish, and its registers' first round already keeps the memory busy.
func (m *Matmul) l2Prefetch(w *devtensor.Weight) int32 {
	if m.l2Pre > 0 || m.l2Pre == 0 && w.Bytes() <= l2PrefetchMax {
		return 1
	}
	return 0
}

// The CUDA build of rung 3: 4 rows of W per warp, 2 rows of x per pass, 2
// loads in flight per row of W (the benchmark's variants chose these on an
// H200); its 4-bit matrix-vector variant takes gvRows rows of W per warp
// with gvUnroll loads in flight per row, its registers capped so that
// gvMinB blocks fit on a multiprocessor (BenchmarkW2D4GemvVariants). The Metal source has 1 and 8
// written in, and no matrix-vector variant.
var cudaV3 = v3Config{wrows: 4, xrows: 2, unroll: 2, gvRows: 8, gvUnroll: 1, gvMinB: 2, qtU: 1, v5BK: 64, v5Stages: 3, v6Stages: 3}

type v3Config struct {
	wrows, xrows, unroll, gvRows, gvUnroll, gvMinB, qtU int
	v5BK, v5Stages                                      int    // rung 5's slice width and stages
	v6Stages                                            int    // rung 6's stages
	v6InFlight                                          bool   // rung 6 keeps a slice's products in flight (W6_INFLIGHT)
	extra                                               string // more -D options (benchmark)
}

// NewMatmul compiles both kernel files for dev and looks up the kernels
// matmul_bf16_v1 … v4 and matmul_q4_v1 … v4 (and, on CUDA, rung 5's
// kernels). A compile error carries the
// compiler's log. (Provided.)
func NewMatmul(dev *kernels.Device) (*Matmul, error) { return newMatmul(dev, cudaV3) }

func newMatmul(dev *kernels.Device, v3 v3Config) (*Matmul, error) {
	m := &Matmul{dev: dev, v3W: 1, v3X: 8, q8Levels: 3, q8ProdWarps: 4}
	for _, o := range strings.Fields(v3.extra) {
		for _, d := range []struct {
			prefix string
			to     *int
		}{{"-DMQ_LEVELS=", &m.q8Levels}, {"-DMQ_PROD=", &m.q8ProdWarps}} {
			if n, ok := strings.CutPrefix(o, d.prefix); ok {
				if l, err := strconv.Atoi(n); err == nil {
					*d.to = l
				}
			}
		}
	}
	var opts []string
	if dev.Backend() == kernels.CUDA {
		m.v3W, m.v3X = v3.wrows, v3.xrows
		m.gvRow = v3.gvRows
		opts = []string{fmt.Sprintf("-DV3_WROWS=%d", v3.wrows), fmt.Sprintf("-DV3_ROWS=%d", v3.xrows), fmt.Sprintf("-DV3_UNROLL=%d", v3.unroll),
			fmt.Sprintf("-DGV_ROWS=%d", v3.gvRows), fmt.Sprintf("-DGV_UNROLL=%d", v3.gvUnroll), fmt.Sprintf("-DGV_MINB=%d", v3.gvMinB), fmt.Sprintf("-DQT_U=%d", v3.qtU),
			fmt.Sprintf("-DV5_BK=%d", v3.v5BK), fmt.Sprintf("-DV5_STAGES=%d", v3.v5Stages)}
		m.v5BK, m.v5Stages = v3.v5BK, v3.v5Stages
		opts = append(opts, strings.Fields(v3.extra)...)
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
			m.gemv, err = mod.Kernel("matmul_q4_gemv")
			if err == nil {
				m.gemvX, err = mod.Kernel("matmul_q4_gemv_x")
			}
			if err == nil {
				m.gemvQ8, err = mod.Kernel("matmul_q4_gemv_q8")
			}
			if err == nil {
				m.gemvQ8U2, err = mod.Kernel("matmul_q4_gemv_q8_u2")
			}
			if err == nil {
				m.gemvQ8U2P, err = mod.Kernel("matmul_q4_gemv_q8_u2p")
			}
			for _, k := range []struct {
				to   **kernels.Kernel
				name string
			}{{&m.gemvQ8R, "matmul_q4_gemv_q8r"}, {&m.gemvQ8RU2, "matmul_q4_gemv_q8r_u2"}, {&m.gemvQ8RU2P, "matmul_q4_gemv_q8r_u2p"},
				{&m.gemvQ8RD, "matmul_q4_gemv_q8rd"}, {&m.gemvQ8RDU2, "matmul_q4_gemv_q8rd_u2"}, {&m.gemvQ8RU4, "matmul_q4_gemv_q8r_u4"}} {
				if err == nil {
					*k.to, err = mod.Kernel(k.name)
				}
			}
			if err == nil {
				m.roundX, err = mod.Kernel("matmul_q8_round_x")
			}
			for rt := 1; rt <= 2 && err == nil; rt++ {
				m.gemvTC[rt], err = mod.Kernel(fmt.Sprintf("matmul_q4_gemv_tc%d", rt))
			}
			if err == nil {
				if m.v5, err = mod.Kernel("matmul_bf16_v5"); err == nil {
					if m.v5n64, err = mod.Kernel("matmul_bf16_v5_n64"); err == nil {
						if m.toBF16, err = mod.Kernel("x_to_bf16"); err == nil {
							if m.prepX, err = mod.Kernel("q4_prep_x"); err == nil {
								if m.v5split, err = mod.Kernel("matmul_bf16_v5_splitk"); err == nil {
									if m.sumSplits, err = mod.Kernel("matmul_sum_splits"); err == nil {
										m.q4ToBF16, err = mod.Kernel("q4_to_bf16")
									}
								}
							}
						}
					}
				}
			}
			if err != nil {
				m.Close()
				return nil, err
			}
		}
	}
	if dev.Backend() == kernels.CUDA && dev.Info().ComputeCapability == "9.0" {
		if err := m.loadV6(v3.v6Stages, v3.v6InFlight); err != nil {
			// An NVRTC older than CUDA 12 has no sm_90a target: rung 6
			// then runs rung 5, and V6Unavailable says why.
			var ce *kernels.CompileError
			if !errors.As(err, &ce) {
				m.Close()
				return nil, err
			}
			m.v6Err = err
		}
	}
	return m, nil
}

// V6Unavailable says why rung 6 runs rung 5 on this device: nil where it
// runs (compute capability 9.0 and an NVRTC that knows sm_90a), else the
// reason. (Provided.)
func (m *Matmul) V6Unavailable() error {
	switch {
	case m.v6 != nil:
		return nil
	case m.v6Err != nil:
		return m.v6Err
	}
	return fmt.Errorf("rung 6 needs an NVIDIA GPU of compute capability 9.0; this device is %s", m.dev)
}

// loadV6 compiles rung 6 for sm_90a, the target with Hopper's warpgroup
// instructions, whose machine code runs on compute capability 9.0 only.
func (m *Matmul) loadV6(stages int, inFlight bool) error {
	flight := 0
	if inFlight {
		flight = 1
	}
	mod, err := m.dev.Compile(wgmmaCUDA, "--gpu-architecture=sm_90a", fmt.Sprintf("-DW6_STAGES=%d", stages), fmt.Sprintf("-DW6_INFLIGHT=%d", flight))
	if err != nil {
		return fmt.Errorf("compiling matmul_wgmma for sm_90a: %w", err)
	}
	m.mods = append(m.mods, mod)
	m.v6Stages = stages
	for _, k := range []struct {
		p    **kernels.Kernel
		name string
	}{{&m.v6, "matmul_bf16_v6"}, {&m.v6deep, "matmul_bf16_v6_deep"}, {&m.v6m64, "matmul_bf16_v6_m64"}, {&m.v6n64, "matmul_bf16_v6_n64"}, {&m.v6n256, "matmul_bf16_v6_n256"}, {&m.v6split, "matmul_bf16_v6_splitk"}} {
		if *k.p, err = mod.Kernel(k.name); err != nil {
			return err
		}
	}
	return nil
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
	for _, b := range []**kernels.Buffer{&m.xbf, &m.xq, &m.part, &m.wbf} {
		if *b != nil {
			if err := (*b).Free(); err != nil && first == nil {
				first = err
			}
			*b = nil
		}
	}
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
	if err := check(y, x, w); err != nil {
		return err
	}
	cfg := kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(x.Rows*w.N, Block)), Block: kernels.D1(Block)}
	return m.dev.Launch(m.kernel(V1Naive, w), cfg, args(y, x, w)...)
}

// V2 computes y = x·Wᵀ with one warp (SIMD group) of 32 threads per output
// element: Block threads per block make Block/32 warps, which take
// consecutive rows n of W for one row m of x; the grid is ceil(N/(Block/32))
// blocks along X and M along Y. It queues the kernel and returns without
// waiting.
func (m *Matmul) V2(y, x *devtensor.Activations, w *devtensor.Weight) error {
	if err := check(y, x, w); err != nil {
		return err
	}
	cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: kernels.Blocks(w.N, Block/32), Y: x.Rows, Z: 1}, Block: kernels.D1(Block)}
	return m.dev.Launch(m.kernel(V2Warp, w), cfg, args(y, x, w)...)
}

// V3 computes y = x·Wᵀ with 16-byte loads of W, each warp taking a few rows
// of W and a few rows of x per pass (grid Y covers the passes). bf16 weights
// need K to be a multiple of 8 (a row must start on 16 bytes); 4-bit ones
// always qualify. On CUDA a 4-bit product with one row of x goes to the
// matrix-vector variant on x in int8 parts, matmul_q4_gemv_q8 (the older
// variants remain for the benchmark). (Provided.)
func (m *Matmul) V3(y, x *devtensor.Activations, w *devtensor.Weight) error {
	if err := check(y, x, w); err != nil {
		return err
	}
	if w.K%8 != 0 {
		return fmt.Errorf("matmul v3: K = %d is not a multiple of 8; use V2", w.K)
	}
	if m.tcRT == 0 && !m.gxOn && m.useQ8(x, w) {
		return m.v3Q8(y, x, w)
	}
	if m.gemvX != nil && m.gxOn && m.tcRT == 0 && w.Quantized() && x.Rows == 1 && w.K%64 == 0 && gemvXShared(w.K) <= maxStagedShared {
		return m.launchStaged(m.gemvX, gemvXShared(w.K), m.gxWK, m.gxCap, y, x.Buf, w)
	}
	if m.gemvTC[1] != nil && m.tcRT >= 0 && w.Quantized() && x.Rows == 1 && w.K%128 == 0 && (w.GroupSize == 64 || w.GroupSize == 128) &&
		(w.N >= tcMinN || m.tcRT > 0) {
		rt, wk := tcSplit(w.N, w.K/128, m.dev.Info().Multiprocessors)
		if m.tcRT > 0 {
			rt, wk = m.tcRT, tcSplitRT(w.N, w.K/128, m.tcRT, m.dev.Info().Multiprocessors)
		}
		xf, err := m.scratch(&m.xq, 4*w.K+4*(w.K/w.GroupSize))
		if err != nil {
			return err
		}
		if err := m.dev.Launch(m.prepX, kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(w.K/4, Block)), Block: kernels.D1(Block)},
			xf, x.Buf, int32(w.K), int32(w.GroupSize)); err != nil {
			return err
		}
		cfg := kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(w.N, 16*rt*(Block/32)/wk)), Block: kernels.D1(Block)}
		return m.dev.Launch(m.gemvTC[rt], cfg, y.Buf, xf, w.W, w.Scales, w.Biases, int32(w.N), int32(w.K), int32(w.GroupSize), int32(wk))
	}
	if m.gemv != nil && w.Quantized() && x.Rows == 1 {
		wk := gemvSplit(w.N, w.K, m.gvRow, m.dev.Info().Multiprocessors)
		cfg := kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(w.N, m.gvRow*(Block/32)/wk)), Block: kernels.D1(Block)}
		return m.dev.Launch(m.gemv, cfg, y.Buf, x.Buf, w.W, w.Scales, w.Biases, int32(w.N), int32(w.K), int32(w.GroupSize), int32(wk))
	}
	passes := kernels.Blocks(x.Rows, m.v3X)
	if w.Quantized() {
		cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: kernels.Blocks(w.N, m.v3W*Block/32), Y: passes, Z: 1}, Block: kernels.D1(Block)}
		return m.dev.Launch(m.kernel(V3Vector, w), cfg, args(y, x, w)...)
	}
	// bf16: wk warps of a block share a set of rows when rows are few.
	wk := v3Split(w.N, w.K/8, m.v3W, passes, m.dev.Info().Multiprocessors)
	if m.v3WK > 0 {
		wk = m.v3WK
	}
	cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: kernels.Blocks(w.N, m.v3W*(Block/32)/wk), Y: passes, Z: 1}, Block: kernels.D1(Block),
		Overlap: !m.noPDL}
	return m.dev.Launch(m.bf16[V3Vector], cfg, y.Buf, x.Buf, w.W, int32(x.Rows), int32(w.N), int32(w.K), int32(wk), m.l2Prefetch(w))
}

// launchStaged launches a staged-x matrix-vector kernel (matmul_q4_gemv_x
// or matmul_q4_gemv_q8) with smem bytes of shared memory, x in xb: wk
// warps per set of 4 rows (0: by shape), the grid capped at capB blocks a
// multiprocessor (0: a block for every 8/wk sets).
func (m *Matmul) launchStaged(k *kernels.Kernel, smem, wk, capB int, y *devtensor.Activations, xb *kernels.Buffer, w *devtensor.Weight) error {
	if wk == 0 {
		wk = gemvXSplit(w.N, w.K/32, m.dev.Info().Multiprocessors)
	}
	grid := kernels.Blocks(w.N, 4*(Block/32)/wk)
	if capB > 0 {
		grid = min(grid, capB*max(1, m.dev.Info().Multiprocessors))
	}
	cfg := kernels.LaunchConfig{Grid: kernels.D1(grid), Block: kernels.D1(Block), SharedMem: smem, Overlap: !m.noPDL}
	return m.dev.Launch(k, cfg, y.Buf, xb, w.W, w.Scales, w.Biases, int32(w.N), int32(w.K), int32(w.GroupSize), int32(wk), m.l2Prefetch(w))
}

// prodCols is the row length from which v3Q8 stages x in producer warps
// of their own (matmul_q4_gemv_q8_u2p). On an H200, from a graph with
// programmatic dependent launch, the 7B down projection (18,944 columns)
// took 14.5 µs with four producer warps against 15.7 with every warp
// staging x first; the 7B gate/up and q/o projections (3,584 columns,
// two rounds of x) 14.3 against 13.5 and 4.9 against 4.9
// (BenchmarkW2D4GemvVariants' producers rows). No shape between was
// measured.
const prodCols = 8192

// launchProducers launches matmul_q4_gemv_q8_u2p: one block a
// multiprocessor at most (its registers), each of Block/32 warps taking
// sets of 4 rows, and q8ProdWarps more warps staging x (MQ_PROD, 4 unless
// a benchmark build sets it).
func (m *Matmul) launchProducers(k *kernels.Kernel, smem int, y *devtensor.Activations, xb *kernels.Buffer, w *devtensor.Weight) error {
	grid := min(kernels.Blocks(w.N, 4*(Block/32)), max(1, m.dev.Info().Multiprocessors))
	cfg := kernels.LaunchConfig{Grid: kernels.D1(grid), Block: kernels.D1(Block + 32*m.q8ProdWarps), SharedMem: smem, Overlap: !m.noPDL}
	return m.dev.Launch(k, cfg, y.Buf, xb, w.W, w.Scales, w.Biases, int32(w.N), int32(w.K), int32(w.GroupSize), int32(1), m.l2Prefetch(w))
}

// gemvQ8Shared is the shared memory matmul_q4_gemv_q8 stages x in, with
// x in levels int8 parts: a byte per column a part, and a scale and a sum
// per 32 columns.
func gemvQ8Shared(k, levels int) int { return levels*k + 8*(k/32) }

// useQ8 says whether V3 takes the variant on x in int8 parts: CUDA, one
// row of x, a 4-bit W whose x fits the shared memory.
func (m *Matmul) useQ8(x *devtensor.Activations, w *devtensor.Weight) bool {
	return m.gemvQ8 != nil && !m.q8Off && w.Quantized() && x.Rows == 1 && w.K%32 == 0 && gemvQ8Shared(w.K, m.q8Levels) <= maxStagedShared
}

// v3Q8 computes y = x·Wᵀ for one row of x and a 4-bit W with
// matmul_q4_gemv_q8: x written as three int8 parts (float32's precision)
// in each block's shared memory, a scale per 32 values, the codes
// multiplied by __dp4a. Where W has no more rows than columns, or rows of
// at least u2Cols columns, it takes matmul_q4_gemv_q8_u2, the same products
// with two slices of each row in flight a lane (BenchmarkW2D4Overlap's
// "u2" rows), and there, with one warp a set of rows of at least prodCols
// columns, matmul_q4_gemv_q8_u2p, whose own warps stage x while the others
// multiply.
func (m *Matmul) v3Q8(y, x *devtensor.Activations, w *devtensor.Weight) error {
	if err := check(y, x, w); err != nil {
		return err
	}
	if m.gemvQ8 == nil || !w.Quantized() || x.Rows != 1 || w.K%32 != 0 || gemvQ8Shared(w.K, m.q8Levels) > maxStagedShared {
		return fmt.Errorf("matmul: the int8-part variant takes one row of x and a 4-bit W on CUDA (K = %d)", w.K)
	}
	return m.launchQ8(m.planQ8(w), [3]*kernels.Kernel{m.gemvQ8, m.gemvQ8U2, m.gemvQ8U2P}, gemvQ8Shared(w.K, m.q8Levels), y, x.Buf, w)
}

// launchQ8 launches the int8-part kernel that plan p picks among ks (one
// slice a round, two, two with producer warps) on x in xb, with smem
// bytes of shared memory.
func (m *Matmul) launchQ8(p q8Plan, ks [3]*kernels.Kernel, smem int, y *devtensor.Activations, xb *kernels.Buffer, w *devtensor.Weight) error {
	switch {
	case p.prod:
		return m.launchProducers(ks[2], smem, y, xb, w)
	case p.u2:
		return m.launchStaged(ks[1], smem, p.wk, p.capB, y, xb, w)
	default:
		return m.launchStaged(ks[0], smem, p.wk, p.capB, y, xb, w)
	}
}

// q8Plan is how v3Q8 runs a product on W: the two-slice kernel or the
// one-slice one, the warps a set of rows, the grid's cap in blocks a
// multiprocessor, and whether the two-slice kernel's x is staged by
// producer warps.
type q8Plan struct {
	u2, prod bool
	wk, capB int
}

// planQ8 is the q8Plan for W, by its shape unless the benchmark's knobs
// (q8U2, q8WK, q8Cap, q8Prod) force a part of it.
func (m *Matmul) planQ8(w *devtensor.Weight) q8Plan {
	sms := m.dev.Info().Multiprocessors
	p := q8Plan{wk: m.q8WK, capB: m.q8Cap}
	if m.q8U2 > 0 || (m.q8U2 == 0 && (w.N <= w.K || w.K >= u2Cols)) {
		// One block a multiprocessor (its registers), so no more blocks
		// than multiprocessors: a second wave would run alone at the end.
		p.u2, p.capB = true, 1
		if p.wk == 0 {
			p.wk = q8Split(w.N, w.K/32, sms)
			for p.wk > 1 && kernels.Blocks(w.N, 4*(Block/32)/p.wk) > max(sms, 1) {
				p.wk /= 2
			}
		}
		p.prod = p.wk == 1 && (m.q8Prod > 0 || m.q8Prod == 0 && w.K >= prodCols)
		return p
	}
	if p.wk == 0 {
		p.wk = q8Split(w.N, w.K/32, sms)
	}
	if p.capB == 0 {
		p.capB = q8BlocksPerSM
	}
	return p
}

// RoundedX is one row of x rounded into int8 parts, in the layout V3's
// int8-part kernels stage x in (three parts of K codes, then a scale and
// a sum for each 32 values), kept in device memory so that every product
// reading x reads it as it is instead of each block rounding all of x
// again. A kernel that writes x can write it this way (Week 2 Day 7's
// step does); RoundX does it as a launch of its own.
type RoundedX struct {
	Buf *kernels.Buffer
	K   int
}

// NewRoundedX allocates a RoundedX for a row of k values, k a multiple of
// 32. (Provided.)
func (m *Matmul) NewRoundedX(k int) (*RoundedX, error) {
	if m.roundX == nil {
		return nil, fmt.Errorf("matmul: x rounded ahead needs the CUDA kernels")
	}
	if k <= 0 || k%32 != 0 {
		return nil, fmt.Errorf("matmul: x rounded into int8 parts needs a multiple of 32 values, got %d", k)
	}
	b, err := m.dev.Alloc(roundedBytes(k, m.q8Levels))
	if err != nil {
		return nil, err
	}
	return &RoundedX{Buf: b, K: k}, nil
}

// Free releases r's device memory. (Provided.)
func (r *RoundedX) Free() error { return r.Buf.Free() }

// RoundX rounds the one row of x into r (matmul_q8_round_x, a warp a
// slice of 32 values), code for code as the staged kernels round it.
// (Provided.)
func (m *Matmul) RoundX(r *RoundedX, x *devtensor.Activations) error {
	if x.Rows != 1 || x.Cols != r.K {
		return fmt.Errorf("matmul: RoundX takes one row of %d values, got %d×%d", r.K, x.Rows, x.Cols)
	}
	ns := r.K / 32
	cfg := kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(ns, Block/32)), Block: kernels.D1(Block), Overlap: !m.noPDL}
	return m.dev.Launch(m.roundX, cfg, r.Buf, x.Buf, int32(r.K))
}

// V3Rounded is V3's product for one row of x on a 4-bit W, on x already
// rounded (r): the same kernels with the same warps a set of rows, so the
// same sums bit for bit, but no block rounds x: the blocks copy it into
// shared memory (matmul_q4_gemv_q8r, _q8r_u2, and _q8r_u2p where V3 stages
// x in producer warps, which then copy it) or read it in place
// (matmul_q4_gemv_q8rd, _q8rd_u2). (Provided.)
func (m *Matmul) V3Rounded(y *devtensor.Activations, r *RoundedX, w *devtensor.Weight) error {
	if m.gemvQ8R == nil || !w.Quantized() || r.K != w.K {
		return fmt.Errorf("matmul: the product on x rounded ahead takes a 4-bit W of %d columns on CUDA (K = %d)", r.K, w.K)
	}
	if y.Cols != w.N {
		return fmt.Errorf("matmul: y has %d columns, want W's N = %d", y.Cols, w.N)
	}
	if err := y.SetRows(1); err != nil {
		return err
	}
	p, smem := m.planQ8(w), roundedBytes(w.K, m.q8Levels)
	// By shape: a W small enough to be asked into L2 whole (l2Prefetch)
	// reads x in place, so each warp starts on its first slices as soon
	// as the launch ahead is done; a larger one copies x into shared
	// memory, by producer warps where V3 stages it in them, else by the
	// whole block before its first products (BenchmarkW2D4GemvVariants'
	// rounded rows).
	direct := m.rxDirect > 0 || m.rxDirect == 0 && m.l2Prefetch(w) == 1 || smem > maxStagedShared
	if direct {
		p.prod = false // nothing to copy: the two-slice kernel on the same grid
		return m.launchQ8(p, [3]*kernels.Kernel{m.gemvQ8RD, m.gemvQ8RDU2}, 0, y, r.Buf, w)
	}
	if m.fourSlices(p, w) {
		// A row in one round of four slices, one block a multiprocessor
		// (its registers), the plan's warps a set.
		return m.launchStaged(m.gemvQ8RU4, smem, p.wk, 1, y, r.Buf, w)
	}
	return m.launchQ8(p, [3]*kernels.Kernel{m.gemvQ8R, m.gemvQ8RU2, m.gemvQ8RU2P}, smem, y, r.Buf, w)
}

// fourSlices says whether V3Rounded, copying x, runs plan p on W with
// matmul_q4_gemv_q8r_u4: never where producer warps copy x, else as rxU4
// forces it or, by shape, on rows of one such round (u4Rows) with more
// rows than columns, once u4Picked.
func (m *Matmul) fourSlices(p q8Plan, w *devtensor.Weight) bool {
	if p.prod || m.rxU4 < 0 {
		return false
	}
	return m.rxU4 > 0 || u4Picked && p.u2 && w.N > w.K && u4Rows(w.K/32)
}

// u4Rows says whether a row of ns 16-byte slices is one round of
// matmul_q4_gemv_q8r_u4 (97 to 128 slices: 3,104 to 4,096 columns), where
// the two-slice kernel takes two rounds, the second part empty. On an
// H200, from a graph with programmatic dependent launch, the 7B gate/up
// projection (112 slices) took 12.33 µs in three counts against 12.72 for
// the two-slice kernel; the 7B down projection's 592 slices gained nothing
// from rounds of three or four, and the 0.5B head's 28 lost
// (BenchmarkW2D4RoundedRounds).
func u4Rows(ns int) bool { return ns > 96 && ns <= 128 }

// u4Picked says whether V3Rounded takes matmul_q4_gemv_q8r_u4 by shape
// (u4Rows). It was held off until TestW2D4RoundedXGPU, which forces the
// kernel on and compares its sums bit for bit with the staged kernels',
// had passed on an H200 for every shape it covers (the 7B gate/up and
// down projections at group 64 and 128 among them); a copy of the kernel
// that drops one of the four slices fails that test on both 7B MLP
// shapes, so the check can tell.
const u4Picked = true

// roundedBytes is the size of a row of k values rounded into levels int8
// parts (gemvQ8Shared) rounded up to 16 bytes, the pieces the kernels
// copy it in.
func roundedBytes(k, levels int) int { return (gemvQ8Shared(k, levels) + 15) &^ 15 }

// u2Cols is the row length from which matmul_q4_gemv_q8_u2 pays even for a
// W with more rows than columns: 2048 columns are 64 slices, two for every
// lane of a warp, so the second slice of a round is not left empty. Once a
// round's addresses were counted once a set (mq_rows), the 7B gate/up
// projection (3584 columns) ran 11% faster with two slices a round than
// with one; the 0.5B head and gate/up (896 columns, 28 slices) 22% and 8%
// slower (BenchmarkW2D4Overlap).
const u2Cols = 2048

// q8Split is how many warps of a block share one set of 4 rows (1, 2, 4 or
// 8) in matmul_q4_gemv_q8, for n rows of ns 16-byte slices: the fewest that
// give a block to every multiprocessor, as long as every lane still has
// two slices of a row to load. (An earlier version checked the split
// before doubling it, so it could end with lanes of one slice: 4 warps on
// the 0.5B down projection's 152 slices, 575 GB/s in BenchmarkW2D4Overlap
// against 609 with 2.)
func q8Split(n, ns, sms int) int {
	wk := 1
	for wk < Block/32 && kernels.Blocks(n, 4*(Block/32)/wk) < max(sms, 1) && 32*2*(2*wk) <= ns {
		wk *= 2
	}
	return wk
}

// q8BlocksPerSM caps matmul_q4_gemv_q8's grid at the blocks that fit on
// the GPU at once: each block stages x once, then takes sets of rows in
// turn (BenchmarkW2D4GemvVariants).
const q8BlocksPerSM = 2

// v3Split is how many warps of a block share one set of rows in
// matmul_bf16_v3 (1, 2, 4 or 8): the fewest that give about three blocks
// per multiprocessor, as long as every lane of every warp still has a
// 16-byte piece of a row (k16 of them) to load; then twice that while it
// evens out the blocks the multiprocessors run and every lane keeps four
// pieces (two rounds of loads). The 7B q/o projection, whose rows are 448
// pieces, thus keeps 4 warps a set: 7.26 µs from a graph with
// programmatic dependent launch, against 7.75 with 8, where each block is
// a single round (BenchmarkW2D4Overlap). The blocks are memory-bound and
// alike, so the product takes as long as the busiest multiprocessor's
// share: 592 blocks on 132 (the 7B gate/up projection with one warp a
// set) leave some with 5 and some with 4, 90% of the ideal; 1184 (two
// warps a set), at most 9 against an average of 8.97.
func v3Split(n, k16, rows, passes, sms int) int {
	sms = max(sms, 1)
	blocks := func(wk int) int { return passes * kernels.Blocks(n, rows*(Block/32)/wk) }
	wk := 1
	for wk < Block/32 && blocks(wk) < 3*sms && 32*2*wk <= k16 {
		wk *= 2
	}
	even := func(b int) float64 { return kernels.Balance(b, b, sms) }
	for wk < Block/32 && 32*4*2*wk <= k16 && even(blocks(2*wk)) > even(blocks(wk))+0.02 {
		wk *= 2
	}
	return wk
}

// gemvXShared is the shared memory matmul_q4_gemv_x stages x in: K floats
// and one sum per 32 of them.
func gemvXShared(k int) int { return 4*k + 4*(k/32) }

// maxStagedShared is the most shared memory a block may ask for here (the
// H100 and H200 allow 227 KiB): beyond it (K above about 56,000) V3 takes
// the older variants, which read x from device memory.
const maxStagedShared = 200 << 10

// gemvXSplit is how many warps of a block share one set of 4 rows (1, 2,
// 4 or 8) in matmul_q4_gemv_x, for n rows of ns 16-byte slices: the fewest
// that give two blocks per multiprocessor, as long as every lane still
// has two slices of a row to load.
func gemvXSplit(n, ns, sms int) int {
	wk := 1
	for wk < Block/32 && kernels.Blocks(n, 4*(Block/32)/wk) < 2*max(sms, 1) && 32*2*wk <= ns {
		wk *= 2
	}
	return wk
}

// tcMinN is the fewest rows of W for which V3 takes the tensor-core
// matrix-vector variant where the int8 one does not apply (or the
// benchmark turns it off): with fewer (the 7B q/o and down projections, 3584
// rows) the float32 one was as fast or faster (BenchmarkW2D4GemvVariants).
const tcMinN = 8192

// tcSplit picks the tiles per warp and the warps per set of rows of
// matmul_q4_gemv_tc: ks is K/128, the steps of a row. One tile of 16 rows a
// warp was faster than two on every Qwen2 shape (BenchmarkW2D4GemvVariants):
// fewer registers, more warps in flight.
func tcSplit(n, ks, sms int) (rt, wk int) { return 1, tcSplitRT(n, ks, 1, sms) }

// tcSplitRT is how many warps of a block share a set of rows (1, 2, 4 or
// 8) with rt tiles of 16 rows a warp: the fewest that give two blocks per
// multiprocessor, as long as each warp keeps two steps of K or more.
func tcSplitRT(n, ks, rt, sms int) int {
	wk := 1
	for wk < Block/32 && kernels.Blocks(n, 16*rt*(Block/32)/wk) < 2*max(sms, 1) && 2*2*wk <= ks {
		wk *= 2
	}
	return wk
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

// V5 computes y = x·Wᵀ on CUDA with rung 5: x_to_bf16 rounds x into a
// bf16 copy the Matmul keeps (grown as needed), a 4-bit W is decoded into a
// bf16 copy (q4_to_bf16, up to MaxDecodedWeight), then matmul_bf16_v5
// computes 128 x 128 tiles of y, 256 threads a block, with 3 stages of
// 64-wide slices in shared memory, grid (M/128, N/128).
// (matmul_bf16_v5_n64, 128 x 64 tiles, was slower on every Qwen2 shape;
// BenchmarkW2D4V5Variants keeps it for comparison.) Metal runs rung 4. K
// must be a multiple of 8. (Provided.)
func (m *Matmul) V5(y, x *devtensor.Activations, w *devtensor.Weight) error {
	if m.v5 == nil {
		return m.V4(y, x, w)
	}
	xbf, wbf, err := m.tileOperands(y, x, w, "v5")
	if err != nil {
		return err
	}
	if wbf == nil { // a 4-bit W too large to decode first
		return m.V4(y, x, w)
	}
	k, bn := m.v5, 128
	if m.v5BN == 64 {
		k, bn = m.v5n64, 64
	}
	smem := m.v5Stages * (128 + bn) * m.v5BK * 2
	tiles := kernels.Blocks(x.Rows, 128) * kernels.Blocks(w.N, bn)
	splits, chunk := v5Splits(tiles, w.K, m.v5BK, m.dev.Info().Multiprocessors)
	if m.v5BN != 0 {
		splits = 1
	}
	return m.launchTiles(k, m.v5split, 128, bn, smem, splits, chunk, y, xbf, wbf, x.Rows, w)
}

// launchTiles launches a tile kernel of rung 5 or 6 over the bm x bn tiles
// of y (2·bm threads a block); with splits > 1, instead its split-K build
// over 128 x 128 tiles and splits ranges of chunk columns of K into the
// partial results, then matmul_sum_splits. (Provided.)
func (m *Matmul) launchTiles(k, split *kernels.Kernel, bm, bn, smem, splits, chunk int, y *devtensor.Activations,
	xbf, wbf *kernels.Buffer, rows int, w *devtensor.Weight) error {
	if splits <= 1 {
		cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: kernels.Blocks(rows, bm), Y: kernels.Blocks(w.N, bn), Z: 1},
			Block: kernels.D1(2 * bm), SharedMem: smem}
		return m.dev.Launch(k, cfg, y.Buf, xbf, wbf, int32(rows), int32(w.N), int32(w.K))
	}
	part, err := m.scratch(&m.part, 4*splits*rows*w.N)
	if err != nil {
		return err
	}
	cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: kernels.Blocks(rows, 128), Y: kernels.Blocks(w.N, 128), Z: splits},
		Block: kernels.D1(256), SharedMem: smem}
	if err := m.dev.Launch(split, cfg, part, xbf, wbf, int32(rows), int32(w.N), int32(w.K), int32(chunk)); err != nil {
		return err
	}
	mn := rows * w.N
	return m.dev.Launch(m.sumSplits, kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(mn, Block)), Block: kernels.D1(Block)},
		y.Buf, part, int32(splits), int64(mn))
}

// MaxDecodedWeight is the largest 4-bit weight, in bytes of bf16, that
// rungs 5 and 6 decode into a scratch copy before their tiles read it
// (the 7B gate and up projections together take 271 MB); a larger one, a
// tied head of a 7B vocabulary, runs rung 4, which decodes as it goes.
// (Provided.)
const MaxDecodedWeight = 512 << 20

// ScratchBytes bounds the device memory a Matmul allocates for itself,
// grown on first use and kept, when Linear multiplies up to rows rows of x
// by weights of at most maxK columns and maxN rows, the largest 4-bit one
// taking decoded bytes as bf16 (0 for bf16 weights): x prepared for the
// matrix-vector variants, and from PrefillRows rows x rounded to bf16, the
// partial results of a split K (at most 8 ranges, and only while the tiles
// are fewer than the multiprocessors, here at most 256) and the decoded
// copy of a 4-bit W (up to MaxDecodedWeight). (Provided.)
func ScratchBytes(rows, maxK, maxN int, decoded int64) int64 {
	n := 4*int64(maxK) + 4*int64(maxK/32)
	if rows >= PrefillRows {
		n += 2 * int64(rows) * int64(maxK)
		n += 4 * 8 * min(int64(rows)*int64(maxN), 256*128*128)
		if decoded <= MaxDecodedWeight {
			n += decoded
		}
	}
	return n
}

// tileOperands checks the shapes for rungs 5 and 6 and returns x rounded to
// bf16 and W as bf16: W itself, or for 4-bit W its decoded copy (nil when
// it would pass MaxDecodedWeight). (Provided.)
func (m *Matmul) tileOperands(y, x *devtensor.Activations, w *devtensor.Weight, rung string) (xbf, wbf *kernels.Buffer, err error) {
	if err := check(y, x, w); err != nil {
		return nil, nil, err
	}
	if w.K%8 != 0 {
		return nil, nil, fmt.Errorf("matmul %s: K = %d is not a multiple of 8; use V2", rung, w.K)
	}
	wbf = w.W
	if w.Quantized() {
		if 2*int64(w.N)*int64(w.K) > MaxDecodedWeight {
			return nil, nil, nil
		}
		if wbf, err = m.scratch(&m.wbf, 2*w.N*w.K); err != nil {
			return nil, nil, err
		}
		n8 := w.N * w.K / 8
		if err := m.dev.Launch(m.q4ToBF16, kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(n8, Block)), Block: kernels.D1(Block)},
			wbf, w.W, w.Scales, w.Biases, int64(n8), int32(w.K), int32(w.GroupSize)); err != nil {
			return nil, nil, err
		}
	}
	if xbf, err = m.scratch(&m.xbf, 2*x.Rows*w.K); err != nil {
		return nil, nil, err
	}
	n4 := x.Rows * w.K / 4
	if err := m.dev.Launch(m.toBF16, kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(n4, Block)), Block: kernels.D1(Block)},
		xbf, x.Buf, int64(n4)); err != nil {
		return nil, nil, err
	}
	return xbf, wbf, nil
}

// V6 computes y = x·Wᵀ with rung 6 on a GPU of compute capability 9.0
// (Hopper): rung 5's operands and tiles in shared memory, multiplied by
// two warpgroups with wgmma, 128 x 128 tiles. With enough tiles for two
// blocks a multiprocessor it takes the 3-stage build; with fewer tiles
// than multiprocessors, the deep one (5 stages, products in flight);
// with fewer than half, K is split as in rung 5. The benchmark's knobs
// force other builds. Elsewhere it runs rung 5. (Provided.)
func (m *Matmul) V6(y, x *devtensor.Activations, w *devtensor.Weight) error {
	if m.v6 == nil {
		return m.V5(y, x, w)
	}
	xbf, wbf, err := m.tileOperands(y, x, w, "v6")
	if err != nil {
		return err
	}
	if wbf == nil { // a 4-bit W too large to decode first
		return m.V4(y, x, w)
	}
	k, bm, bn := m.v6, 128, 128
	switch {
	case m.v6BM == 64:
		k, bm = m.v6m64, 64
	case m.v6BN == 64:
		k, bn = m.v6n64, 64
	case m.v6BN == 256:
		k, bn = m.v6n256, 256
	}
	stages := m.v6Stages
	tiles := kernels.Blocks(x.Rows, 128) * kernels.Blocks(w.N, bn)
	sms := m.dev.Info().Multiprocessors
	auto := m.v6BM == 0 && m.v6BN == 0 && m.v6Split == 0
	if m.v6Deep || auto && 2*tiles >= sms && tiles < sms {
		// One block a multiprocessor at most: the deep build keeps the
		// tensor cores busy through its own waits.
		k, stages = m.v6deep, 5
	}
	smem := stages*(bm+bn)*128 + 1024 // + room to align the tiles to 1024 bytes
	splits, chunk := 1, w.K
	switch {
	case m.v6Split > 1:
		chunk = (w.K + m.v6Split - 1) / m.v6Split
		chunk = (chunk + 63) / 64 * 64
		splits = (w.K + chunk - 1) / chunk
	case auto && !m.v6Deep && 2*tiles < sms:
		// Two blocks share a multiprocessor, so K is split only when the
		// tiles fill fewer than half of them (Qwen2-7B's k and v
		// projections in a prefill of 512, 16 tiles): splitting the
		// 7B o and down projections' 112 tiles made them slower.
		splits, chunk = v5Splits(tiles, w.K, 64, sms)
	}
	if bm != 128 || bn != 128 {
		splits = 1 // the split build has 128 x 128 tiles
	}
	return m.launchTiles(k, m.v6split, bm, bn, smem, splits, chunk, y, xbf, wbf, x.Rows, w)
}

// v5Splits is how many ranges of K rung 5 splits a product of tiles
// 128 x 128 tiles into, and the columns of each (a multiple of the slice
// width bk): none (1) when the tiles fill the GPU; else enough for about one
// block per multiprocessor, each range at least 4 slices, at most 8 ranges
// (their sum reads every partial result back). (Provided.)
func v5Splits(tiles, k, bk, sms int) (splits, chunk int) {
	if tiles >= sms {
		return 1, k
	}
	splits = min(8, (max(sms, 1)+tiles-1)/tiles, k/(4*bk))
	if splits <= 1 {
		return 1, k
	}
	chunk = (k + splits - 1) / splits
	chunk = (chunk + bk - 1) / bk * bk
	return (k + chunk - 1) / chunk, chunk
}

// scratch returns *b, grown to at least n bytes first.
func (m *Matmul) scratch(b **kernels.Buffer, n int) (*kernels.Buffer, error) {
	if *b != nil && (*b).Size() >= n {
		return *b, nil
	}
	if *b != nil {
		(*b).Free()
		*b = nil
	}
	nb, err := m.dev.Alloc(n)
	if err != nil {
		return nil, err
	}
	*b = nb
	return nb, nil
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
	case V5Pipelined:
		return m.V5(y, x, w)
	case V6Warpgroup:
		return m.V6(y, x, w)
	}
	return fmt.Errorf("matmul: no rung %d", int(r))
}

// Pick is the rung Linear uses for M rows of x and weight w: the tiles on
// the tensor cores from PrefillRows rows (rung 6, which runs rung 5 off
// Hopper, and rung 5 runs rung 4 where it does not apply), the vector
// kernel below, and the warp kernel when K rules the vector loads out.
// (Provided.)
func Pick(rows int, w *devtensor.Weight) Rung {
	switch {
	case w.K%8 != 0:
		return V2Warp
	case rows >= PrefillRows:
		return V6Warpgroup
	}
	return V3Vector
}

// Linear computes y = x·Wᵀ with the rung Pick chooses. It queues the work
// and returns; Download (or the device's Synchronize) waits for it.
// (Provided.)
func (m *Matmul) Linear(y, x *devtensor.Activations, w *devtensor.Weight) error {
	return m.Run(Pick(x.Rows, w), y, x, w)
}
