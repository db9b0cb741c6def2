package w3d4

import (
	"fmt"
	"math"
	"regexp"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// GPUTol is the kernel's tolerance against the reference: float32 sums in
// another order, and exp2 of scores scaled by log2(e) (one more rounding of
// every score) instead of exp; the same as Week 2 Day 6's kernels.
var GPUTol = grade.Tol{RTol: 1e-4, ATol: 2e-5}

// GPURun runs the day's GPU paged attention on buffers already on the
// device: it uploads the metadata (UploadMeta), launches the kernel
// (PagedKernels.Attention), waits for it and frees the metadata.
type GPURun func(out, q, k, v *kernels.Buffer, shape PageShape, hq int, seqs []Seq, scale float32, refs RefCounter) error

// NewGPUFunc prepares the day's kernels on a device: the run function and
// what closes them.
type NewGPUFunc func(d *kernels.Device) (run GPURun, closeKernels func() error, err error)

// realProblems are Qwen2 shapes far into the context, with pages of 16.
func realProblems() []*Problem {
	return []*Problem{
		build(spec{name: "Qwen2-7B heads (28 on 4, D 128): decodes at 4000 and 1500, a chunk of 64 after 960", hq: 28, h: 4, d: 128, pageSize: 16,
			seqs: [][2]int{{4000, 1}, {1500, 1}, {960, 64}}, spareEntries: 3}, 91),
		build(spec{name: "Qwen2-0.5B heads (14 on 2, D 64): 8 decodes at 100 … 2900 and a prefill of 300", hq: 14, h: 2, d: 64, pageSize: 16,
			seqs: [][2]int{{100, 1}, {2900, 1}, {511, 1}, {512, 1}, {1023, 1}, {7, 1}, {64, 1}, {1999, 1}, {0, 300}}}, 92),
	}
}

// onDevice runs p on the GPU and returns T x Hq x D, or what went wrong.
// out has one row more than T, poisoned with 0xFF bytes: that row must come
// back untouched, and no output may be left unwritten.
func onDevice(d *kernels.Device, run GPURun, p *Problem) (*tensor.Tensor, string) {
	t, hq, dim := p.Rows(), p.Hq, p.Shape.HeadDim
	var bufs []*kernels.Buffer
	defer func() {
		for _, b := range bufs {
			b.Free()
		}
	}()
	up := func(x []float32) (*kernels.Buffer, error) {
		b, err := kernels.Upload(d, x)
		if err == nil {
			bufs = append(bufs, b)
		}
		return b, err
	}
	k, err := up(p.K)
	if err != nil {
		return nil, err.Error()
	}
	v, err := up(p.V)
	if err != nil {
		return nil, err.Error()
	}
	q, err := up(p.Q.Data())
	if err != nil {
		return nil, err.Error()
	}
	out, err := d.Alloc(4 * (t + 1) * hq * dim)
	if err != nil {
		return nil, err.Error()
	}
	bufs = append(bufs, out)
	if err := out.Fill(0xFF); err != nil {
		return nil, err.Error()
	}
	if err := run(out, q, k, v, p.Shape, hq, p.Seqs, p.Scale, p.RefCount); err != nil {
		return nil, err.Error()
	}
	raw, err := kernels.Download[uint32](out, (t+1)*hq*dim)
	if err != nil {
		return nil, err.Error()
	}
	vals := make([]float32, t*hq*dim)
	unwritten, past := 0, 0
	for i, r := range raw {
		switch {
		case i >= len(vals):
			if r != 0xFFFFFFFF {
				past++
			}
		default:
			vals[i] = math.Float32frombits(r)
			if r == 0xFFFFFFFF {
				unwritten++
			}
		}
	}
	if past > 0 {
		return nil, fmt.Sprintf("%d values past the T = %d query rows of out were overwritten", past, t)
	}
	if unwritten > 0 {
		return nil, fmt.Sprintf("%d of %d outputs were never written (still the 0xFF poison)", unwritten, len(vals))
	}
	return tensor.New(vals, t, hq, dim), ""
}

// GPU checks Task 4, the paged attention kernel, against the dense
// reference on the CPU problems and on Qwen2 shapes far into the context:
// decode steps and prefill chunks after a cached context in one launch.
// Without a GPU it says by name that it did not run.
func GPU(t *testing.T, newGPU NewGPUFunc) {
	const task = "W3D4 Task 4 paged attention kernel"
	grade.PointToChapter(t, task)
	d := kerneltest.Open(t)
	t.Logf("%s on %s", task, d)
	var run GPURun
	var closeKernels func() error
	var err error
	if grade.Run(t, task+" (NewPagedKernels)", func() { run, closeKernels, err = newGPU(d) }) {
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", task, err)
	}
	defer closeKernels()
	for _, p := range append(Problems(140), realProblems()...) {
		t.Run(p.Name, func(t *testing.T) {
			what := task + ", " + p.Name
			var got *tensor.Tensor
			var msg string
			if grade.Run(t, what, func() { got, msg = onDevice(d, run, p) }) {
				return
			}
			if msg != "" {
				t.Fatalf("%s: %s", what, msg)
			}
			if n := countNaN(got); n > 0 {
				t.Fatalf("%s: %d outputs are NaN: the slots no sequence may read are NaN here, so the kernel read past a table's need, past a context, or another sequence's page", what, n)
			}
			grade.AllClose(t, what, got, p.Want(), GPUTol, grade.ByHead(1), suspects(p))
		})
	}
}

// GPURefuses checks, on any machine, that the GPU path refuses every case
// of the rejection matrix before it touches the device: run is called with
// nil buffers and must return an error, not launch, not panic.
func GPURefuses(t *testing.T, run GPURun) {
	const task = "W3D4 Task 4 UploadMeta"
	grade.PointToChapter(t, task)
	_, bad, cases := Cases()
	for i, p := range bad {
		var err error
		if grade.Run(t, task+", "+cases[i].Name, func() { err = run(nil, nil, nil, nil, p.Shape, p.Hq, p.Seqs, 0, p.RefCount) }) {
			return
		}
		if msg := errorNames(err, cases[i].Words); msg != "" {
			t.Errorf("%s, %s: %s", task, cases[i].Name, msg)
		}
	}
}

// Sources checks, on any machine, that both kernel sources declare the
// kernel.
func Sources(t *testing.T, source func(backend string) string) {
	const task = "W3D4 Task 4 sources"
	grade.PointToChapter(t, task)
	for _, backend := range []string{kernels.CUDA, kernels.Metal} {
		decl := `extern "C" __global__ void (__launch_bounds__\([^)]*\) )?paged_attention\(`
		if backend == kernels.Metal {
			decl = `kernel void paged_attention\(`
		}
		if !regexp.MustCompile(decl).MatchString(source(backend)) {
			t.Errorf("%s: the %s source does not declare kernel paged_attention; keep its name and signature as given", task, backend)
		}
	}
}
