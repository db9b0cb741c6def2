package day4

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d4"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// TestW2D4TwoSlicesARoundGPU checks matmul_q4_gemv_q8_u2 (two slices of a
// row in flight a lane) against matmul_q4_gemv_q8 (one): each lane adds
// the same slices in the same order, so with the same warps a set of rows
// (1 and 2 here) the outputs must agree bit for bit. Both are forced on
// every shape, rows fewer and more than columns, whatever V3 would pick.
// (V3's own pick is checked against the CPU by TestW2D4VectorGPU.)
func TestW2D4TwoSlicesARoundGPU(t *testing.T) {
	d := kerneltest.Open(t)
	if d.Backend() != kernels.CUDA {
		t.Skipf("not run: the int8-part kernels are CUDA's (%s)", d)
	}
	mm, err := NewMatmul(d)
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Close()
	shapes := []w2d4.Shape{
		{Name: "4x128", N: 4, K: 128}, {Name: "100x4096", N: 100, K: 4096}, {Name: "896x4864", N: 896, K: 4864},
		{Name: "3584x18944", N: 3584, K: 18944}, {Name: "4864x896", N: 4864, K: 896}, {Name: "1000x1152", N: 1000, K: 1152},
	}
	for _, s := range shapes {
		s.Ms = []int{1}
		for _, f := range w2d4.Formats[1:3] {
			if s.K%f.Group != 0 {
				continue
			}
			t.Run(fmt.Sprintf("%s/%s", s.Name, f.Name), func(t *testing.T) {
				w, err := w2d4.NewProblem(s, f, 5).Upload(d)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Free()
				x, err := devtensor.NewActivations(d, 1, s.K)
				if err != nil {
					t.Fatal(err)
				}
				defer x.Free()
				if err := x.Upload(tensor.RandN(rand.New(rand.NewPCG(6, uint64(s.N))), 1, s.K)); err != nil {
					t.Fatal(err)
				}
				for wk := 1; wk <= 2; wk++ {
					one, two := q8Output(t, d, mm, -1, wk, x, w, -1), q8Output(t, d, mm, 1, wk, x, w, -1)
					for i := range one {
						if one[i] != two[i] {
							t.Fatalf("%d warps a set: y[%d] = %v with two slices a round, %v with one", wk, i, two[i], one[i])
						}
					}
				}
			})
		}
	}
}

// q8Output is y = x·Wᵀ by v3Q8 with its two-slice build forced on (u2 1)
// or off (-1), wk warps a set of rows, and the bulk-copy build forced on
// (bulk 1) or off (-1), y first filled with NaN so that an unwritten row
// shows.
func q8Output(t *testing.T, d *kernels.Device, mm *Matmul, u2, wk int, x *devtensor.Activations, w *devtensor.Weight, bulk int) []float32 {
	t.Helper()
	mm.q8U2, mm.q8WK, mm.bulk = u2, wk, bulk
	defer func() { mm.q8U2, mm.q8WK, mm.bulk = 0, 0, 0 }()
	y, err := devtensor.NewActivations(d, 1, w.N)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Free()
	if err := y.Buf.Fill(0xff); err != nil {
		t.Fatal(err)
	}
	if err := mm.v3Q8(y, x, w); err != nil {
		t.Fatal(err)
	}
	out, err := y.Download()
	if err != nil {
		t.Fatal(err)
	}
	return out.Data()
}

// TestW2D4BulkCopiesGPU checks matmul_q4_gemv_bulk (W through shared
// memory by bulk copies) against matmul_q4_gemv_q8 with the same warps a
// set of rows: the same slices in the same order, so the outputs must
// agree bit for bit. Each split it can take runs with one slot (every
// tile waits for the refill of the one before), two, and as many as fit,
// and sized for one and two blocks a multiprocessor, on rows fewer and
// more than columns and last tiles part full.
func TestW2D4BulkCopiesGPU(t *testing.T) {
	d, mm := bulkDevice(t)
	defer mm.Close()
	q4Problems(t, d, func(t *testing.T, x *devtensor.Activations, w *devtensor.Weight) {
		runs := 0
		for wk := 1; wk <= Block/32; wk *= 2 {
			for _, c := range []struct{ stages, perSM int }{{1, 1}, {2, 1}, {0, 1}, {0, 2}} {
				mm.bulkWK, mm.bulkStages, mm.bulkPerSM = wk, c.stages, c.perSM
				plan, ok := mm.bulkPlan(w)
				if !ok {
					continue
				}
				runs++
				got := q8Output(t, d, mm, 0, 0, x, w, 1)
				mm.bulkWK, mm.bulkStages, mm.bulkPerSM = 0, 0, 0
				sameBits(t, fmt.Sprintf("%+v", plan), got, q8Output(t, d, mm, -1, wk, x, w, -1))
			}
		}
		mm.bulkWK, mm.bulkStages, mm.bulkPerSM = 0, 0, 0
		if runs == 0 {
			t.Fatalf("bulkPlan takes no split of W [%d, %d] in groups of %d", w.N, w.K, w.GroupSize)
		}
	})
}

// TestW2D4RingGPU checks matmul_q4_gemv_ring (each warp streaming its own
// rows through a ring of slots) against matmul_q4_gemv_q8 with one warp a
// set of rows, bit for bit as above: ringPlan's build, and builds with one
// slot a warp, chunks of 32 slices (rows in several chunks, the last part
// full), and 3 or 16 warps a block.
func TestW2D4RingGPU(t *testing.T) {
	d, mm := bulkDevice(t)
	defer mm.Close()
	q4Problems(t, d, func(t *testing.T, x *devtensor.Activations, w *devtensor.Weight) {
		ref := q8Output(t, d, mm, -1, 1, x, w, -1)
		for _, c := range []struct{ warps, slots, cs int }{{0, 0, 0}, {0, 1, 0}, {0, 0, 32}, {0, 1, 32}, {3, 2, 0}, {16, 0, 64}} {
			mm.ringWarps, mm.ringSlots, mm.ringCS = c.warps, c.slots, c.cs
			plan, ok := mm.ringPlan(w)
			if !ok {
				t.Fatalf("ringPlan takes no build of W [%d, %d] in groups of %d with %+v", w.N, w.K, w.GroupSize, c)
			}
			mm.ring = 1
			got := q8Output(t, d, mm, 0, 0, x, w, -1)
			mm.ring, mm.ringWarps, mm.ringSlots, mm.ringCS = 0, 0, 0, 0
			sameBits(t, fmt.Sprintf("%+v", plan), got, ref)
		}
	})
}

// TestW2D4WarpsABlockGPU checks matmul_q4_gemv_q8_u2w, the two-slice build
// for blocks of 4 to 10 warps, against matmul_q4_gemv_q8_u2 (8 warps) with
// one warp a set of rows: a warp's rows do not depend on the block it is
// in, so the outputs must agree bit for bit, with u2Warps' pick and with
// 4, 7, 9 and 10 warps.
func TestW2D4WarpsABlockGPU(t *testing.T) {
	d := kerneltest.Open(t)
	if d.Backend() != kernels.CUDA {
		t.Skipf("not run: the int8-part kernels are CUDA's (%s)", d)
	}
	mm, err := NewMatmul(d)
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Close()
	q4Problems(t, d, func(t *testing.T, x *devtensor.Activations, w *devtensor.Weight) {
		mm.q8Warps = -1
		ref := q8Output(t, d, mm, 1, 1, x, w, -1)
		for _, wp := range []int{0, 4, 7, 9, 10} {
			mm.q8Warps = wp
			sameBits(t, fmt.Sprintf("%d warps a block (0: u2Warps' %d)", wp, u2Warps(w.N, d.Info().Multiprocessors)), q8Output(t, d, mm, 1, 1, x, w, -1), ref)
		}
		mm.q8Warps = 0
	})
}

// bulkDevice opens the GPU for the bulk-copy checks (a Hopper or later).
func bulkDevice(t *testing.T) (*kernels.Device, *Matmul) {
	t.Helper()
	d := kerneltest.Open(t)
	if d.Backend() != kernels.CUDA || !d.Info().Overlap {
		t.Skipf("not run: bulk copies need CUDA compute capability 9.0 or later (%s)", d)
	}
	mm, err := NewMatmul(d)
	if err != nil {
		t.Fatal(err)
	}
	return d, mm
}

// q4Problems runs check on random 4-bit weights and x of shapes whose
// rows are fewer and more than their columns, some of them ending in a
// part-full set of rows, in groups of 64 and 128.
func q4Problems(t *testing.T, d *kernels.Device, check func(t *testing.T, x *devtensor.Activations, w *devtensor.Weight)) {
	shapes := []w2d4.Shape{
		{Name: "8x128", N: 8, K: 128}, {Name: "100x4096", N: 100, K: 4096}, {Name: "896x4864", N: 896, K: 4864},
		{Name: "3584x18944", N: 3584, K: 18944}, {Name: "4864x896", N: 4864, K: 896}, {Name: "1000x1152", N: 1000, K: 1152},
		{Name: "18944x3584", N: 18944, K: 3584},
	}
	for _, s := range shapes {
		s.Ms = []int{1}
		for _, f := range w2d4.Formats[1:3] {
			if s.K%f.Group != 0 {
				continue
			}
			t.Run(fmt.Sprintf("%s/%s", s.Name, f.Name), func(t *testing.T) {
				w, err := w2d4.NewProblem(s, f, 7).Upload(d)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Free()
				x, err := devtensor.NewActivations(d, 1, s.K)
				if err != nil {
					t.Fatal(err)
				}
				defer x.Free()
				if err := x.Upload(tensor.RandN(rand.New(rand.NewPCG(8, uint64(s.N))), 1, s.K)); err != nil {
					t.Fatal(err)
				}
				check(t, x, w)
			})
		}
	}
}

// sameBits fails unless got and want are equal element by element.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: y[%d] = %v, the registers' build %v", what, i, got[i], want[i])
		}
	}
}
