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
