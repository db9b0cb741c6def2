package day4

// BenchmarkW2D4Ladder times every rung on the real shapes of Qwen2-0.5B and
// Qwen2-7B, in bf16 and 4-bit (groups of 64), for one row of x (decode) and
// 512 (prefill), and reports the device time per product, the bandwidth it
// achieves (bytes of W, x and y over that time) and the arithmetic rate
// (2·M·N·K over that time). The decode rung from a graph stands beside a
// copy that moves as many bytes, launched the same way ("copy-graph",
// "copy-graph-pdl"), and reports its time's share of that copy's
// ("%samecopy"): a small product pays a launch's fixed costs as a copy
// does, so that copy, not the copy of 1 GiB, is the ceiling at its size.
// On CUDA the 4-bit decode rung also runs on x rounded ahead
// ("v3_rounded": x rounded once, as the kernel that writes x would leave
// it, and the products alone timed) and with the rounding as a launch of
// its own before each product ("v3_round_and_product"); their bytes are
// counted as the rung's, float x included.
// Without a GPU it says so and runs nothing.
//
//	go test -run '^$' -bench W2D4 -benchtime 200ms ./solutions/week2/day4

import (
	"fmt"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d4"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// rotateBytes is how much weight memory the decode benchmarks cycle through,
// several times the H100/H200's 50-60 MB of L2, so that a small matrix is
// read from device memory, as each layer's own weights are in a real step.
const rotateBytes = 512 << 20

// stepParts is the int8 parts in which Week 2 Day 7's decode step writes x
// for the product after it (its fusedLevels): two, each value within
// 1/64,516 of its slice's largest, where V3's own kernels take three for
// the float32 checks. The ladder's v3_rounded2 rows time V3Rounded on x in
// that many parts.
const stepParts = 2

// newPartsMatmul compiles rung 3's CUDA build with x in parts int8 parts
// (MQ_LEVELS) instead of three.
func newPartsMatmul(d *kernels.Device, parts int) (*Matmul, error) {
	c := cudaV3
	c.extra = fmt.Sprintf("-DMQ_LEVELS=%d", parts)
	return newMatmul(d, c)
}

func BenchmarkW2D4Ladder(b *testing.B) {
	d := kerneltest.Open(b)
	mm, err := NewMatmul(d)
	if err != nil {
		b.Fatal(err)
	}
	defer mm.Close()
	var mm2 *Matmul // x in stepParts parts, on CUDA
	if d.Backend() == kernels.CUDA {
		if mm2, err = newPartsMatmul(d, stepParts); err != nil {
			b.Fatal(err)
		}
		defer mm2.Close()
	}
	for _, s := range w2d4.RealShapes {
		for _, f := range []w2d4.Format{w2d4.Formats[0], w2d4.Formats[1]} {
			p := w2d4.NewProblem(w2d4.Shape{Name: s.Name, N: s.N, K: s.K, Ms: []int{1}}, f, 7)
			for _, m := range []int{1, 512} {
				copies := 1
				if m == 1 {
					copies = max(1, min(64, rotateBytes/int(devtensor.WeightBytes(s.N, s.K, f.Bits, f.Group))))
				}
				ws := make([]*devtensor.Weight, copies)
				for i := range ws {
					if ws[i], err = p.Upload(d); err != nil {
						b.Fatal(err)
					}
				}
				x, err := devtensor.NewActivations(d, m, s.K)
				if err != nil {
					b.Fatal(err)
				}
				if err := x.Buf.Fill(0x3E); err != nil { // every float 0.185…, not zeros
					b.Fatal(err)
				}
				y, err := devtensor.NewActivations(d, m, s.N)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range Rungs {
					if r == V1Naive && m > 1 {
						continue // seconds a product at 512 rows, and nothing to learn from it
					}
					name := fmt.Sprintf("%s/%s/M=%d/%s", s.Name, f.Name, m, r)
					b.Run(name, func(b *testing.B) { benchRung(b, d, mm, r, y, x, ws) })
				}
				if m == 1 {
					// The decode rung as a captured step runs it: from a
					// graph, as PyTorch's side is timed, launched plainly
					// and then overlapping the launch ahead; each beside a
					// copy that moves as many bytes, launched the same way.
					for _, pdl := range []bool{false, true} {
						suffix := "-graph"
						if pdl {
							suffix += "-pdl"
						}
						var ceiling time.Duration
						bytes := productBytes(x, ws[0])
						b.Run(fmt.Sprintf("%s/%s/M=%d/copy%s", s.Name, f.Name, m, suffix), func(b *testing.B) {
							ceiling = kerneltest.CopyTime(b, d, bytes, rotateBytes, pdl)
							kerneltest.ReportCopy(b, ceiling, bytes)
						})
						b.Run(fmt.Sprintf("%s/%s/M=%d/%s%s", s.Name, f.Name, m, V3Vector, suffix), func(b *testing.B) {
							per := benchGraph(b, d, mm, !pdl, y, x, ws)
							b.ReportMetric(100*ceiling.Seconds()/per.Seconds(), "%samecopy")
						})
						if f.Bits == 4 && d.Backend() == kernels.CUDA {
							prefix := fmt.Sprintf("%s/%s/M=%d", s.Name, f.Name, m)
							benchRounded(b, d, mm, prefix, "", suffix, !pdl, ceiling, y, x, ws)
							benchRounded(b, d, mm2, prefix, fmt.Sprint(stepParts), suffix, !pdl, ceiling, y, x, ws)
						}
					}
				}
				x.Free()
				y.Free()
				for _, w := range ws {
					w.Free()
				}
			}
		}
	}
}

func benchRung(b *testing.B, d *kernels.Device, mm *Matmul, r Rung, y, x *devtensor.Activations, ws []*devtensor.Weight) {
	benchFunc(b, d, func(y, x *devtensor.Activations, w *devtensor.Weight) error { return mm.Run(r, y, x, w) }, y, x, ws)
}

// benchFunc times run as benchRung times a rung.
func benchFunc(b *testing.B, d *kernels.Device, run func(y, x *devtensor.Activations, w *devtensor.Weight) error, y, x *devtensor.Activations, ws []*devtensor.Weight) {
	for i := range 3 { // warm up
		if err := run(y, x, ws[i%len(ws)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Synchronize(); err != nil {
		b.Fatal(err)
	}
	per, _ := kerneltest.DeviceTime(b, d, b.N, func(i int) error { return run(y, x, ws[i%len(ws)]) })
	reportRate(b, per, x, ws[0])
}

// benchGraph times rung 3 from a graph of one launch per copy of W,
// replayed, with or without programmatic dependent launch, and returns the
// time of one product.
func benchGraph(b *testing.B, d *kernels.Device, mm *Matmul, noPDL bool, y, x *devtensor.Activations, ws []*devtensor.Weight) time.Duration {
	return benchGraphRun(b, d, mm, noPDL, x, ws, func(w *devtensor.Weight) error { return mm.Run(V3Vector, y, x, w) })
}

// benchGraphRun times run(w) for each copy of W from a graph, replayed, and
// returns the time of one, reporting the rate of a product on x.
func benchGraphRun(b *testing.B, d *kernels.Device, mm *Matmul, noPDL bool, x *devtensor.Activations, ws []*devtensor.Weight,
	run func(w *devtensor.Weight) error) time.Duration {
	was := mm.noPDL
	mm.noPDL = noPDL
	defer func() { mm.noPDL = was }()
	per := kerneltest.GraphTime(b, d, len(ws), func(i int) error { return run(ws[i%len(ws)]) })
	reportRate(b, per, x, ws[0])
	return per
}

// benchRounded times the 4-bit decode rung on x rounded ahead by mm (in
// its parts), from a graph: the products alone on x rounded once
// ("v3_rounded" and tag), and each product after a launch that rounds x
// ("v3_round_and_product" and tag), both beside ceiling, the copy of as
// many bytes launched the same way.
func benchRounded(b *testing.B, d *kernels.Device, mm *Matmul, prefix, tag, suffix string, noPDL bool, ceiling time.Duration,
	y, x *devtensor.Activations, ws []*devtensor.Weight) {
	r, err := mm.NewRoundedX(x.Cols)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Free()
	if err := mm.RoundX(r, x); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		run  func(w *devtensor.Weight) error
	}{
		{"v3_rounded", func(w *devtensor.Weight) error { return mm.V3Rounded(y, r, w) }},
		{"v3_round_and_product", func(w *devtensor.Weight) error {
			if err := mm.RoundX(r, x); err != nil {
				return err
			}
			return mm.V3Rounded(y, r, w)
		}},
	} {
		b.Run(fmt.Sprintf("%s/%s%s%s", prefix, c.name, tag, suffix), func(b *testing.B) {
			per := benchGraphRun(b, d, mm, noPDL, x, ws, c.run)
			b.ReportMetric(100*ceiling.Seconds()/per.Seconds(), "%samecopy")
		})
	}
}

// BenchmarkW2D4Overlap times rung 3's matrix-vector products on every real
// shape from a graph, launched plainly and with programmatic dependent
// launch (each product asks for its first weights while the one ahead
// drains), that with and without the request for all of a block's weights
// into L2 (l2-1, l2+1), bf16 also with 1, 2, 4 and 8 warps a set of rows.
//
//	go test -run '^$' -bench W2D4Overlap -benchtime 100x ./solutions/week2/day4
func BenchmarkW2D4Overlap(b *testing.B) {
	d := kerneltest.Open(b)
	if d.Backend() != kernels.CUDA {
		b.Skip("not run: programmatic dependent launch is CUDA's")
	}
	mm, err := NewMatmul(d)
	if err != nil {
		b.Fatal(err)
	}
	defer mm.Close()
	for _, s := range w2d4.RealShapes {
		for _, f := range []w2d4.Format{w2d4.Formats[0], w2d4.Formats[1]} {
			ws, x, y, free := decodeOperands(b, d, s, f)
			b.Run(fmt.Sprintf("%s/%s/graph", s.Name, f.Name), func(b *testing.B) { benchGraph(b, d, mm, true, y, x, ws) })
			for _, l2 := range []int{-1, 1} {
				mm.l2Pre = l2
				b.Run(fmt.Sprintf("%s/%s/graph-pdl-l2%+d", s.Name, f.Name, l2), func(b *testing.B) { benchGraph(b, d, mm, false, y, x, ws) })
				if ws[0].Quantized() {
					// the build with two slices a row a round forced on and off
					for _, u2 := range []int{-1, 1} {
						b.Run(fmt.Sprintf("%s/%s/graph-pdl-l2%+d-u2%+d", s.Name, f.Name, l2, u2), func(b *testing.B) {
							mm.q8U2 = u2
							defer func() { mm.q8U2 = 0 }()
							benchGraph(b, d, mm, false, y, x, ws)
						})
						// and with 1 to 8 warps a set of rows, where every
						// lane still has a slice of each row
						for wk := 1; l2 < 0 && wk <= Block/32 && 32*wk <= s.K/32; wk *= 2 {
							b.Run(fmt.Sprintf("%s/%s/graph-pdl-l2%+d-u2%+d-wk%d", s.Name, f.Name, l2, u2, wk), func(b *testing.B) {
								mm.q8U2, mm.q8WK = u2, wk
								defer func() { mm.q8U2, mm.q8WK = 0, 0 }()
								benchGraph(b, d, mm, false, y, x, ws)
							})
						}
					}
				} else {
					for wk := 1; wk <= Block/32 && 32*wk <= s.K/8; wk *= 2 {
						b.Run(fmt.Sprintf("%s/%s/graph-pdl-l2%+d-wk%d", s.Name, f.Name, l2, wk), func(b *testing.B) {
							mm.v3WK = wk
							defer func() { mm.v3WK = 0 }()
							benchGraph(b, d, mm, false, y, x, ws)
						})
					}
				}
			}
			mm.l2Pre = 0
			free()
		}
	}
	// Other builds of the bf16 kernel (rows of W a warp, loads in flight a
	// row) on the shapes furthest from the copy bandwidth.
	for _, c := range []struct{ wrows, unroll int }{{4, 1}, {4, 3}, {4, 4}, {2, 4}, {8, 2}} {
		cfg := cudaV3
		cfg.wrows, cfg.unroll = c.wrows, c.unroll
		mv, err := newMatmul(d, cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range []w2d4.Shape{w2d4.RealShapes[0], w2d4.RealShapes[1], w2d4.RealShapes[2], w2d4.RealShapes[4]} {
			ws, x, y, free := decodeOperands(b, d, s, w2d4.Formats[0])
			for _, wk := range []int{0, 2, 4, 8} {
				if wk > 0 && 32*wk > s.K/8 {
					continue
				}
				b.Run(fmt.Sprintf("%s/bf16/graph-pdl-w%d-u%d-wk%d", s.Name, c.wrows, c.unroll, wk), func(b *testing.B) {
					mv.v3WK = wk
					benchGraph(b, d, mv, false, y, x, ws)
				})
			}
			free()
		}
		mv.Close()
	}
}

// productBytes is what a product moves: W as stored, x and y in float32.
func productBytes(x *devtensor.Activations, w *devtensor.Weight) int64 {
	return int64(w.Bytes()) + 4*int64(x.Rows*w.K+x.Rows*w.N)
}

// reportRate reports a product's device time per, its bandwidth (bytes of
// w, x and y) and its arithmetic rate.
func reportRate(b *testing.B, per time.Duration, x *devtensor.Activations, w *devtensor.Weight) {
	bytes := float64(productBytes(x, w))
	flops := 2 * float64(x.Rows) * float64(w.N) * float64(w.K)
	b.ReportMetric(float64(per.Nanoseconds())/1e3, "us/gpu")
	b.ReportMetric(bytes/per.Seconds()/1e9, "GB/s")
	b.ReportMetric(flops/per.Seconds()/1e12, "TFLOP/s")
}

// BenchmarkW2D4GemvVariants compares builds of rung 3's 4-bit
// matrix-vector variants on CUDA on every real shape, one row of x: builds
// of the float32 one (rows of W per warp, loads in flight per row, blocks
// per multiprocessor; the winner is cudaV3's gvRows, gvUnroll and gvMinB),
// the tensor-core one with 16 or 32 rows a warp, the one on x staged in
// shared memory (matmul_q4_gemv_x) with its split and grid, and the one on
// x in int8 parts (matmul_q4_gemv_q8, V3's pick) with its builds, split
// and grid; its builds also from a graph with programmatic dependent
// launch ("-graph-pdl"), as a captured step runs them, beside the default
// build ("default").
//
//	go test -run '^$' -bench W2D4GemvVariants -benchtime 100ms ./solutions/week2/day4
func BenchmarkW2D4GemvVariants(b *testing.B) {
	d := kerneltest.Open(b)
	if d.Backend() != kernels.CUDA {
		b.Skip("not run: the variants are CUDA builds")
	}
	variants := [][3]int{{8, 1, 2}, {8, 1, 3}, {4, 1, 3}}
	mms := make([]*Matmul, len(variants))
	for i, v := range variants {
		var err error
		if mms[i], err = newMatmul(d, v3Config{4, 2, 2, v[0], v[1], v[2], 1, 64, 3, 3, false, ""}); err != nil {
			b.Fatal(err)
		}
		defer mms[i].Close()
	}
	mmU2, err := newMatmul(d, v3Config{4, 2, 2, 8, 1, 2, 2, 64, 3, 3, false, ""})
	if err != nil {
		b.Fatal(err)
	}
	defer mmU2.Close()
	q8Variants := []struct {
		name, opts     string
		u2, capB, prod int // Matmul.q8U2, q8Cap and q8Prod for the build (0: by shape)
	}{
		{"u1", "-DMQ_U=1", 0, 0, 0}, {"u3", "-DMQ_U=3", 0, 0, 0}, {"u4_b1", "-DMQ_U=4 -DMQ_MINB=1", 0, 0, 0},
		{"one_part", "-DMQ_LEVELS=1", 0, 0, 0}, {"two_parts", "-DMQ_LEVELS=2", 0, 0, 0},
		{"nopipe", "-DMQ_PIPE=0", 0, 0, 0}, {"nopipe_u1", "-DMQ_PIPE=0 -DMQ_U=1", 0, 0, 0}, {"pipe_u2_b1", "-DMQP_U=2 -DMQ_MINB=1", 0, 0, 0},
		{"anat_no_arithmetic", "-DMQ_ANAT=1", 0, 0, -1}, {"anat_x_not_staged", "-DMQ_ANAT=2", 0, 0, -1},
		{"anat_loads_only", "-DMQ_ANAT=3", 0, 0, -1},
		// x staged by producer warps (matmul_q4_gemv_q8_u2p) wherever the
		// two-slice build takes one warp a set, with 4 (the default), 1
		// or 2 of them, and the waiting warps' naps of 0 or 400 ns (100)
		{"default", "", 0, 0, 0}, {"no_producers", "", 0, 0, -1}, {"producers4", "", 0, 0, 1},
		{"producers1", "-DMQ_PROD=1", 0, 0, 1}, {"producers2", "-DMQ_PROD=2", 0, 0, 1},
		{"nap0", "-DMQ_NAP=0", 0, 0, 1}, {"nap400", "-DMQ_NAP=400", 0, 0, 1},
		// the one-slice kernel with two slices a round in two blocks a
		// multiprocessor (128 registers), and with one slice in three
		{"pipe_u2_b2_everywhere", "-DMQP_U=2 -DMQ_MINB=2", -1, 2, 0}, {"b3_everywhere", "-DMQ_MINB=3", -1, 3, 0},
	}
	mmQ8 := make([]*Matmul, len(q8Variants))
	for i, v := range q8Variants {
		c := cudaV3
		c.extra = v.opts
		if mmQ8[i], err = newMatmul(d, c); err != nil {
			b.Fatal(err)
		}
		mmQ8[i].q8U2, mmQ8[i].q8Cap, mmQ8[i].q8Prod = v.u2, v.capB, v.prod
		defer mmQ8[i].Close()
	}
	f := w2d4.Formats[1]
	for _, s := range w2d4.RealShapes {
		ws, x, y, free := decodeOperands(b, d, s, f)
		for i, v := range variants {
			name := fmt.Sprintf("%s/%s/rows%d_u%d_b%d", s.Name, f.Name, v[0], v[1], v[2])
			b.Run(name, func(b *testing.B) {
				mms[i].tcRT = -1
				defer func() { mms[i].tcRT = 0 }()
				benchRung(b, d, mms[i], V3Vector, y, x, ws)
			})
		}
		// The tensor-core variant: 16 or 32 rows a warp (rt), 1 or 2 steps
		// of K loaded at once (u), and the pick (rt0).
		for _, v := range [][2]int{{1, 1}, {2, 1}, {1, 2}, {0, 1}} {
			mm := mms[0]
			if v[1] == 2 {
				mm = mmU2
			}
			b.Run(fmt.Sprintf("%s/%s/tensor-core_rt%d_u%d", s.Name, f.Name, v[0], v[1]), func(b *testing.B) {
				mm.tcRT, mm.q8Off = v[0], true
				defer func() { mm.tcRT, mm.q8Off = 0, false }()
				benchRung(b, d, mm, V3Vector, y, x, ws)
			})
		}
		// The variant on x in int8 parts: builds with 1, 3 or 4 slices a
		// row in flight (the default 2), the registers for 1 block a
		// multiprocessor (b1, the default 2), one or two int8 parts of x
		// (the default 3); then the default build with other warps per
		// set of rows (0: by shape) and caps on the grid (blocks a
		// multiprocessor, 0: the default, 100: none).
		for i, v := range q8Variants {
			b.Run(fmt.Sprintf("%s/%s/int8x_%s", s.Name, f.Name, v.name), func(b *testing.B) {
				benchFunc(b, d, mmQ8[i].v3Q8, y, x, ws)
			})
			// as a captured step runs it (each launch overlapping the one
			// ahead)
			b.Run(fmt.Sprintf("%s/%s/int8x_%s-graph-pdl", s.Name, f.Name, v.name), func(b *testing.B) {
				benchGraphRun(b, d, mmQ8[i], false, x, ws, func(w *devtensor.Weight) error { return mmQ8[i].v3Q8(y, x, w) })
			})
		}
		for _, v := range [][2]int{{0, 0}, {1, 0}, {2, 0}, {4, 0}, {0, 1}, {0, 3}, {0, 4}, {0, 100}} {
			mm := mms[0]
			b.Run(fmt.Sprintf("%s/%s/int8x_wk%d_cap%d", s.Name, f.Name, v[0], v[1]), func(b *testing.B) {
				mm.q8WK, mm.q8Cap = v[0], v[1]
				defer func() { mm.q8WK, mm.q8Cap = 0, 0 }()
				benchFunc(b, d, mm.v3Q8, y, x, ws)
			})
		}
		// The staged-x variant: warps per set of rows (0: by
		// shape) and a cap on the grid (blocks a multiprocessor, 0: none).
		for _, v := range [][2]int{{0, 0}, {1, 0}, {2, 0}, {4, 0}, {0, 2}, {1, 2}, {0, 4}} {
			mm := mms[0]
			b.Run(fmt.Sprintf("%s/%s/staged_wk%d_cap%d", s.Name, f.Name, v[0], v[1]), func(b *testing.B) {
				mm.gxOn, mm.gxWK, mm.gxCap = true, v[0], v[1]
				defer func() { mm.gxOn, mm.gxWK, mm.gxCap = false, 0, 0 }()
				benchRung(b, d, mm, V3Vector, y, x, ws)
			})
		}
		// On x rounded ahead (V3Rounded) from a graph with programmatic
		// dependent launch: copied into each block's shared memory first,
		// read where it is, and V3Rounded's pick; the first two also with
		// the one-slice kernel forced (u1), two blocks a multiprocessor.
		r, err := mms[0].NewRoundedX(s.K)
		if err != nil {
			b.Fatal(err)
		}
		if err := mms[0].RoundX(r, x); err != nil {
			b.Fatal(err)
		}
		for _, v := range []struct {
			name       string
			direct, u2 int
		}{{"copied", -1, 0}, {"direct", 1, 0}, {"pick", 0, 0}, {"copied_u1", -1, -1}, {"direct_u1", 1, -1}} {
			mm := mms[0]
			b.Run(fmt.Sprintf("%s/%s/rounded_%s-graph-pdl", s.Name, f.Name, v.name), func(b *testing.B) {
				mm.rxDirect, mm.q8U2 = v.direct, v.u2
				defer func() { mm.rxDirect, mm.q8U2 = 0, 0 }()
				benchGraphRun(b, d, mm, false, x, ws, func(w *devtensor.Weight) error { return mm.V3Rounded(y, r, w) })
			})
		}
		r.Free()
		free()
	}
}

// decodeOperands uploads copies of shape s's W filling rotateBytes (as
// BenchmarkW2D4Ladder does for one row of x), one row of x and y; free
// releases them.
func decodeOperands(b *testing.B, d *kernels.Device, s w2d4.Shape, f w2d4.Format) (ws []*devtensor.Weight, x, y *devtensor.Activations, free func()) {
	p := w2d4.NewProblem(w2d4.Shape{Name: s.Name, N: s.N, K: s.K, Ms: []int{1}}, f, 7)
	ws = make([]*devtensor.Weight, max(1, min(64, rotateBytes/int(devtensor.WeightBytes(s.N, s.K, f.Bits, f.Group)))))
	for i := range ws {
		var err error
		if ws[i], err = p.Upload(d); err != nil {
			b.Fatal(err)
		}
	}
	x, err := devtensor.NewActivations(d, 1, s.K)
	if err != nil {
		b.Fatal(err)
	}
	if err := x.Buf.Fill(0x3E); err != nil {
		b.Fatal(err)
	}
	if y, err = devtensor.NewActivations(d, 1, s.N); err != nil {
		b.Fatal(err)
	}
	return ws, x, y, func() {
		x.Free()
		y.Free()
		for _, w := range ws {
			w.Free()
		}
	}
}

// BenchmarkW2D4V3Variants compares builds of rung 3 on CUDA (rows of W per
// warp, rows of x per pass, loads in flight per row) on the decode shapes
// where it matters most; the winner is cudaV3.
//
//	go test -run '^$' -bench W2D4V3Variants -benchtime 100ms ./solutions/week2/day4
func BenchmarkW2D4V3Variants(b *testing.B) {
	d := kerneltest.Open(b)
	if d.Backend() != kernels.CUDA {
		b.Skip("not run: the variants are CUDA builds")
	}
	variants := []v3Config{{1, 8, 4, 8, 1, 2, 2, 64, 3, 3, false, ""}, {1, 4, 4, 8, 1, 2, 2, 64, 3, 3, false, ""}, {2, 4, 4, 8, 1, 2, 2, 64, 3, 3, false, ""}, {2, 4, 2, 8, 1, 2, 2, 64, 3, 3, false, ""}, {4, 2, 2, 8, 1, 2, 2, 64, 3, 3, false, ""}, {2, 2, 4, 8, 1, 2, 2, 64, 3, 3, false, ""}, {4, 1, 2, 8, 1, 2, 2, 64, 3, 3, false, ""}}
	mms := make([]*Matmul, len(variants))
	for i, v := range variants {
		var err error
		if mms[i], err = newMatmul(d, v); err != nil {
			b.Fatal(err)
		}
		defer mms[i].Close()
	}
	for _, s := range []w2d4.Shape{w2d4.RealShapes[3], w2d4.RealShapes[5], w2d4.RealShapes[6]} {
		for _, f := range []w2d4.Format{w2d4.Formats[0], w2d4.Formats[1]} {
			p := w2d4.NewProblem(w2d4.Shape{Name: s.Name, N: s.N, K: s.K, Ms: []int{1}}, f, 7)
			w, err := p.Upload(d)
			if err != nil {
				b.Fatal(err)
			}
			for _, m := range []int{1, 8} {
				x, err := devtensor.NewActivations(d, m, s.K)
				if err != nil {
					b.Fatal(err)
				}
				x.Buf.Fill(0x3E)
				y, err := devtensor.NewActivations(d, m, s.N)
				if err != nil {
					b.Fatal(err)
				}
				for i, v := range variants {
					name := fmt.Sprintf("%s/%s/M=%d/w%d_x%d_u%d", s.Name, f.Name, m, v.wrows, v.xrows, v.unroll)
					b.Run(name, func(b *testing.B) { benchRung(b, d, mms[i], V3Vector, y, x, []*devtensor.Weight{w}) })
				}
				x.Free()
				y.Free()
			}
			w.Free()
		}
	}
}

// BenchmarkW2D4V5Variants compares builds of rung 5 on CUDA (slice width
// and stages of shared memory; tiles of W 64 or 128 rows wide, or picked
// by shape: bn0) on the prefill shapes of Qwen2-7B and the
// 0.5B head, 512 rows of x; the winner is cudaV3's v5BK and v5Stages.
//
//	go test -run '^$' -bench W2D4V5Variants -benchtime 100ms ./solutions/week2/day4
func BenchmarkW2D4V5Variants(b *testing.B) {
	d := kerneltest.Open(b)
	if d.Backend() != kernels.CUDA {
		b.Skip("not run: the variants are CUDA builds")
	}
	variants := [][3]int{{32, 4, 0}, {64, 3, 0}, {64, 3, 128}, {64, 3, 64}}
	mms := make([]*Matmul, len(variants))
	for i, v := range variants {
		c := cudaV3
		c.v5BK, c.v5Stages = v[0], v[1]
		var err error
		if mms[i], err = newMatmul(d, c); err != nil {
			b.Fatal(err)
		}
		mms[i].v5BN = v[2]
		defer mms[i].Close()
	}
	shapes := []w2d4.Shape{w2d4.RealShapes[3], w2d4.RealShapes[5], w2d4.RealShapes[6]}
	benchPrefillShapes(b, d, shapes, w2d4.Formats[:1], func(name string, y, x *devtensor.Activations, w *devtensor.Weight) {
		for i, v := range variants {
			b.Run(fmt.Sprintf("%s/bk%d_stages%d_bn%d", name, v[0], v[1], v[2]), func(b *testing.B) {
				benchRung(b, d, mms[i], V5Pipelined, y, x, []*devtensor.Weight{w})
			})
		}
	})
}

// benchPrefillShapes calls run with W, and x and y of 512 rows, on the
// device for each shape in each format, and names them "shape/format/M=512".
func benchPrefillShapes(b *testing.B, d *kernels.Device, shapes []w2d4.Shape, formats []w2d4.Format,
	run func(name string, y, x *devtensor.Activations, w *devtensor.Weight)) {
	for _, s := range shapes {
		for _, f := range formats {
			p := w2d4.NewProblem(w2d4.Shape{Name: s.Name, N: s.N, K: s.K, Ms: []int{1}}, f, 7)
			w, err := p.Upload(d)
			if err != nil {
				b.Fatal(err)
			}
			x, err := devtensor.NewActivations(d, 512, s.K)
			if err != nil {
				b.Fatal(err)
			}
			if err := x.Buf.Fill(0x3E); err != nil { // every float 0.185…, not zeros
				b.Fatal(err)
			}
			y, err := devtensor.NewActivations(d, 512, s.N)
			if err != nil {
				b.Fatal(err)
			}
			run(s.Name+"/"+f.Name+"/M=512", y, x, w)
			x.Free()
			y.Free()
			w.Free()
		}
	}
}

// BenchmarkW2D4V6Variants compares rung 6's builds at M = 512 on the 7B
// prefill shapes and the 0.5B head, with rung 5 in the same run: 3 to 5
// stages, products left in flight across slices or not, tiles 64 rows
// tall (one warpgroup a block) or 64, 128 and 256 wide, K split into 1 to
// 4 ranges. The first build is the default, picking by shape.
//
//	go test -run '^$' -bench W2D4V6Variants -benchtime 100ms ./solutions/week2/day4
func BenchmarkW2D4V6Variants(b *testing.B) {
	d := kerneltest.Open(b)
	if d.Backend() != kernels.CUDA || d.Info().ComputeCapability != "9.0" {
		b.Skip("not run: rung 6 needs compute capability 9.0")
	}
	type variant struct {
		stages        int
		inFlight      bool
		bm, bn, split int
	}
	variants := []variant{{3, false, 0, 0, 0}, {5, true, 0, 0, 0}, {3, false, 64, 0, 1}, {4, false, 64, 0, 1},
		{4, true, 64, 0, 1}, {5, true, 64, 0, 1}, {3, false, 0, 64, 1}, {3, false, 0, 128, 1}, {3, false, 0, 128, 2}, {3, false, 0, 256, 1}}
	mms := make([]*Matmul, len(variants))
	for i, v := range variants {
		c := cudaV3
		c.v6Stages, c.v6InFlight = v.stages, v.inFlight
		var err error
		if mms[i], err = newMatmul(d, c); err != nil {
			b.Fatal(err)
		}
		mms[i].v6BM, mms[i].v6BN, mms[i].v6Split = v.bm, v.bn, v.split
		defer mms[i].Close()
	}
	kv := w2d4.Shape{Name: "7B k/v 512x3584", N: 512, K: 3584}
	shapes := []w2d4.Shape{w2d4.RealShapes[3], w2d4.RealShapes[4], kv, w2d4.RealShapes[5], w2d4.RealShapes[6]}
	benchPrefillShapes(b, d, shapes, w2d4.Formats[:2], func(name string, y, x *devtensor.Activations, w *devtensor.Weight) {
		b.Run(name+"/v5", func(b *testing.B) { benchRung(b, d, mms[0], V5Pipelined, y, x, []*devtensor.Weight{w}) })
		for i, v := range variants {
			b.Run(fmt.Sprintf("%s/v6_stages%d_flight%v_bm%d_bn%d_split%d", name, v.stages, v.inFlight, v.bm, v.bn, v.split),
				func(b *testing.B) { benchRung(b, d, mms[i], V6Warpgroup, y, x, []*devtensor.Weight{w}) })
		}
	})
}

// BenchmarkW2D4V3Stream compares rung 3's bf16 loads of W with and without
// the evict-first hint on the 7B decode shapes, cycling through copies of W
// as BenchmarkW2D4Ladder does; the winner is V3_STREAM's default.
//
//	go test -run '^$' -bench W2D4V3Stream -benchtime 100ms ./solutions/week2/day4
func BenchmarkW2D4V3Stream(b *testing.B) {
	d := kerneltest.Open(b)
	if d.Backend() != kernels.CUDA {
		b.Skip("not run: the variants are CUDA builds")
	}
	mms := optionBuilds(b, d, "V3_STREAM", 2)
	f := w2d4.Formats[0]
	for _, s := range []w2d4.Shape{w2d4.RealShapes[4], w2d4.RealShapes[5], w2d4.RealShapes[6]} {
		ws, x, y, free := decodeOperands(b, d, s, f)
		for i := range mms {
			b.Run(fmt.Sprintf("%s/bf16/M=1/stream%d", s.Name, i), func(b *testing.B) { benchRung(b, d, mms[i], V3Vector, y, x, ws) })
		}
		free()
	}
}

// BenchmarkW2D4LoadHints times V3Rounded's pick on the 4-bit decode
// shapes, from a graph with programmatic dependent launch, with W loaded
// four ways (MQ_LDW): evict-first (the default), through the read-only
// path, without L1 and with 256-byte fetches into L2, and plainly.
//
//	go test -run '^$' -bench W2D4LoadHints -benchtime 100x ./solutions/week2/day4
func BenchmarkW2D4LoadHints(b *testing.B) {
	d := kerneltest.Open(b)
	if d.Backend() != kernels.CUDA {
		b.Skip("not run: the variants are CUDA builds")
	}
	names := []string{"ldcs", "ldg", "no_l1_256b", "plain"}
	mms := optionBuilds(b, d, "MQ_LDW", len(names))
	eachRoundedShape(b, d, mms[0], func(prefix string, ws []*devtensor.Weight, x, y *devtensor.Activations, r *RoundedX) {
		for i, name := range names {
			mm := mms[i]
			b.Run(fmt.Sprintf("%s/%s-graph-pdl", prefix, name), func(b *testing.B) {
				benchGraphRun(b, d, mm, false, x, ws, func(w *devtensor.Weight) error { return mm.V3Rounded(y, r, w) })
			})
		}
	})
}

// eachRoundedShape runs bench on every real shape in 4-bit (groups of 64)
// with decodeOperands' copies of W, x, y and x rounded by mm; prefix names
// the shape and format.
func eachRoundedShape(b *testing.B, d *kernels.Device, mm *Matmul, bench func(prefix string, ws []*devtensor.Weight, x, y *devtensor.Activations, r *RoundedX)) {
	f := w2d4.Formats[1]
	for _, s := range w2d4.RealShapes {
		ws, x, y, free := decodeOperands(b, d, s, f)
		r, err := mm.NewRoundedX(s.K)
		if err != nil {
			b.Fatal(err)
		}
		if err := mm.RoundX(r, x); err != nil {
			b.Fatal(err)
		}
		bench(fmt.Sprintf("%s/%s", s.Name, f.Name), ws, x, y, r)
		r.Free()
		free()
	}
}

// optionBuilds compiles rung 3's CUDA build once for each value 0 … n-1 of
// the source's option name (-Dname=i), closed when b ends.
func optionBuilds(b *testing.B, d *kernels.Device, name string, n int) []*Matmul {
	mms := make([]*Matmul, n)
	for i := range mms {
		c := cudaV3
		c.extra = fmt.Sprintf("-D%s=%d", name, i)
		var err error
		if mms[i], err = newMatmul(d, c); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { mms[i].Close() })
	}
	return mms
}

// BenchmarkW2D4RoundedRounds times V3Rounded with more slices of each row
// in a round (MQP_U 2 to 4, the one-slice kernel built for one block a
// multiprocessor and launched on one; with 4 its machine code is
// matmul_q4_gemv_q8r_u4's), x copied into shared memory and read in
// place, against V3Rounded's pick (u0): more bytes of W in flight a lane,
// for the shapes whose product on x rounded ahead is bound by its loads.
//
//	go test -run '^$' -bench W2D4RoundedRounds -benchtime 100x ./solutions/week2/day4
func BenchmarkW2D4RoundedRounds(b *testing.B) {
	d := kerneltest.Open(b)
	if d.Backend() != kernels.CUDA {
		b.Skip("not run: the variants are CUDA builds")
	}
	us := []int{0, 2, 3, 4}
	mms := make([]*Matmul, len(us))
	for i, u := range us {
		c := cudaV3
		if u > 0 {
			c.extra = fmt.Sprintf("-DMQP_U=%d -DMQ_MINB=1", u)
		}
		var err error
		if mms[i], err = newMatmul(d, c); err != nil {
			b.Fatal(err)
		}
		defer mms[i].Close()
		if u > 0 {
			mms[i].q8U2, mms[i].q8Cap = -1, 1
		}
	}
	eachRoundedShape(b, d, mms[0], func(prefix string, ws []*devtensor.Weight, x, y *devtensor.Activations, r *RoundedX) {
		for i, u := range us {
			mm := mms[i]
			for _, direct := range []int{0, -1, 1} {
				if u == 0 && direct != 0 {
					continue
				}
				b.Run(fmt.Sprintf("%s/u%d_direct%+d-graph-pdl", prefix, u, direct), func(b *testing.B) {
					mm.rxDirect = direct
					defer func() { mm.rxDirect = 0 }()
					benchGraphRun(b, d, mm, false, x, ws, func(w *devtensor.Weight) error { return mm.V3Rounded(y, r, w) })
				})
			}
		}
	})
}

// BenchmarkW2D4RoundedParts times V3Rounded's pick on the 4-bit decode
// shapes, from a graph with programmatic dependent launch, with x rounded
// ahead into 3 int8 parts (the default), 2 or 1 (MQ_LEVELS; each build
// rounds its own x, since the parts are its layout); the default build
// without its arithmetic (MQ_ANAT 1: W's loads kept, the sums wrong); and
// the one-slice kernel with registers for three blocks a multiprocessor,
// launched three a multiprocessor (the default two); and sets of 8 rows a
// warp instead of 4 (MV_P), with the registers for two blocks a
// multiprocessor (spilling) or one: what a part of x, more warps and more
// rows a warp buy where the loads bound the loop. Before it is timed, each
// build but those with fewer parts or no arithmetic must give the
// default's sums bit for bit (the same slices a lane, added in the same
// order).
//
//	go test -run '^$' -bench W2D4RoundedParts -benchtime 100x ./solutions/week2/day4
func BenchmarkW2D4RoundedParts(b *testing.B) {
	d := kerneltest.Open(b)
	if d.Backend() != kernels.CUDA {
		b.Skip("not run: the variants are CUDA builds")
	}
	builds := []struct {
		name, opts string
		capB       int  // Matmul.q8Cap (0: by shape)
		same       bool // its sums must be the default build's, bit for bit
	}{
		{"parts3", "", 0, true}, {"parts2", "-DMQ_LEVELS=2", 0, false}, {"parts1", "-DMQ_LEVELS=1", 0, false},
		{"no_arithmetic", "-DMQ_ANAT=1", 0, false}, {"b3", "-DMQ_MINB=3", 3, true},
		{"rows8", "-DMV_P=8", 0, true}, {"rows8_b1", "-DMV_P=8 -DMQ_MINB=1", 1, true},
	}
	mms := make([]*Matmul, len(builds))
	for i, v := range builds {
		c := cudaV3
		c.extra = v.opts
		var err error
		if mms[i], err = newMatmul(d, c); err != nil {
			b.Fatal(err)
		}
		defer mms[i].Close()
		mms[i].q8Cap = v.capB
	}
	eachRoundedShape(b, d, mms[0], func(prefix string, ws []*devtensor.Weight, x, y *devtensor.Activations, r0 *RoundedX) {
		want := q8Run(b, d, ws[0], func(y *devtensor.Activations) error { return mms[0].V3Rounded(y, r0, ws[0]) })
		for i, v := range builds {
			mm, r := mms[i], r0
			if mm.q8Levels != mms[0].q8Levels {
				var err error
				if r, err = mm.NewRoundedX(x.Cols); err != nil {
					b.Fatal(err)
				}
				defer r.Free()
				if err := mm.RoundX(r, x); err != nil {
					b.Fatal(err)
				}
			}
			if v.same {
				got := q8Run(b, d, ws[0], func(y *devtensor.Activations) error { return mm.V3Rounded(y, r, ws[0]) })
				for j := range got {
					if got[j] != want[j] {
						b.Fatalf("%s, %s: y[%d] = %v, the default build's %v", prefix, v.name, j, got[j], want[j])
					}
				}
			}
			b.Run(fmt.Sprintf("%s/%s-graph-pdl", prefix, v.name), func(b *testing.B) {
				benchGraphRun(b, d, mm, false, x, ws, func(w *devtensor.Weight) error { return mm.V3Rounded(y, r, w) })
			})
		}
	})
}

// q8Run is the row y that run writes, y first filled with NaN so that an
// unwritten row shows.
func q8Run(t testing.TB, d *kernels.Device, w *devtensor.Weight, run func(y *devtensor.Activations) error) []float32 {
	t.Helper()
	y, err := devtensor.NewActivations(d, 1, w.N)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Free()
	if err := y.Buf.Fill(0xff); err != nil {
		t.Fatal(err)
	}
	if err := run(y); err != nil {
		t.Fatal(err)
	}
	out, err := y.Download()
	if err != nil {
		t.Fatal(err)
	}
	return out.Data()
}
