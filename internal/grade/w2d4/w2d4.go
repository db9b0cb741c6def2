// Package w2d4 checks Week 2 Day 4, y = x·Wᵀ on the GPU, for both trees: each
// rung of the kernel ladder against the CPU (internal/tensor's MatmulT on the
// bf16 weight, or on the dequantized 4-bit one), on odd shapes and on the
// real shapes of Qwen2-0.5B and Qwen2-7B. Without a GPU the checks say by name
// that they did not run (kernels/kerneltest).
package w2d4

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// Ladder is what the day's NewMatmul returns: one method per rung and the
// dispatcher. Each queues its kernel and returns.
type Ladder interface {
	V1(y, x *devtensor.Activations, w *devtensor.Weight) error
	V2(y, x *devtensor.Activations, w *devtensor.Weight) error
	V3(y, x *devtensor.Activations, w *devtensor.Weight) error
	V4(y, x *devtensor.Activations, w *devtensor.Weight) error
	V5(y, x *devtensor.Activations, w *devtensor.Weight) error
	V6(y, x *devtensor.Activations, w *devtensor.Weight) error
	Linear(y, x *devtensor.Activations, w *devtensor.Weight) error
	Close() error
}

// Tolerances, per output element y[m][n] and over the whole output; the
// chapter explains them. Scale is ‖x_m‖·‖|W_n|‖ (for 4-bit, |W| counts
// |q·s| + |b| per weight), an upper bound of Σ_k |x_k·W_nk|.
const (
	// Rungs 1-3 and Metal's rungs 4 and 5 compute in float32 from the same
	// operands as the CPU: only the order of the additions differs.
	Float32ElemTol = 1e-5
	Float32RelTol  = 1e-5
	// CUDA's rungs 4 and 5 round x (and a dequantized 4-bit W) to bf16 for the
	// tensor cores: each product is off by at most 2^-8 of its size.
	BF16ElemTol = 5e-3
	BF16RelTol  = 1e-2
)

// Format is a weight format the checks cover.
type Format struct {
	Name        string
	Bits, Group int
}

// Formats are bf16 and MLX 4-bit with groups of 64 and 128.
var Formats = []Format{{"bf16", 16, 0}, {"q4g64", 4, 64}, {"q4g128", 4, 128}}

// Shape is N x K with the row counts of x it is checked at.
type Shape struct {
	Name string
	N, K int
	Ms   []int
	BF16 bool // only bf16 (K is no multiple of 64)
}

// OddShapes catch bounds and edge bugs: single outputs, N and M that are not
// multiples of any block, K not a multiple of 32 (bf16) or 8 (bf16, where
// rungs 3 to 5 must refuse).
var OddShapes = []Shape{
	{"1x128", 1, 128, []int{1, 2}, false},
	{"37x128", 37, 128, []int{1, 3, 17}, false},
	{"1000x384", 1000, 384, []int{1, 5, 9, 16}, false},
	{"129x640", 129, 640, []int{7, 33}, false},
	{"77x1152", 77, 1152, []int{1, 70}, false},
	{"50x200", 50, 200, []int{2, 19}, true},
	{"33x37", 33, 37, []int{1, 4, 18}, true},
	{"300x256", 300, 256, []int{130, 257}, false}, // rows of x over several 128-row tiles
}

// RealShapes are the projections of Qwen2-0.5B and Qwen2-7B, N x K (K the
// input width), at one row (decode) and 24 (a short prefill). Their names
// have no "/", which would split a benchmark's name into more levels than
// the other shapes' and defeat -bench patterns such as W2D4Ladder/7B/bf16/M=1.
var RealShapes = []Shape{
	{"0.5B q+o 896x896", 896, 896, []int{1, 24}, false},
	{"0.5B gate+up 4864x896", 4864, 896, []int{1, 24}, false},
	{"0.5B down 896x4864", 896, 4864, []int{1, 24}, false},
	{"0.5B head 151936x896", 151936, 896, []int{1, 24}, false},
	{"7B q+o 3584x3584", 3584, 3584, []int{1, 24}, false},
	{"7B gate+up 18944x3584", 18944, 3584, []int{1, 24}, false},
	{"7B down 3584x18944", 3584, 18944, []int{1, 24}, false},
}

// Problem is one weight with an x of the most rows its shape is checked at,
// and the CPU's answer.
type Problem struct {
	Shape  Shape
	Format Format
	X      *tensor.Tensor // float32 Mmax x K
	BF16   *tensor.Tensor // bf16 N x K, for Format bf16
	Packed *checkpoint.PackedWeight
	Want   []float32 // Mmax x N
	XNorm  []float64 // per row of x
	WNorm  []float64 // per row of W, of |W| (4-bit: |q·s| + |b|)
}

// NewProblem draws a random weight and x (never zeros: they hide unwritten
// outputs) and computes y = x·Wᵀ on the CPU.
func NewProblem(s Shape, f Format, seed uint64) *Problem {
	r := rand.New(rand.NewPCG(seed, uint64(s.N)*31+uint64(s.K)))
	mmax := 0
	for _, m := range s.Ms {
		mmax = max(mmax, m)
	}
	p := &Problem{Shape: s, Format: f, XNorm: make([]float64, mmax), WNorm: make([]float64, s.N)}
	xs := make([]float32, mmax*s.K)
	for i := range xs {
		xs[i] = float32(r.NormFloat64())
	}
	p.X = tensor.New(xs, mmax, s.K)
	for m := range mmax {
		p.XNorm[m] = norm(xs[m*s.K : (m+1)*s.K])
	}
	var w *tensor.Tensor
	if f.Bits == 16 {
		bits := make([]uint16, s.N*s.K)
		for i := range bits {
			bits[i] = tensor.BF16FromFloat32(float32(r.NormFloat64() * 0.05))
		}
		p.BF16 = tensor.FromBF16(bits, s.N, s.K)
		w = p.BF16
		data := w.Data()
		for n := range s.N {
			p.WNorm[n] = norm(data[n*s.K : (n+1)*s.K])
		}
	} else {
		p.Packed = randomPacked(r, s.N, s.K, f.Group)
		w = p.Packed.Dequantize()
		p.WNorm = packedMagnitude(p.Packed)
	}
	p.Want = tensor.MatmulT(p.X, w).Data()
	return p
}

// randomPacked draws a 4-bit weight the way MLX lays out a quantized
// normal one: per group a scale s (sometimes negative, as MLX stores them)
// and a bias near -7.5·s, both bf16, and uniform 4-bit values.
func randomPacked(r *rand.Rand, n, k, group int) *checkpoint.PackedWeight {
	words := make([]uint32, n*k/8)
	for i := range words {
		words[i] = r.Uint32()
	}
	g := n * k / group
	s, b := make([]uint16, g), make([]uint16, g)
	for i := range g {
		sc := 0.004 + 0.01*r.Float64()
		if r.IntN(8) == 0 {
			sc = -sc
		}
		s[i] = tensor.BF16FromFloat32(float32(sc))
		b[i] = tensor.BF16FromFloat32(float32(-7.5*sc + 0.002*r.NormFloat64()))
	}
	return &checkpoint.PackedWeight{Out: n, In: k, Bits: 4, GroupSize: group, Words: words,
		Scales: tensor.FromBF16(s, n, k/group), Biases: tensor.FromBF16(b, n, k/group)}
}

func packedMagnitude(p *checkpoint.PackedWeight) []float64 {
	s, b := p.Scales.Data(), p.Biases.Data()
	groups := p.In / p.GroupSize
	out := make([]float64, p.Out)
	for r := range p.Out {
		var sum float64
		for j := range p.In {
			q := float64(p.Words[(r*p.In+j)/8] >> (4 * uint(j%8)) & 15)
			g := r*groups + j/p.GroupSize
			v := math.Abs(q*float64(s[g])) + math.Abs(float64(b[g]))
			sum += v * v
		}
		out[r] = math.Sqrt(sum)
	}
	return out
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// Upload puts the problem's weight on the device.
func (p *Problem) Upload(d *kernels.Device) (*devtensor.Weight, error) {
	if p.BF16 != nil {
		return devtensor.UploadBF16(d, p.BF16)
	}
	return devtensor.UploadPacked(d, p.Packed)
}

// problems caches the problems of a test binary: the CPU reference of the
// large shapes takes seconds, and several checks share them.
var problems sync.Map

func cached(s Shape, f Format) *Problem {
	key := s.Name + "/" + f.Name
	if p, ok := problems.Load(key); ok {
		return p.(*Problem)
	}
	p := NewProblem(s, f, 2024)
	problems.Store(key, p)
	return p
}

func rungMethod(l Ladder, rung int) func(y, x *devtensor.Activations, w *devtensor.Weight) error {
	switch rung {
	case 1:
		return l.V1
	case 2:
		return l.V2
	case 3:
		return l.V3
	case 4:
		return l.V4
	case 5:
		return l.V5
	case 6:
		return l.V6
	}
	return l.Linear
}

var rungNames = map[int]string{0: "Linear", 1: "v1 naive", 2: "v2 warp", 3: "v3 vector", 4: "v4 tensor core", 5: "v5 pipelined", 6: "v6 warpgroup"}

// Rung checks one rung (1-6; 0 is the dispatcher, Linear) of the day's
// ladder against the CPU on every odd shape and, unless short, every real
// one, in every format. Rungs 3 to 6 must refuse a bf16 K that is not a
// multiple of 8 with an error.
func Rung[L Ladder](t *testing.T, task string, rung int, newLadder func(*kernels.Device) (L, error), short bool) {
	grade.PointToChapter(t, task)
	d := kerneltest.Open(t)
	t.Logf("%s: %s on %s", task, rungNames[rung], d)
	var l L
	var err error
	if grade.Run(t, task+" (NewMatmul)", func() { l, err = newLadder(d) }) {
		return
	}
	if err != nil {
		t.Fatalf("%s: NewMatmul: %v", task, err)
	}
	defer l.Close()
	run := rungMethod(l, rung)
	elemTol, relTol := Float32ElemTol, Float32RelTol
	if (rung >= 4 || rung == 0) && d.Backend() == kernels.CUDA {
		elemTol, relTol = BF16ElemTol, BF16RelTol
	}
	if grade.Run(t, task+" (shape check)", func() { checkRefusesMismatch(t, task, d, run) }) {
		return
	}
	var worstAll, relAll float64 // the largest errors measured, logged at the end
	defer func() {
		t.Logf("%s: largest error of an element %.2e of its scale (tolerance %.0e), of a whole output %.2e (tolerance %.0e)",
			task, worstAll, elemTol, relAll, relTol)
	}()
	shapes := OddShapes
	if !short {
		shapes = append(append([]Shape{}, OddShapes...), RealShapes...)
	}
	for _, s := range shapes {
		for _, f := range Formats {
			if s.BF16 && f.Bits != 16 {
				continue
			}
			p := cached(s, f)
			stub := false
			t.Run(s.Name+"/"+f.Name, func(t *testing.T) {
				w, err := p.Upload(d)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Free()
				for _, m := range s.Ms {
					var msg string
					var worst, rel float64
					if stub = grade.Run(t, task, func() { msg, worst, rel = p.check(d, run, w, m, rung, elemTol, relTol) }); stub {
						return
					}
					worstAll, relAll = math.Max(worstAll, worst), math.Max(relAll, rel)
					if msg != "" {
						t.Errorf("%s, %s, %s, M=%d: %s", task, s.Name, f.Name, m, msg)
						return
					}
				}
			})
			if stub {
				return
			}
		}
	}
}

// checkRefusesMismatch: x with the wrong width is an error before any launch.
func checkRefusesMismatch(t *testing.T, task string, d *kernels.Device, run func(y, x *devtensor.Activations, w *devtensor.Weight) error) {
	p := cached(OddShapes[1], Formats[0])
	w, err := p.Upload(d)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Free()
	x, err := devtensor.NewActivations(d, 2, w.K+1)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	y, err := devtensor.NewActivations(d, 2, w.N)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Free()
	if err := run(y, x, w); err == nil {
		t.Errorf("%s: x of %d columns against W of K = %d gave no error", task, w.K+1, w.K)
	}
}

// Check runs run on the first m rows of x and compares y with the CPU's
// product, each element within elemTol of its scale and the whole output
// within relTol: a day's own tolerances for a product the ladder's pair
// (Float32, BF16) does not describe. It returns "" or what is wrong, and
// the worst element's error as a fraction of its scale and the whole
// output's. As for a rung, y has one row more than run may write.
func (p *Problem) Check(d *kernels.Device, run func(y, x *devtensor.Activations, w *devtensor.Weight) error, w *devtensor.Weight, m int, elemTol, relTol float64) (string, float64, float64) {
	return p.check(d, run, w, m, 0, elemTol, relTol)
}

// check runs the rung on the first m rows of x and compares with the CPU.
// It returns "" or what is wrong, and the errors it measured: the worst
// element's as a fraction of its scale, and the whole output's.
func (p *Problem) check(d *kernels.Device, run func(y, x *devtensor.Activations, w *devtensor.Weight) error, w *devtensor.Weight, m, rung int, elemTol, relTol float64) (string, float64, float64) {
	raw, msg := p.run(d, run, w, m, rung)
	if msg != "" || raw == nil {
		return msg, 0, 0
	}
	return compare(raw, p, m, elemTol, relTol)
}

// run launches the rung and returns y's m + 1 rows as bits (none where the
// rung rightly refused the shape), or what went wrong.
func (p *Problem) run(d *kernels.Device, run func(y, x *devtensor.Activations, w *devtensor.Weight) error, w *devtensor.Weight, m, rung int) ([]uint32, string) {
	n, k := p.Shape.N, p.Shape.K
	x, err := devtensor.NewActivations(d, m, k)
	if err != nil {
		return nil, err.Error()
	}
	defer x.Free()
	// One row more than the output: it must come back untouched.
	y, err := devtensor.NewActivations(d, m+1, n)
	if err != nil {
		return nil, err.Error()
	}
	defer y.Free()
	if err := y.Buf.Fill(0xFF); err != nil {
		return nil, err.Error()
	}
	xs := tensor.New(p.X.Data()[:m*k], m, k)
	if err := x.Upload(xs); err != nil {
		return nil, err.Error()
	}
	err = run(y, x, w)
	refuse := p.Format.Bits == 16 && k%8 != 0 && rung >= 3
	switch {
	case refuse && err == nil:
		return nil, fmt.Sprintf("bf16 K = %d is not a multiple of 8: the rung must refuse it with an error, and it launched", k)
	case refuse:
		return nil, ""
	case err != nil:
		return nil, err.Error()
	}
	if err := d.Synchronize(); err != nil {
		return nil, "the kernel failed: " + err.Error()
	}
	raw, err := kernels.Download[uint32](y.Buf, (m+1)*n)
	if err != nil {
		return nil, err.Error()
	}
	return raw, ""
}

func compare(raw []uint32, p *Problem, m int, elemTol, relTol float64) (string, float64, float64) {
	n := p.Shape.N
	var (
		bad, unwritten, past int
		errSq, wantSq        float64
		worst                = -1.0
		worstAt              int
		listed               []string
	)
	for i := range m * n {
		got := math.Float32frombits(raw[i])
		want := float64(p.Want[i])
		if raw[i] == 0xFFFFFFFF {
			unwritten++
		}
		diff := math.Abs(float64(got) - want)
		if math.IsNaN(diff) {
			diff = math.Inf(1)
		}
		scale := p.XNorm[i/n] * p.WNorm[i%n]
		errSq += diff * diff
		wantSq += want * want
		if r := diff / scale; r > worst {
			worst, worstAt = r, i
		}
		if diff > elemTol*scale {
			bad++
			if len(listed) < 4 {
				listed = append(listed, fmt.Sprintf("      y[%d][%d]  got %.7g  want %.7g", i/n, i%n, got, want))
			}
		}
	}
	for _, v := range raw[m*n:] {
		if v != 0xFFFFFFFF {
			past++
		}
	}
	rel := math.Sqrt(errSq / wantSq)
	if bad == 0 && past == 0 && rel <= relTol {
		return "", worst, rel
	}
	var s strings.Builder
	fmt.Fprintf(&s, "output [%d, %d] does not match the CPU\n", m, n)
	fmt.Fprintf(&s, "    tolerance  |got-want| <= %.0e·‖x_m‖·‖W_n‖ per element, ‖got-want‖/‖want‖ <= %.0e\n", elemTol, relTol)
	fmt.Fprintf(&s, "    worst element y[%d][%d] off by %.2e of its scale; relative error of the whole output %.2e\n", worstAt/n, worstAt%n, worst, rel)
	if bad > 0 {
		fmt.Fprintf(&s, "    %d of %d elements out of tolerance; first:\n%s\n", bad, m*n, strings.Join(listed, "\n"))
	}
	if unwritten > 0 {
		fmt.Fprintf(&s, "    %d elements were never written (still the NaN poison): is every output covered by a thread?\n", unwritten)
	}
	if past > 0 {
		fmt.Fprintf(&s, "    %d elements past the end of y were overwritten: threads outside [0, M·N) must not write\n", past)
	}
	return s.String(), worst, rel
}

// Sources checks, on any machine, that both kernel files of the day declare
// every kernel for both backends: a renamed kernel fails here even where no
// GPU can run it.
func Sources(t *testing.T, source func(backend, file string) string) {
	const task = "W2D4 Sources"
	grade.PointToChapter(t, task)
	for _, file := range []struct {
		name  string
		rungs []int
	}{{"matmul", []int{1, 2}}, {"matmul_fast", []int{3, 4}}} {
		for _, backend := range []string{kernels.CUDA, kernels.Metal} {
			src := source(backend, file.name)
			for _, r := range file.rungs {
				for _, f := range []string{"bf16", "q4"} {
					name := fmt.Sprintf("matmul_%s_v%d", f, r)
					decl := `extern "C" __global__ void (__launch_bounds__\([^)]*\) )?` + name + `\(`
					if backend == kernels.Metal {
						decl = `kernel void ` + name + `\(`
					}
					if !regexp.MustCompile(decl).MatchString(src) {
						t.Errorf("%s: the %s source %s does not declare kernel %s; keep the kernels' names and signatures as given", task, backend, file.name, name)
					}
				}
			}
		}
	}
}

// RefusesBadShapes checks, on any machine, that a rung's launch validates
// the shapes before it touches the device: x whose width is not W's K, or y
// whose width is not W's N, is an error. The Matmul it is given has no
// device, so a rung that launched anyway would fail here too.
func RefusesBadShapes(t *testing.T, task string, run func(y, x *devtensor.Activations, w *devtensor.Weight) error) {
	grade.PointToChapter(t, task)
	w := &devtensor.Weight{N: 3, K: 4, Bits: 16}
	for _, c := range []struct {
		name string
		y, x *devtensor.Activations
	}{
		{"x of 5 columns, K = 4", &devtensor.Activations{Rows: 2, Cols: 3, MaxRows: 2}, &devtensor.Activations{Rows: 2, Cols: 5, MaxRows: 2}},
		{"y of 2 columns, N = 3", &devtensor.Activations{Rows: 2, Cols: 2, MaxRows: 2}, &devtensor.Activations{Rows: 2, Cols: 4, MaxRows: 2}},
		{"y of 1 row for x of 2", &devtensor.Activations{Rows: 1, Cols: 3, MaxRows: 1}, &devtensor.Activations{Rows: 2, Cols: 4, MaxRows: 2}},
	} {
		var err error
		if grade.Run(t, task+", "+c.name, func() { err = run(c.y, c.x, w) }) {
			return
		}
		if err == nil {
			t.Errorf("%s, %s: no error (call check(y, x, w) before launching)", task, c.name)
		}
	}
}
