package w2d6

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/suspect"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// Kernels is what the day's NewAttention returns.
type Kernels interface {
	Prefill(out, q *devtensor.Activations, c *devtensor.KVCache, scale float32, mask *devtensor.Activations, causal bool) error
	Decode(out, q *devtensor.Activations, c *devtensor.KVCache, scale float32, mask *devtensor.Activations, causal bool) error
	Close() error
}

// GPUTol is the GPU kernels' tolerance against the float64 references:
// float32 sums in another order, and exp2 of scores scaled by log2(e)
// (one more rounding of every score) instead of exp.
var GPUTol = grade.Tol{RTol: 1e-4, ATol: 2e-5}

// Kernel names the method a check runs.
type Kernel string

// The two kernels.
const (
	Prefill Kernel = "prefill"
	Decode  Kernel = "decode"
)

func (k Kernel) run(a Kernels) func(out, q *devtensor.Activations, c *devtensor.KVCache, scale float32, mask *devtensor.Activations, causal bool) error {
	if k == Prefill {
		return a.Prefill
	}
	return a.Decode
}

// problem is one sequence's attention: q Hq x L x D, k and v H x S x D.
type problem struct {
	q, k, v, mask *tensor.Tensor
	scale         float32
	causal        bool
}

// onDevice runs one kernel on p and returns its output as 1 x Hq x L x D,
// or what went wrong. The cache has room for 5 positions more than S, so a
// kernel that takes S for the row stride of the cache fails; out has one
// row more than L, which must come back untouched (still NaN).
func onDevice(d *kernels.Device, run func(out, q *devtensor.Activations, c *devtensor.KVCache, scale float32, mask *devtensor.Activations, causal bool) error, p problem) (*tensor.Tensor, string) {
	hq, l, dim := p.q.Dim(0), p.q.Dim(1), p.q.Dim(2)
	h, s := p.k.Dim(0), p.k.Dim(1)
	c, err := devtensor.NewKVCache(d, h, s+5, dim)
	if err != nil {
		return nil, err.Error()
	}
	defer c.Free()
	if err := c.Append(p.k, p.v); err != nil {
		return nil, err.Error()
	}
	q, err := devtensor.NewActivations(d, l, hq*dim)
	if err != nil {
		return nil, err.Error()
	}
	defer q.Free()
	if err := q.Upload(tensor.Reshape(tensor.Transpose(p.q, 1, 0, 2), l, hq*dim)); err != nil {
		return nil, err.Error()
	}
	out, err := devtensor.NewActivations(d, l+1, hq*dim)
	if err != nil {
		return nil, err.Error()
	}
	defer out.Free()
	if err := out.Buf.Fill(0xFF); err != nil {
		return nil, err.Error()
	}
	var mask *devtensor.Activations
	if p.mask != nil {
		if mask, err = devtensor.NewActivations(d, l, s); err != nil {
			return nil, err.Error()
		}
		defer mask.Free()
		if err := mask.Upload(p.mask); err != nil {
			return nil, err.Error()
		}
	}
	if err := run(out, q, c, p.scale, mask, p.causal); err != nil {
		return nil, err.Error()
	}
	if err := d.Synchronize(); err != nil {
		return nil, "the kernel failed: " + err.Error()
	}
	raw, err := kernels.Download[uint32](out.Buf, (l+1)*hq*dim)
	if err != nil {
		return nil, err.Error()
	}
	unwritten, past := 0, 0
	vals := make([]float32, l*hq*dim)
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
		return nil, fmt.Sprintf("%d values past the L = %d rows of out were overwritten: blocks outside the query rows must not write", past, l)
	}
	if unwritten > 0 {
		return nil, fmt.Sprintf("%d of %d outputs were never written (still the NaN poison): does every (query row, query head) get its output?", unwritten, len(vals))
	}
	got := tensor.Transpose(tensor.New(vals, l, hq, dim), 1, 0, 2)
	return tensor.ExpandDims(got, 0), ""
}

// batchEntry is entry b of a B x heads x len x D tensor.
func batchEntry(t *tensor.Tensor, b int) *tensor.Tensor {
	n := t.Size() / t.Dim(0)
	return tensor.New(t.Data()[b*n:(b+1)*n], t.Shape()[1:]...)
}

// gpuSuspects are the mistakes a GPU kernel is checked for: the online
// softmax updated key by key, so the tile is one key.
func gpuSuspects(p problem) grade.Option {
	q, k, v := tensor.ExpandDims(p.q, 0), tensor.ExpandDims(p.k, 0), tensor.ExpandDims(p.v, 0)
	return suspects(q, k, v, p.scale, p.mask, p.causal, 1)
}

// GPUFixtures checks one kernel against PyTorch's attention on every
// fixture case, one batch entry at a time.
func GPUFixtures[A Kernels](t *testing.T, task string, which Kernel, newAttention func(*kernels.Device) (A, error)) {
	grade.PointToChapter(t, task)
	d := kerneltest.Open(t)
	t.Logf("%s: %s kernel on %s", task, which, d)
	a, ok := open(t, task, d, newAttention)
	if !ok {
		return
	}
	defer a.Close()
	fixtureCases(t, task, d, which.run(a), false, func(int) bool { return true })
}

// open calls the day's NewAttention on d; false if it is a stub (the test
// has said so).
func open[A Kernels](t *testing.T, task string, d *kernels.Device, newAttention func(*kernels.Device) (A, error)) (A, bool) {
	t.Helper()
	var a A
	var err error
	if grade.Run(t, task+" (NewAttention)", func() { a, err = newAttention(d) }) {
		return a, false
	}
	if err != nil {
		t.Fatalf("%s: NewAttention: %v", task, err)
	}
	return a, true
}

// runFunc is a kernel launch: Prefill or Decode of some Attention.
type runFunc = func(out, q *devtensor.Activations, c *devtensor.KVCache, scale float32, mask *devtensor.Activations, causal bool) error

// fixtureCases runs the fixture cases whose head dimension applies, one
// batch entry at a time, each checked with the float32 or the bf16
// tolerances, and returns how many cases it ran.
func fixtureCases(t *testing.T, task string, d *kernels.Device, run runFunc, bf16 bool, applies func(headDim int) bool) int {
	cases, err := fixture.Load("w2d6", "sdpa")
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, c := range cases {
		q := grade.MustTensor(t, c, "q")
		if !applies(q.Dim(3)) {
			continue
		}
		ran++
		t.Run(c.Name, func(t *testing.T) {
			k, v := grade.MustTensor(t, c, "k"), grade.MustTensor(t, c, "v")
			want := grade.MustTensor(t, c, "out")
			causal, err := c.Bool("causal")
			if err != nil {
				t.Fatal(err)
			}
			for b := range q.Dim(0) {
				p := problem{q: batchEntry(q, b), k: batchEntry(k, b), v: batchEntry(v, b), mask: grade.OptionalTensor(t, c, "mask"),
					scale: float32(grade.MustFloat(t, c, "scale")), causal: causal}
				what := fmt.Sprintf("%s, case %s, batch entry %d", task, c.Name, b)
				if !runAndCheck(t, what, d, run, p, tensor.ExpandDims(batchEntry(want, b), 0), bf16) {
					return
				}
			}
		})
	}
	return ran
}

// runAndCheck runs one problem on d and checks the output; false if the
// kernel is a stub (the test has said so).
func runAndCheck(t *testing.T, what string, d *kernels.Device, run runFunc, p problem, want *tensor.Tensor, bf16 bool) bool {
	t.Helper()
	var got *tensor.Tensor
	var msg string
	if grade.Run(t, what, func() { got, msg = onDevice(d, run, p) }) {
		return false
	}
	if msg != "" {
		t.Fatalf("%s: %s", what, msg)
	}
	check(t, what, got, want, p, bf16)
	return true
}

// RealShape is a Qwen2 attention shape at a cache length. Padding, with
// Mask, hides about 30% of the keys of each row with -inf (never key 0).
type RealShape struct {
	Name                  string
	Hq, H, D, L, S        int
	Causal, Mask, Padding bool
}

// RealShapes are the attention of Qwen2-0.5B (14 query heads on 2, D 64)
// and Qwen2-7B (28 on 4, D 128): a prefill, a chunk of prefill after a
// cached prefix, and decode steps far into the context.
var RealShapes = []RealShape{
	{"0.5B prefill 300", 14, 2, 64, 300, 300, true, false, false},
	{"7B prefill 257", 28, 4, 128, 257, 257, true, false, false},
	{"7B chunk 64 after 960", 28, 4, 128, 64, 1024, true, false, false},
	{"7B masked 33 x 100", 28, 4, 128, 33, 100, false, true, false},
	{"0.5B decode 2049", 14, 2, 64, 1, 2049, true, false, false},
	{"7B decode 4096", 28, 4, 128, 1, 4096, true, false, false},
	{"7B decode 4 rows 3001", 28, 4, 128, 4, 3001, true, false, false},
}

// random draws a problem of shape s and its output by the CPU formula
// (Week 1's grouped attention, in float32), 1 x Hq x L x D.
func (s RealShape) random(rng *rand.Rand) (problem, *tensor.Tensor) {
	p := problem{q: tensor.RandN(rng, s.Hq, s.L, s.D), k: tensor.RandN(rng, s.H, s.S, s.D), v: tensor.RandN(rng, s.H, s.S, s.D), causal: s.Causal}
	if s.Mask {
		p.mask = tensor.RandN(rng, s.L, s.S)
		if s.Padding {
			m := p.mask.Data()
			for i := range m {
				m[i] *= 0.5
				if i%s.S != 0 && rng.Float64() < 0.3 {
					m[i] = float32(math.Inf(-1))
				}
			}
		}
	}
	q, k, v := tensor.ExpandDims(p.q, 0), tensor.ExpandDims(p.k, 0), tensor.ExpandDims(p.v, 0)
	return p, suspect.GroupedAttention(q, k, v, suspect.DefaultScale(s.D), fullMask(p.mask, s.Causal, s.L, s.S), suspect.Grouped)
}

// GPUvsCPU checks one kernel against the CPU formula (Week 1's grouped
// attention, in float32) on the real shapes.
func GPUvsCPU[A Kernels](t *testing.T, task string, which Kernel, newAttention func(*kernels.Device) (A, error)) {
	grade.PointToChapter(t, task)
	d := kerneltest.Open(t)
	a, ok := open(t, task, d, newAttention)
	if !ok {
		return
	}
	defer a.Close()
	realShapeCases(t, task, d, which.run(a), false, func(int) bool { return true })
}

// realShapeCases runs the real shapes whose head dimension applies against
// the CPU formula, with the float32 or the bf16 tolerances.
func realShapeCases(t *testing.T, task string, d *kernels.Device, run runFunc, bf16 bool, applies func(headDim int) bool) {
	for i, s := range RealShapes {
		if !applies(s.D) {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			p, want := s.random(rand.New(rand.NewPCG(62, uint64(i))))
			runAndCheck(t, task+", "+s.Name, d, run, p, want, bf16)
		})
	}
}

// RefusesBadShapes checks, on any machine, that a kernel's launch refuses
// shapes that do not fit before it touches the device.
func RefusesBadShapes(t *testing.T, task string, run func(out, q *devtensor.Activations, c *devtensor.KVCache, scale float32, mask *devtensor.Activations, causal bool) error) {
	grade.PointToChapter(t, task)
	c := &devtensor.KVCache{Heads: 2, Capacity: 16, HeadDim: 8, Len: 10}
	act := func(rows, cols int) *devtensor.Activations {
		return &devtensor.Activations{Rows: rows, Cols: cols, MaxRows: rows}
	}
	for _, x := range []struct {
		name      string
		out, q, m *devtensor.Activations
	}{
		{"q of 20 columns on 2 heads of 8", act(1, 20), act(1, 20), nil},
		{"out narrower than q", act(1, 8), act(1, 32), nil},
		{"11 query rows on 10 cached positions", act(11, 32), act(11, 32), nil},
		{"mask of 1 x 9 for S = 10", act(1, 32), act(1, 32), act(1, 9)},
		{"head dimension 256", act(1, 512), act(1, 512), nil},
	} {
		cc := *c
		if x.name == "head dimension 256" {
			cc.HeadDim = 256
		}
		var err error
		if grade.Run(t, task+", "+x.name, func() { err = run(x.out, x.q, &cc, 0, x.m, false) }) {
			return
		}
		if err == nil {
			t.Errorf("%s, %s: no error (validate the shapes before launching)", task, x.name)
		}
	}
}

// Sources checks, on any machine, that both kernel files declare their
// kernels for both backends.
func Sources(t *testing.T, source func(backend, file string) string) {
	const task = "W2D6 Sources"
	grade.PointToChapter(t, task)
	for file, names := range map[string][]string{"prefill": {"attention_prefill"}, "decode": {"attention_decode_split", "attention_decode_reduce"}} {
		for _, backend := range []string{kernels.CUDA, kernels.Metal} {
			src := source(backend, file)
			for _, name := range names {
				decl := `extern "C" __global__ void (__launch_bounds__\([^)]*\) )?` + name + `\(`
				if backend == kernels.Metal {
					decl = `kernel void ` + name + `\(`
				}
				if !regexp.MustCompile(decl).MatchString(src) {
					t.Errorf("%s: the %s source %s does not declare kernel %s; keep the kernels' names and signatures as given", task, backend, file, name)
				}
			}
		}
	}
}

// OddDecodeShapes are decode shapes at the edges of the decode kernels'
// tiling: caches of 1, 33, 100, 4097 and 20000 positions, 1, 2, 7 and 8
// query heads per key/value head, head dimensions 32, 64, 96 and 128, one
// to three query rows, causal, masked, and both.
var OddDecodeShapes = []RealShape{
	{"G1 D32 S1", 4, 4, 32, 1, 1, true, false, false},
	{"G7 D128 S1", 28, 4, 128, 1, 1, true, false, false},
	{"G7 D128 S33", 28, 4, 128, 1, 33, true, false, false},
	{"G8 D64 S33 2 rows causal+mask", 16, 2, 64, 2, 33, true, true, false},
	{"G2 D96 S100", 4, 2, 96, 1, 100, true, false, false},
	{"G1 D128 S4097", 4, 4, 128, 1, 4097, true, false, false},
	{"G7 D128 S4097", 28, 4, 128, 1, 4097, true, false, false},
	{"G7 D128 S4097 mask", 28, 4, 128, 1, 4097, false, true, false},
	{"G8 D128 S4097 3 rows", 16, 2, 128, 3, 4097, true, false, false},
	{"G7 D64 S20000", 28, 4, 64, 1, 20000, true, false, false},
}

// Path is one way to launch attention (a kernel of the reference, say),
// named for the messages. BF16 marks a path that rounds its inputs to bf16
// (checked with BF16ElemTol and BF16RelTol instead of GPUTol).
type Path struct {
	Name string
	Run  func(out, q *devtensor.Activations, c *devtensor.KVCache, scale float32, mask *devtensor.Activations, causal bool) error
	BF16 bool
}

// DecodePathsAgree checks every path on d against the CPU formula (Week
// 1's grouped attention) on OddDecodeShapes, and every path after the
// first against the first on the same inputs: a new kernel is checked both
// against the formula and against the kernel it replaces.
func DecodePathsAgree(t *testing.T, task string, d *kernels.Device, paths []Path) {
	pathsAgree(t, task, d, paths, OddDecodeShapes, 66)
}

// pathsAgree checks every path on d against the CPU formula on shapes (the
// inputs drawn from seed), each with its own tolerance, and every path
// after the first against the first (with the bf16 tolerances where
// either is bf16).
func pathsAgree(t *testing.T, task string, d *kernels.Device, paths []Path, shapes []RealShape, seed uint64) {
	grade.PointToChapter(t, task)
	for i, s := range shapes {
		t.Run(s.Name, func(t *testing.T) {
			p, want := s.random(rand.New(rand.NewPCG(seed, uint64(i))))
			var first *tensor.Tensor
			for _, path := range paths {
				what := fmt.Sprintf("%s, %s, %s", task, path.Name, s.Name)
				got, msg := onDevice(d, path.Run, p)
				if msg != "" {
					t.Fatalf("%s: %s", what, msg)
				}
				check(t, what+" against the CPU", got, want, p, path.BF16)
				if first == nil {
					first = got
					continue
				}
				check(t, what+" against "+paths[0].Name, got, first, p, path.BF16 || paths[0].BF16)
			}
		})
	}
}

// The tolerances of a kernel that rounds q, k, v and the probabilities to
// bf16 for the tensor cores (the reference's attention_prefill_tc), in the
// manner of W2D4's bf16 rungs: per element, |got - want| <= BF16ElemTol·a +
// 1e-6, where a = Σ_j w_ij·|v_jd| is the size of what output (i, h, d)
// averages (the same attention applied to |V|: each product w·v moves by
// at most a few 2^-8 of itself, and an error δ in a score moves the output
// by about δ·a); over the whole output, ‖got - want‖ / ‖want‖ <=
// BF16RelTol. An emulation of the kernel's roundings in float64 on the
// Qwen2 shapes stayed under 1.1e-2·a per element and 3.4e-3 over the
// output.
const (
	BF16ElemTol = 3e-2
	BF16RelTol  = 1e-2
)

// compareBF16 returns "" if got (1 x Hq x L x D) matches want within the
// bf16 tolerances, a the size of each output (see BF16ElemTol), or a
// report. NaN is expected exactly where want is NaN.
func compareBF16(got, want, a *tensor.Tensor) string {
	g, w, sz := got.Data(), want.Data(), a.Data()
	hq, l, dim := want.Dim(1), want.Dim(2), want.Dim(3)
	at := func(i int) string {
		return fmt.Sprintf("[head %d, row %d, feature %d]", i/(l*dim)%hq, i/dim%l, i%dim)
	}
	var (
		bad, nan      int
		worst         = -1.0
		worstAt       int
		errSq, wantSq float64
		listed        []string
	)
	for i := range w {
		gi, wi := float64(g[i]), float64(w[i])
		if math.IsNaN(wi) || math.IsNaN(gi) {
			if math.IsNaN(wi) != math.IsNaN(gi) {
				nan++
				bad++
			}
			continue
		}
		diff := math.Abs(gi - wi)
		if math.IsInf(gi, 0) {
			diff = math.Inf(1)
		}
		errSq += diff * diff
		wantSq += wi * wi
		scale := float64(sz[i])
		if r := diff / (scale + 1e-6); r > worst {
			worst, worstAt = r, i
		}
		if diff > BF16ElemTol*scale+1e-6 {
			bad++
			if len(listed) < 5 {
				listed = append(listed, fmt.Sprintf("      %s  got %.7g  want %.7g  size %.3g", at(i), gi, wi, scale))
			}
		}
	}
	rel := math.Sqrt(errSq / wantSq)
	if bad == 0 && rel <= BF16RelTol {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "    tolerance  |got-want| <= %.0e·a + 1e-6 per element (a = Σ_j w_ij·|v_jd|), ‖got-want‖/‖want‖ <= %.0e\n", BF16ElemTol, BF16RelTol)
	if worst >= 0 {
		fmt.Fprintf(&b, "    worst element %s off by %.2e of its size; relative error of the whole output %.2e\n", at(worstAt), worst, rel)
	}
	if nan > 0 {
		fmt.Fprintf(&b, "    %d elements are NaN where the reference is not, or not NaN where it is\n", nan)
	}
	if bad > 0 {
		fmt.Fprintf(&b, "    %d of %d elements out of tolerance; first:\n%s", bad, len(w), strings.Join(listed, "\n"))
	}
	return b.String()
}

// size is Σ_j w_ij·|v_jd| for each output of p: the attention of p with
// |V|, 1 x Hq x L x D (BF16ElemTol's a).
func (p problem) size() *tensor.Tensor {
	l, s := p.q.Dim(1), p.k.Dim(1)
	av := make([]float32, p.v.Size())
	for i, x := range p.v.Data() {
		av[i] = float32(math.Abs(float64(x)))
	}
	q, k, v := tensor.ExpandDims(p.q, 0), tensor.ExpandDims(p.k, 0), tensor.ExpandDims(tensor.New(av, p.v.Shape()...), 0)
	scale := p.scale
	if scale == 0 {
		scale = suspect.DefaultScale(p.q.Dim(2))
	}
	return suspect.GroupedAttention(q, k, v, scale, fullMask(p.mask, p.causal, l, s), suspect.Grouped)
}

// check compares a kernel's output with want: GPUTol (and the suspects'
// diagnosis) for a float32 kernel, the bf16 tolerances for a bf16 one.
func check(t *testing.T, what string, got, want *tensor.Tensor, p problem, bf16 bool) {
	t.Helper()
	if !bf16 {
		grade.AllClose(t, what, got, want, GPUTol, grade.ByHead(-3), gpuSuspects(p))
		return
	}
	if msg := compareBF16(got, want, p.size()); msg != "" {
		t.Fatalf("%s: output does not match the reference\n%s", what, msg)
	}
}

// TensorCoreFixtures checks a bf16 tensor-core prefill kernel against
// PyTorch's attention on the fixture cases whose head dimension it takes
// (applies), one batch entry at a time, with the bf16 tolerances; then, the
// same way, on the real shapes (RealShapes) it takes against the CPU
// formula. newAttention returns kernels whose Prefill launches that kernel
// and fails where it does not apply; applies says where it does. On a GPU
// where it applies at no head dimension the check says it did not run.
func TensorCoreFixtures[A Kernels](t *testing.T, task string, newAttention func(*kernels.Device) (A, error), applies func(d *kernels.Device, headDim int) bool) {
	grade.PointToChapter(t, task)
	d := kerneltest.Open(t)
	if !applies(d, 64) && !applies(d, 128) {
		t.Skipf("not run: the tensor-core prefill kernel does not apply on %s (%s, compute capability %q)", d, d.Backend(), d.Info().ComputeCapability)
	}
	a, ok := open(t, task, d, newAttention)
	if !ok {
		return
	}
	defer a.Close()
	at := func(headDim int) bool { return applies(d, headDim) }
	if fixtureCases(t, task, d, a.Prefill, true, at) == 0 {
		t.Fatalf("%s: no fixture case has a head dimension the kernel takes", task)
	}
	realShapeCases(t, task, d, a.Prefill, true, at)
}

// OddPrefillShapes are prefill shapes at the edges of the prefill kernels'
// tiles (16 query rows for the float32 kernel, 64 queries and 64 keys for
// the tensor-core one) with the head dimensions both take (64 and 128):
// lengths that are not multiples of 64 (1, 37, 63, 65, 100, 129, 300),
// query rows after a cached context (L < S), 1, 2, 7 and 8 query heads per
// key/value head, causal, an explicit mask, a padding mask with -inf, and
// causal with a mask.
var OddPrefillShapes = []RealShape{
	{"G7 D128 L1 S1", 28, 4, 128, 1, 1, true, false, false},
	{"G7 D128 L65 S65", 28, 4, 128, 65, 65, true, false, false},
	{"G1 D128 L129 S129", 4, 4, 128, 129, 129, true, false, false},
	{"G1 D64 L63 S127 after 64", 2, 2, 64, 63, 127, true, false, false},
	{"G7 D128 L70 S1000 after 930", 28, 4, 128, 70, 1000, true, false, false},
	{"G2 D64 L100 S100 mask", 4, 2, 64, 100, 100, false, true, false},
	{"G8 D64 L37 S200 after 163 causal+mask", 16, 2, 64, 37, 200, true, true, false},
	{"G7 D64 L300 S301 padding", 14, 2, 64, 300, 301, false, true, true},
	{"G8 D128 L129 S190 causal+padding", 16, 2, 128, 129, 190, true, true, true},
	{"G7 D128 L577 S577", 28, 4, 128, 577, 577, true, false, false},
}

// PrefillPathsAgree checks every path on d against the CPU formula (Week
// 1's grouped attention) on OddPrefillShapes, each with its own tolerance,
// and every path after the first against the first on the same inputs
// (with the bf16 tolerances where either is bf16).
func PrefillPathsAgree(t *testing.T, task string, d *kernels.Device, paths []Path) {
	pathsAgree(t, task, d, paths, OddPrefillShapes, 67)
}
