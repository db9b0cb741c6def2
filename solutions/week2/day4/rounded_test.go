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

// TestW2D4RoundedXGPU checks the product on x rounded ahead (RoundX, then
// V3Rounded) against V3's int8-part kernels, which round x in every block:
// RoundX must write the codes, scales and sums the blocks would stage, and
// the kernels then add the same products in the same order, so with the
// same build and warps a set of rows the outputs must agree bit for bit.
// Each case runs V3's own pick and the one- and two-slice builds forced on
// with 1 and 2 warps a set; the producers' build (x staged by warps of its
// own) is what V3 picks on the long rows here, so its sums are compared
// too. y starts as NaN, so a row left unwritten fails. x is rounded again
// for a second x, so a stale rounding fails as well.
func TestW2D4RoundedXGPU(t *testing.T) {
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
		{Name: "18944x3584", N: 18944, K: 3584},
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
				r, err := mm.NewRoundedX(s.K)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Free()
				for seed := uint64(1); seed <= 2; seed++ {
					if err := x.Upload(tensor.RandN(rand.New(rand.NewPCG(seed, uint64(s.N))), 1, s.K)); err != nil {
						t.Fatal(err)
					}
					if err := mm.RoundX(r, x); err != nil {
						t.Fatal(err)
					}
					for _, b := range []struct{ u2, wk int }{{0, 0}, {-1, 1}, {-1, 2}, {1, 1}, {1, 2}} {
						staged := q8Output(t, d, mm, b.u2, 0, b.wk, x, w)
						got := roundedOutput(t, d, mm, b.u2, b.wk, r, w)
						if i := firstDiff(got, staged); i >= 0 {
							t.Fatalf("x %d, two slices %+d, %d warps a set: y[%d] = %v on x rounded ahead, %v with x staged in each block",
								seed, b.u2, b.wk, i, got[i], staged[i])
						}
					}
				}
			})
		}
	}
}

// roundedOutput is y = x·Wᵀ by V3Rounded on r with its two-slice build
// forced on (u2 1), off (-1) or left to the shape (0) and wk warps a set
// of rows (0: by shape), y first filled with NaN.
func roundedOutput(t *testing.T, d *kernels.Device, mm *Matmul, u2, wk int, r *RoundedX, w *devtensor.Weight) []float32 {
	t.Helper()
	mm.q8U2, mm.q8WK = u2, wk
	defer func() { mm.q8U2, mm.q8WK = 0, 0 }()
	y, err := devtensor.NewActivations(d, 1, w.N)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Free()
	if err := y.Buf.Fill(0xff); err != nil {
		t.Fatal(err)
	}
	if err := mm.V3Rounded(y, r, w); err != nil {
		t.Fatal(err)
	}
	out, err := y.Download()
	if err != nil {
		t.Fatal(err)
	}
	return out.Data()
}

// TestW2D4RoundedXErrors checks that the product on x rounded ahead turns
// down what it cannot take with an error, not a launch.
func TestW2D4RoundedXErrors(t *testing.T) {
	d := kerneltest.Open(t)
	if d.Backend() != kernels.CUDA {
		t.Skipf("not run: the int8-part kernels are CUDA's (%s)", d)
	}
	mm, err := NewMatmul(d)
	if err != nil {
		t.Fatal(err)
	}
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
