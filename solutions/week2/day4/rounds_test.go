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
// (1 and 2 here) the outputs must agree bit for bit; with one warp a set,
// so must matmul_q4_gemv_q8_u2p's (x staged by warps of its own while the
// others multiply). All are forced on every shape, rows fewer and more
// than columns, whatever V3 would pick.
// (V3's own pick is checked against the CPU by TestW2D4VectorGPU.)
func TestW2D4TwoSlicesARoundGPU(t *testing.T) {
	d, mm := openQ8(t)
	defer mm.Close()
	eachQ8Problem(t, d, q8Shapes, func(t *testing.T, _ *w2d4.Problem, w *devtensor.Weight, x *devtensor.Activations) {
		if err := x.Upload(tensor.RandN(rand.New(rand.NewPCG(6, uint64(w.N))), 1, w.K)); err != nil {
			t.Fatal(err)
		}
		for wk := 1; wk <= 2; wk++ {
			one, two := q8Output(t, d, mm, -1, -1, wk, x, w), q8Output(t, d, mm, 1, -1, wk, x, w)
			for i := range one {
				if one[i] != two[i] {
					t.Fatalf("%d warps a set: y[%d] = %v with two slices a round, %v with one", wk, i, two[i], one[i])
				}
			}
			if wk > 1 {
				continue
			}
			// x staged by producer warps while the others multiply
			// (matmul_q4_gemv_q8_u2p): the same products again.
			prod := q8Output(t, d, mm, 1, 1, wk, x, w)
			for i := range one {
				if one[i] != prod[i] {
					t.Fatalf("y[%d] = %v with x staged by producer warps, %v with one slice a round", i, prod[i], one[i])
				}
			}
		}
	})
}

// q8Shapes are the shapes the int8-part kernels are compared on: rows
// fewer and more than columns, rows of one round and of many, and the
// long rows that V3 gives to producer warps.
var q8Shapes = []w2d4.Shape{
	{Name: "4x128", N: 4, K: 128}, {Name: "100x4096", N: 100, K: 4096}, {Name: "896x4864", N: 896, K: 4864},
	{Name: "3584x18944", N: 3584, K: 18944}, {Name: "4864x896", N: 4864, K: 896}, {Name: "1000x1152", N: 1000, K: 1152},
}

// openQ8 opens the GPU and a Matmul for the checks of the int8-part
// kernels, CUDA's only (else the check says it did not run).
func openQ8(t *testing.T) (*kernels.Device, *Matmul) {
	t.Helper()
	d := kerneltest.Open(t)
	if d.Backend() != kernels.CUDA {
		t.Skipf("not run: the int8-part kernels are CUDA's (%s)", d)
	}
	mm, err := NewMatmul(d)
	if err != nil {
		t.Fatal(err)
	}
	return d, mm
}

// eachQ8Problem runs check, as a subtest, on a random 4-bit W in groups of
// 64 and of 128 for every shape whose K the group divides, with a row of
// x of K values (its contents the check's) and the problem W was drawn
// from (p: its own x and the CPU's product).
func eachQ8Problem(t *testing.T, d *kernels.Device, shapes []w2d4.Shape, check func(t *testing.T, p *w2d4.Problem, w *devtensor.Weight, x *devtensor.Activations)) {
	for _, s := range shapes {
		s.Ms = []int{1}
		for _, f := range w2d4.Formats[1:3] {
			if s.K%f.Group != 0 {
				continue
			}
			t.Run(fmt.Sprintf("%s/%s", s.Name, f.Name), func(t *testing.T) {
				p := w2d4.NewProblem(s, f, 5)
				w, err := p.Upload(d)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Free()
				x, err := devtensor.NewActivations(d, 1, s.K)
				if err != nil {
					t.Fatal(err)
				}
				defer x.Free()
				check(t, p, w, x)
			})
		}
	}
}

// q8Output is y = x·Wᵀ by v3Q8 with its two-slice build forced on (u2 1)
// or off (-1), its build with producer warps forced on (prod 1) or off (-1),
// and wk warps a set of rows, y first filled with NaN so that an unwritten
// row shows.
func q8Output(t *testing.T, d *kernels.Device, mm *Matmul, u2, prod, wk int, x *devtensor.Activations, w *devtensor.Weight) []float32 {
	t.Helper()
	mm.q8U2, mm.q8Prod, mm.q8WK = u2, prod, wk
	defer func() { mm.q8U2, mm.q8Prod, mm.q8WK = 0, 0, 0 }()
	return q8Run(t, d, w, func(y *devtensor.Activations) error { return mm.v3Q8(y, x, w) })
}

// TestW2D4RoundedXGPU checks the product on x rounded ahead (RoundX, then
// V3Rounded) against V3's int8-part kernels, which round x in every block:
// RoundX must write the codes, scales and sums the blocks would stage, and
// the kernels then add the same products in the same order, so with the
// same build and warps a set of rows the outputs must agree bit for bit,
// whether the blocks copy the rounded x into shared memory or read it in
// place.
// Each case runs V3's own pick and the one- and two-slice builds forced on
// with 1 and 2 warps a set (and V3Rounded's four-slice build with the same
// warps a set against them); the producers' build (x staged by warps of its
// own) is what V3 picks on the long rows here, so its sums are compared
// too. y starts as NaN, so a row left unwritten fails. x is rounded again
// for a second x, so a stale rounding fails as well. All of it with x in
// three int8 parts (NewMatmul's build) and in stepParts (the decode
// step's), each build against its own staged kernels.
func TestW2D4RoundedXGPU(t *testing.T) {
	d, mm3 := openQ8(t)
	defer mm3.Close()
	mm2, err := newPartsMatmul(d, stepParts)
	if err != nil {
		t.Fatal(err)
	}
	defer mm2.Close()
	for _, mm := range []*Matmul{mm3, mm2} {
		t.Run(fmt.Sprintf("parts%d", mm.q8Levels), func(t *testing.T) { checkRoundedX(t, d, mm) })
	}
}

// checkRoundedX is TestW2D4RoundedXGPU for one build, mm.
func checkRoundedX(t *testing.T, d *kernels.Device, mm *Matmul) {
	shapes := append(q8Shapes[:len(q8Shapes):len(q8Shapes)], w2d4.Shape{Name: "18944x3584", N: 18944, K: 3584})
	eachQ8Problem(t, d, shapes, func(t *testing.T, _ *w2d4.Problem, w *devtensor.Weight, x *devtensor.Activations) {
		r, err := mm.NewRoundedX(w.K)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Free()
		for seed := uint64(1); seed <= 2; seed++ {
			if err := x.Upload(tensor.RandN(rand.New(rand.NewPCG(seed, uint64(w.N))), 1, w.K)); err != nil {
				t.Fatal(err)
			}
			if err := mm.RoundX(r, x); err != nil {
				t.Fatal(err)
			}
			for _, b := range []struct{ u2, wk int }{{0, 0}, {-1, 1}, {-1, 2}, {1, 1}, {1, 2}} {
				staged := q8Output(t, d, mm, b.u2, 0, b.wk, x, w)
				for _, direct := range []int{-1, 1} {
					got := roundedOutput(t, d, mm, b.u2, b.wk, direct, r, w)
					if i := firstDiff(got, staged); i >= 0 {
						t.Fatalf("x %d, two slices %+d, %d warps a set, read in place %+d: y[%d] = %v on x rounded ahead, %v with x staged in each block",
							seed, b.u2, b.wk, direct, i, got[i], staged[i])
					}
				}
				if b.u2 == 0 {
					continue
				}
				// Four slices a round (matmul_q4_gemv_q8r_u4), forced on
				// every shape, without producer warps: each lane adds the
				// same slices in the same order as with one or two.
				mm.rxU4, mm.q8Prod = 1, -1
				got := roundedOutput(t, d, mm, b.u2, b.wk, -1, r, w)
				mm.rxU4, mm.q8Prod = 0, 0
				if i := firstDiff(got, staged); i >= 0 {
					t.Fatalf("x %d, four slices a round, %d warps a set: y[%d] = %v on x rounded ahead, %v with x staged in each block (two slices %+d)",
						seed, b.wk, i, got[i], staged[i], b.u2)
				}
			}
		}
	})
}

// TestW2D4RoundedStepPartsGPU checks V3Rounded on x in the decode step's
// two int8 parts against the CPU's float32 product, on the odd shapes and
// Qwen2's, groups of 64 and 128. Rounded to two parts, each value of x is
// within 1/64,516 of its slice's largest (d/508, d = max|x|/127): on
// normal x about 10⁻⁵ of the output's norm, so the whole output must be
// within 10⁻⁴ of the CPU's, and each element within float32's 10⁻⁵ of
// ‖x‖·‖|W_n|‖. A slice left out, or one part of x lost, is 10⁻² or more.
func TestW2D4RoundedStepPartsGPU(t *testing.T) {
	const elemTol, relTol = w2d4.Float32ElemTol, 1e-4
	d := kerneltest.Open(t)
	if d.Backend() != kernels.CUDA {
		t.Skipf("not run: the int8-part kernels are CUDA's (%s)", d)
	}
	mm, err := newPartsMatmul(d, stepParts)
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Close()
	shapes := append(append([]w2d4.Shape{}, w2d4.OddShapes...), w2d4.RealShapes...)
	eachQ8Problem(t, d, shapes, func(t *testing.T, p *w2d4.Problem, w *devtensor.Weight, _ *devtensor.Activations) {
		r, err := mm.NewRoundedX(w.K)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Free()
		msg, worst, rel := p.Check(d, func(y, x *devtensor.Activations, w *devtensor.Weight) error {
			if err := mm.RoundX(r, x); err != nil {
				return err
			}
			return mm.V3Rounded(y, r, w)
		}, w, 1, elemTol, relTol)
		if msg != "" {
			t.Fatal(msg)
		}
		t.Logf("largest error of an element %.2e of its scale, of the whole output %.2e", worst, rel)
	})
}

// roundedOutput is y = x·Wᵀ by V3Rounded on r with its two-slice build
// forced on (u2 1), off (-1) or left to the shape (0), wk warps a set of
// rows (0: by shape), and x read in place (direct 1) or copied into shared
// memory first (-1), y first filled with NaN.
func roundedOutput(t *testing.T, d *kernels.Device, mm *Matmul, u2, wk, direct int, r *RoundedX, w *devtensor.Weight) []float32 {
	t.Helper()
	mm.q8U2, mm.q8WK, mm.rxDirect = u2, wk, direct
	defer func() { mm.q8U2, mm.q8WK, mm.rxDirect = 0, 0, 0 }()
	return q8Run(t, d, w, func(y *devtensor.Activations) error { return mm.V3Rounded(y, r, w) })
}

// TestW2D4RoundedXErrorsGPU checks that the product on x rounded ahead turns
// down what it cannot take with an error, not a launch.
func TestW2D4RoundedXErrorsGPU(t *testing.T) {
	d, mm := openQ8(t)
	defer mm.Close()
	if _, err := mm.NewRoundedX(100); err == nil {
		t.Error("NewRoundedX(100): no error for a row that is not a multiple of 32")
	}
	r, err := mm.NewRoundedX(128)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Free()
	x, err := devtensor.NewActivations(d, 1, 256)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	if err := mm.RoundX(r, x); err == nil {
		t.Error("RoundX: no error for x of 256 values into a RoundedX of 128")
	}
	w, err := w2d4.NewProblem(w2d4.Shape{Name: "64x256", N: 64, K: 256, Ms: []int{1}}, w2d4.Formats[1], 3).Upload(d)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Free()
	y, err := devtensor.NewActivations(d, 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Free()
	if err := mm.V3Rounded(y, r, w); err == nil {
		t.Error("V3Rounded: no error for x rounded at 128 values and W of 256 columns")
	}
}

// TestW2D4FourSlicesPick checks when V3Rounded takes the four-slice kernel
// (fourSlices), on any machine: forced on, off, never with producer
// warps, and by shape only on rows of 97 to 128 slices with more rows
// than columns, and only once u4Picked.
func TestW2D4FourSlicesPick(t *testing.T) {
	gateUp, down := &devtensor.Weight{N: 18944, K: 3584}, &devtensor.Weight{N: 3584, K: 18944}
	for _, c := range []struct {
		name string
		rxU4 int
		p    q8Plan
		w    *devtensor.Weight
		want bool
	}{
		{"forced on", 1, q8Plan{}, down, true},
		{"forced on, producer warps", 1, q8Plan{u2: true, prod: true}, down, false},
		{"forced off", -1, q8Plan{u2: true}, gateUp, false},
		{"by shape, 7B gate/up", 0, q8Plan{u2: true}, gateUp, u4Picked},
		{"by shape, 7B q/o", 0, q8Plan{u2: true}, &devtensor.Weight{N: 3584, K: 3584}, false},
		{"by shape, 7B down", 0, q8Plan{u2: true}, down, false},
		{"by shape, 0.5B head", 0, q8Plan{}, &devtensor.Weight{N: 151936, K: 896}, false},
	} {
		if got := (&Matmul{rxU4: c.rxU4}).fourSlices(c.p, c.w); got != c.want {
			t.Errorf("%s: fourSlices = %v, want %v", c.name, got, c.want)
		}
	}
}
