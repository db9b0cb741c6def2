package w2d5

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// GPU tolerances against the CPU versions: float32 on both sides, so the
// CPU tolerances hold (the GPU sums a row in another order and its rsqrt
// and exp are within a few units in the last place).
var (
	GPUNormTol   = NormTol
	GPURoPETol   = RoPETol
	GPUSwiGLUTol = SwiGLUTol
)

// Norms is the part of the day's Fused that the norm checks launch.
type Norms interface {
	RMSNorm(y, x *devtensor.Activations, w *devtensor.Vector, eps float32) error
	AddRMSNorm(y, h, delta *devtensor.Activations, w *devtensor.Vector, eps float32) error
	SwiGLU(y, gate, up *devtensor.Activations) error
	Close() error
}

// Rotator is the part of Fused the RoPE check launches; R is the day's
// DeviceRoPE.
type Rotator[R any] interface {
	RoPE(q, k *devtensor.Activations, r R, offsets *kernels.Buffer, seqLen int) error
	Close() error
}

// open opens the GPU and compiles the day's kernels; ok is false when the
// test cannot go on (no GPU: skipped by name; a stub: reported).
func open[F interface{ Close() error }](t *testing.T, task string, newFused func(*kernels.Device) (F, error)) (d *kernels.Device, f F, ok bool) {
	grade.PointToChapter(t, task)
	d = kerneltest.Open(t)
	t.Logf("%s on %s", task, d)
	var err error
	if grade.Run(t, task+" (NewFused)", func() { f, err = newFused(d) }) {
		return nil, f, false
	}
	if err != nil {
		t.Fatalf("%s: NewFused: %v", task, err)
	}
	t.Cleanup(func() { f.Close() })
	return d, f, true
}

// upload puts a 2-D float32 tensor on the device in a buffer one row
// longer than it, poisoned with NaN, and returns it with that spare row.
func upload(t *testing.T, d *kernels.Device, x *tensor.Tensor) *devtensor.Activations {
	t.Helper()
	rows, cols := x.Dim(0), x.Dim(1)
	a, err := devtensor.NewActivations(d, rows+1, cols)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Free() })
	if err := a.Buf.Fill(0xFF); err != nil {
		t.Fatal(err)
	}
	if err := a.Upload(x); err != nil {
		t.Fatal(err)
	}
	return a
}

// output allocates a NaN-poisoned rows+1 x cols buffer for a kernel to
// write rows of.
func output(t *testing.T, d *kernels.Device, rows, cols int) *devtensor.Activations {
	t.Helper()
	a, err := devtensor.NewActivations(d, rows+1, cols)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Free() })
	if err := a.Buf.Fill(0xFF); err != nil {
		t.Fatal(err)
	}
	return a
}

// download waits for the device and returns the first rows of a, and
// whether its spare row past them is still all NaN poison bits.
func download(t *testing.T, d *kernels.Device, a *devtensor.Activations, rows int) (*tensor.Tensor, bool) {
	t.Helper()
	if err := d.Synchronize(); err != nil {
		t.Fatalf("the kernel failed: %v", err)
	}
	raw, err := kernels.Download[uint32](a.Buf, (rows+1)*a.Cols)
	if err != nil {
		t.Fatal(err)
	}
	clean := true
	for _, v := range raw[rows*a.Cols:] {
		clean = clean && v == 0xFFFFFFFF
	}
	data, err := kernels.Download[float32](a.Buf, rows*a.Cols)
	if err != nil {
		t.Fatal(err)
	}
	return tensor.New(data, rows, a.Cols), clean
}

func flat(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Reshape(x, -1, x.Dim(-1))
}

func vector(t *testing.T, d *kernels.Device, w *tensor.Tensor) *devtensor.Vector {
	t.Helper()
	v, err := devtensor.UploadVector(d, w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Free() })
	return v
}

// compareGPU fails the test unless got matches want and the row past the
// output was left alone.
func compareGPU(t *testing.T, what string, got, want *tensor.Tensor, clean bool, tol grade.Tol, opts ...grade.Option) {
	t.Helper()
	if !clean {
		t.Errorf("%s: the row past the end of the output was written: threads or blocks past the last row must not write", what)
	}
	grade.AllClose(t, what, got, tensor.Reshape(want, got.Shape()...), tol, opts...)
}

// RMSNormGPU checks Task 1 on the GPU against the day's CPU RMSNorm.
func RMSNormGPU[F Norms](t *testing.T, newFused func(*kernels.Device) (F, error), cpu func(x, weight *tensor.Tensor, eps float32) *tensor.Tensor) {
	const task = "W2D5 Task 1 RMSNorm GPU"
	d, f, ok := open(t, task, newFused)
	if !ok {
		return
	}
	for i, c := range NormCases() {
		t.Run(c.Name, func(t *testing.T) {
			r := rng(uint64(100 + i))
			x, w := flat(Random(r, c.Scale, c.Shift, c.Shape...)), normWeight(r, c.Shape[len(c.Shape)-1])
			const eps = 1e-6
			var want *tensor.Tensor
			if grade.Run(t, task+" (the CPU RMSNorm it is checked against)", func() { want = cpu(x, w, eps) }) {
				return
			}
			dx, y := upload(t, d, x), output(t, d, x.Dim(0), x.Dim(1))
			if err := dx.SetRows(x.Dim(0)); err != nil {
				t.Fatal(err)
			}
			if grade.Run(t, task, func() {
				if err := f.RMSNorm(y, dx, vector(t, d, w), eps); err != nil {
					t.Fatalf("%s: %v", task, err)
				}
			}) {
				return
			}
			got, clean := download(t, d, y, x.Dim(0))
			compareGPU(t, task+", "+c.Name, got, want, clean, GPUNormTol, normSuspects(x, w, eps))
		})
	}
}

// AddRMSNormGPU checks Task 4 on the GPU against the day's CPU AddRMSNorm:
// the output, and h written back.
func AddRMSNormGPU[F Norms](t *testing.T, newFused func(*kernels.Device) (F, error), cpu func(h, delta, weight *tensor.Tensor, eps float32) *tensor.Tensor) {
	const task = "W2D5 Task 4 AddRMSNorm GPU"
	d, f, ok := open(t, task, newFused)
	if !ok {
		return
	}
	for i, c := range NormCases() {
		t.Run(c.Name, func(t *testing.T) {
			r := rng(uint64(400 + i))
			h, delta := flat(Random(r, c.Scale, c.Shift, c.Shape...)), flat(Random(r, c.Scale, 0, c.Shape...))
			w := normWeight(r, c.Shape[len(c.Shape)-1])
			const eps = 1e-6
			before := h.Clone()
			wantH := h.Clone()
			var want *tensor.Tensor
			if grade.Run(t, task+" (the CPU AddRMSNorm it is checked against)", func() { want = cpu(wantH, delta, w, eps) }) {
				return
			}
			rows, cols := h.Dim(0), h.Dim(1)
			dh, dd, y := upload(t, d, h), upload(t, d, delta), output(t, d, rows, cols)
			if grade.Run(t, task, func() {
				if err := f.AddRMSNorm(y, dh, dd, vector(t, d, w), eps); err != nil {
					t.Fatalf("%s: %v", task, err)
				}
			}) {
				return
			}
			gotH, cleanH := download(t, d, dh, rows)
			got, clean := download(t, d, y, rows)
			if grade.CompareExact(gotH, before) == "" {
				t.Errorf("%s, %s: h is unchanged after the kernel\n    likely cause: the residual is not written back: h must hold h + delta afterwards", task, c.Name)
			} else {
				compareGPU(t, task+", "+c.Name+" (h afterwards)", gotH, wantH, cleanH, GPUNormTol)
			}
			compareGPU(t, task+", "+c.Name+" (the normalised sum)", got, want, clean, GPUNormTol, normSuspects(wantH, w, eps), grade.Suspects(
				grade.Suspect{Cause: "the norm is taken of h before delta is added", Output: func() *tensor.Tensor { return suspectNorm(before, w, eps) }},
			))
		})
	}
}

// SwiGLUGPU checks Task 3 on the GPU against the day's CPU SwiGLU.
func SwiGLUGPU[F Norms](t *testing.T, newFused func(*kernels.Device) (F, error), cpu func(gate, up *tensor.Tensor) *tensor.Tensor) {
	const task = "W2D5 Task 3 SwiGLU GPU"
	d, f, ok := open(t, task, newFused)
	if !ok {
		return
	}
	for i, c := range SwiGLUCases() {
		t.Run(c.Name, func(t *testing.T) {
			r := rng(uint64(300 + i))
			gate := flat(tensor.RandUniform(r, -c.Range, c.Range, c.Shape...))
			up := flat(Random(r, 1, 0, c.Shape...))
			var want *tensor.Tensor
			if grade.Run(t, task+" (the CPU SwiGLU it is checked against)", func() { want = cpu(gate, up) }) {
				return
			}
			rows, cols := gate.Dim(0), gate.Dim(1)
			dg, du, y := upload(t, d, gate), upload(t, d, up), output(t, d, rows, cols)
			if grade.Run(t, task, func() {
				if err := f.SwiGLU(y, dg, du); err != nil {
					t.Fatalf("%s: %v", task, err)
				}
			}) {
				return
			}
			got, clean := download(t, d, y, rows)
			compareGPU(t, task+", "+c.Name, got, want, clean, GPUSwiGLUTol, swigluSuspects(gate, up))
		})
	}
}

// RoPEGPU checks Task 2 on the GPU against the day's CPU RoPE, with the
// offsets in a device buffer, one per row (the CPU's single offset spread
// over the rows).
func RoPEGPU[F Rotator[R], T any, R interface{ Free() error }](t *testing.T, newFused func(*kernels.Device) (F, error),
	newTable func(dims, maxPos int, base float64) (T, error), upload func(*kernels.Device, T) (R, error),
	cpu func(q, k *tensor.Tensor, table T, offsets []int)) {
	const task = "W2D5 Task 2 RoPE GPU"
	d, f, ok := open(t, task, newFused)
	if !ok {
		return
	}
	for i, c := range RoPECases() {
		t.Run(c.Name, func(t *testing.T) {
			r := rng(uint64(200 + i))
			q, k := Random(r, 1, 0, c.N, c.L, c.Hq, c.D), Random(r, 1, 0, c.N, c.L, c.Hk, c.D)
			tb, err := newTable(c.D, RoPEMaxPos, c.Base)
			if err != nil {
				t.Fatal(err)
			}
			q0, k0 := q.Clone(), k.Clone()
			wantQ, wantK := q.Clone(), k.Clone()
			if grade.Run(t, task+" (the CPU RoPE it is checked against)", func() { cpu(wantQ, wantK, tb, c.Offsets) }) {
				return
			}
			dr, err := upload(d, tb)
			if err != nil {
				t.Fatal(err)
			}
			defer dr.Free()
			offs := make([]int32, c.N)
			for n := range offs {
				switch len(c.Offsets) {
				case 0:
				case 1:
					offs[n] = int32(c.Offsets[0])
				default:
					offs[n] = int32(c.Offsets[n])
				}
			}
			ob, err := kernels.Upload(d, offs)
			if err != nil {
				t.Fatal(err)
			}
			defer ob.Free()
			tokens := c.N * c.L
			dq := uploadRows(t, d, q, tokens)
			dk := uploadRows(t, d, k, tokens)
			if grade.Run(t, task, func() {
				if err := f.RoPE(dq, dk, dr, ob, c.L); err != nil {
					t.Fatalf("%s: %v", task, err)
				}
			}) {
				return
			}
			gotQ, cleanQ := download(t, d, dq, tokens)
			gotK, cleanK := download(t, d, dk, tokens)
			what := task + ", " + c.Name
			compareGPU(t, what+" (q)", tensor.Reshape(gotQ, q.Shape()...), wantQ, cleanQ, GPURoPETol, grade.ByHead(2), ropeSuspects(q0, c.Offsets, c.Base))
			compareGPU(t, what+" (k)", tensor.Reshape(gotK, k.Shape()...), wantK, cleanK, GPURoPETol, grade.ByHead(2), ropeSuspects(k0, c.Offsets, c.Base))
		})
	}
}

// uploadRows uploads an N x L x H x D tensor as N·L rows of H·D.
func uploadRows(t *testing.T, d *kernels.Device, x *tensor.Tensor, tokens int) *devtensor.Activations {
	t.Helper()
	return upload(t, d, tensor.Reshape(x.Clone(), tokens, -1))
}

// Sources checks, on any machine, that both kernel sources declare every
// kernel: a renamed kernel fails here even where no GPU can run it.
func Sources(t *testing.T, source func(backend string) string, names []string) {
	const task = "W2D5 Sources"
	grade.PointToChapter(t, task)
	for _, backend := range []string{kernels.CUDA, kernels.Metal} {
		src := source(backend)
		for _, name := range names {
			decl := `extern "C" __global__ void ` + name + `\(`
			if backend == kernels.Metal {
				decl = `kernel void ` + name + `\(`
			}
			if !regexp.MustCompile(decl).MatchString(src) {
				t.Errorf("%s: the %s source does not declare kernel %s; keep the kernels' names and signatures as given", task, backend, name)
			}
		}
	}
}

// Launches is every launch of the day's Fused, on bad shapes.
type Launches struct {
	RMSNorm    func(y, x *devtensor.Activations, w *devtensor.Vector, eps float32) error
	RoPE       func(q, k *devtensor.Activations, offsets *kernels.Buffer, seqLen int) error
	SwiGLU     func(y, gate, up *devtensor.Activations) error
	AddRMSNorm func(y, h, delta *devtensor.Activations, w *devtensor.Vector, eps float32) error
}

// RefusesBadShapes checks, on any machine, that each launch validates its
// shapes before it touches the device: the Fused it is given has no device,
// so a launch that went ahead would fail here too. RoPE is given a table
// of head dimension 4.
func RefusesBadShapes(t *testing.T, task string, l Launches) {
	grade.PointToChapter(t, task)
	act := func(rows, cols int) *devtensor.Activations {
		return &devtensor.Activations{Rows: rows, Cols: cols, MaxRows: rows}
	}
	w := &devtensor.Vector{Len: 8}
	offsets := &kernels.Buffer{}
	type call struct {
		name string
		run  func() error
	}
	var calls []call
	if l.RMSNorm != nil {
		calls = append(calls,
			call{"RMSNorm, x of 7 columns with a weight of 8", func() error { return l.RMSNorm(act(2, 8), act(2, 7), w, 1e-6) }},
			call{"RMSNorm, y of 9 columns with a weight of 8", func() error { return l.RMSNorm(act(2, 9), act(2, 8), w, 1e-6) }},
			call{"RMSNorm, y of 1 row for x of 2", func() error { return l.RMSNorm(act(1, 8), act(2, 8), w, 1e-6) }})
	}
	if l.AddRMSNorm != nil {
		calls = append(calls,
			call{"AddRMSNorm, delta of 3 rows for h of 2", func() error { return l.AddRMSNorm(act(2, 8), act(2, 8), act(3, 8), w, 1e-6) }},
			call{"AddRMSNorm, h of 7 columns with a weight of 8", func() error { return l.AddRMSNorm(act(2, 8), act(2, 7), act(2, 7), w, 1e-6) }})
	}
	if l.SwiGLU != nil {
		calls = append(calls,
			call{"SwiGLU, up of 5 columns for gate of 6", func() error { return l.SwiGLU(act(2, 6), act(2, 6), act(2, 5)) }},
			call{"SwiGLU, y of 1 row for gate of 2", func() error { return l.SwiGLU(act(1, 6), act(2, 6), act(2, 6)) }})
	}
	if l.RoPE != nil {
		calls = append(calls,
			call{"RoPE, q of 6 columns with heads of 4", func() error { return l.RoPE(act(2, 6), act(2, 4), offsets, 1) }},
			call{"RoPE, k of 3 rows for q of 2", func() error { return l.RoPE(act(2, 8), act(3, 4), offsets, 1) }},
			call{"RoPE, 3 tokens in rows of L = 2", func() error { return l.RoPE(act(3, 8), act(3, 4), offsets, 2) }})
	}
	for _, c := range calls {
		var err error
		if grade.Run(t, fmt.Sprintf("%s, %s", task, c.name), func() { err = c.run() }) {
			return
		}
		if err == nil {
			t.Errorf("%s, %s: no error (validate the shapes before launching)", task, c.name)
		}
	}
}
