package day4

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d4"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// lateWriter stands for the launch ahead of a product in a decode step (the
// one that writes x), slowed down: it lets the launch after it start at
// once, spins for spin clock cycles, and only then writes x and the first
// nw words of W.
const lateWriter = `
extern "C" __global__ void write_late(float* x, const float* nx, int n, unsigned int* w,
                                      const unsigned int* nw, int nws, long long spin) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
    const long long t0 = clock64();
    while (clock64() - t0 < spin) {}
    for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] = nx[i];
    for (int i = threadIdx.x; i < nws; i += blockDim.x) w[i] = nw[i];
}
`

// TestW2D4OverlapGPU checks what rung 3's matrix-vector kernels read before
// they wait for the launch ahead. A graph holds a slow writer (lateWriter)
// and then the product, launched with Overlap, which may start while the
// writer spins. The writer writes a new x, and new values into the first
// 16 bytes of W, which every kernel asks for in its first round, before
// its wait (no kernel writes W in a real step; here it shows the overlap):
//   - with Overlap the output must be the product of the new x with the
//     old W (x read after the wait, W's first bytes before it), bit for
//     bit as the same kernel gives it launched on its own;
//   - launched plainly, the product of the new x with the new W.
//
// Both with and without the request for all of a block's weights into L2;
// for 4-bit W also x rounded ahead (RoundX, then V3Rounded, both launched
// with Overlap: the rounding must wait for the writer, and the product
// for the rounding).
func TestW2D4OverlapGPU(t *testing.T) {
	d := kerneltest.Open(t)
	if !d.Info().Overlap {
		t.Skipf("not run: %s cannot start a launch before the one ahead of it ends (programmatic dependent launch: CUDA, compute capability 9.0 or later)", d)
	}
	mod, err := d.Compile(lateWriter)
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close()
	writer, err := mod.Kernel("write_late")
	if err != nil {
		t.Fatal(err)
	}
	mm, err := NewMatmul(d)
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Close()
	const spin = 200_000 // about 100 µs at the H200's clock: far longer than a product
	v3 := func(y, x *devtensor.Activations, w *devtensor.Weight) error { return mm.Run(V3Vector, y, x, w) }
	for _, s := range []w2d4.Shape{{Name: "896x896", N: 896, K: 896, Ms: []int{1}}, {Name: "4864x896", N: 4864, K: 896, Ms: []int{1}}, {Name: "896x4864", N: 896, K: 4864, Ms: []int{1}}} {
		for _, f := range w2d4.Formats[:2] {
			for _, l2 := range []int{-1, 1} {
				name := fmt.Sprintf("%s/%s/l2%+d", s.Name, f.Name, l2)
				t.Run(name, func(t *testing.T) {
					mm.l2Pre = l2
					defer func() { mm.l2Pre = 0 }()
					lateProduct(t, d, mm, writer, spin, w2d4.NewProblem(s, f, 11), v3)
				})
			}
			if f.Bits == 4 {
				t.Run(fmt.Sprintf("%s/%s/rounded", s.Name, f.Name), func(t *testing.T) {
					r, err := mm.NewRoundedX(s.K)
					if err != nil {
						t.Fatal(err)
					}
					defer r.Free()
					rounded := func(y, x *devtensor.Activations, w *devtensor.Weight) error {
						if err := mm.RoundX(r, x); err != nil {
							return err
						}
						return mm.V3Rounded(y, r, w)
					}
					lateProduct(t, d, mm, writer, spin, w2d4.NewProblem(s, f, 11), rounded)
				})
			}
		}
	}
}

// lateProduct runs the check of TestW2D4OverlapGPU on one problem, the
// product launched by run.
func lateProduct(t *testing.T, d *kernels.Device, mm *Matmul, writer *kernels.Kernel, spin int64, p *w2d4.Problem,
	run func(y, x *devtensor.Activations, w *devtensor.Weight) error) {
	w, err := p.Upload(d)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Free()
	x, err := devtensor.NewActivations(d, 1, w.K)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	y, err := devtensor.NewActivations(d, 1, w.N)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Free()
	rng := rand.New(rand.NewPCG(5, uint64(w.N)))
	xOld, xNew := make([]float32, w.K), make([]float32, w.K)
	for i := range xOld {
		xOld[i], xNew[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	wOld := make([]uint32, 4)
	if err := kernels.Read(wOld, w.W, 0); err != nil {
		t.Fatal(err)
	}
	// New first 16 bytes of W: bf16 4.0 (0x4080) in each half, or every
	// nibble 15, far from the random weights.
	wNew := []uint32{0x40804080, 0x40804080, 0x40804080, 0x40804080}
	if w.Quantized() {
		wNew = []uint32{0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}
	}
	newX, err := d.Alloc(4 * w.K)
	if err != nil {
		t.Fatal(err)
	}
	defer newX.Free()
	newW, err := d.Alloc(16)
	if err != nil {
		t.Fatal(err)
	}
	defer newW.Free()
	for _, err := range []error{kernels.Write(newX, 0, xNew), kernels.Write(newW, 0, wNew)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// eager is the product of the new x with W's first words set to head,
	// launched on its own.
	eager := func(head []uint32) []float32 {
		for _, err := range []error{kernels.Write(x.Buf, 0, xNew), kernels.Write(w.W, 0, head), run(y, x, w)} {
			if err != nil {
				t.Fatal(err)
			}
		}
		out := make([]float32, w.N)
		if err := kernels.Read(out, y.Buf, 0); err != nil {
			t.Fatal(err)
		}
		return out
	}
	withOld, withNew := eager(wOld), eager(wNew)
	if firstDiff(withOld, withNew) < 0 {
		t.Fatal("the new first bytes of W do not change the product: the check would show nothing")
	}
	for _, noPDL := range []bool{false, true} {
		mm.noPDL = noPDL
		for _, err := range []error{kernels.Write(x.Buf, 0, xOld), kernels.Write(w.W, 0, wOld), y.Buf.Fill(0xFF)} {
			if err != nil {
				t.Fatal(err)
			}
		}
		g, err := d.Capture(func() error {
			cfg := kernels.LaunchConfig{Grid: kernels.D1(1), Block: kernels.D1(256)}
			if err := d.Launch(writer, cfg, x.Buf, newX, int32(w.K), w.W, newW, int32(4), int64(spin)); err != nil {
				return err
			}
			return run(y, x, w)
		})
		if err != nil {
			t.Fatal(err)
		}
		err = g.Launch()
		if err == nil {
			err = d.Synchronize()
		}
		g.Free()
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, w.N)
		if err := kernels.Read(got, y.Buf, 0); err != nil {
			t.Fatal(err)
		}
		want, what := withOld, "the new x with W's first bytes as they were before the writer ran (W read before the wait, x after)"
		if noPDL {
			want, what = withNew, "the new x with the new W (launched plainly: after the writer)"
		}
		if i := firstDiff(got, want); i >= 0 {
			t.Errorf("noPDL=%v: y[%d] = %g, want %g: the product of %s", noPDL, i, got[i], want[i], what)
		}
	}
	mm.noPDL = false
}

// firstDiff is the first index where a and b differ bit for bit, or -1.
func firstDiff(a, b []float32) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
