// Package w2d5 checks Week 2 Day 5, the fused kernels, for both trees. The
// CPU versions are held to the Week 1 days they replace (which are graded
// against PyTorch and MLX) and to those days' own fixtures, on odd shapes
// and the real shapes of Qwen2-0.5B and Qwen2-7B; the GPU versions are held
// to the CPU versions. Without a GPU the GPU checks say by name that they
// did not run (kernels/kerneltest).
package w2d5

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/suspect"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Week1 is what the fused operations are checked against: the tree's own
// Week 1 days, wired in by the day's test.
type Week1 struct {
	// RMSNorm is day4.NewRMSNorm(dim, weight, eps).Forward(x).
	RMSNorm func(x, weight *tensor.Tensor, eps float32) *tensor.Tensor
	// SiLU is day4.SiLU.
	SiLU func(x *tensor.Tensor) *tensor.Tensor
	// RoPE is day2.NewRoPE(dims, seqLen, base, false).Forward(x, offsets):
	// the non-traditional (half-split) form Qwen2 uses.
	RoPE func(x *tensor.Tensor, offsets []int, seqLen int, base float64) *tensor.Tensor
}

// Tolerances. The fused CPU loops compute what Week 1 computes, in float32,
// with the additions of a row's sum of squares in another order: the
// course's elementwise tolerance. RoPE's outputs are differences of two
// products, which cancel near zero, so they get the absolute part of the
// products tolerance.
var (
	NormTol   = grade.Elementwise
	RoPETol   = grade.Products
	SwiGLUTol = grade.Elementwise
)

// Qwen2 shapes: hidden size, MLP width, query and key/value heads, head
// dimension, RMSNorm eps and RoPE base.
type Model struct {
	Name                   string
	Hidden, Inter, Hq, Hkv int
	HeadDim                int
	Eps                    float32
	Theta                  float64
}

// Models are the two real shapes the checks and benchmarks use.
var Models = []Model{
	{"0.5B", 896, 4864, 14, 2, 64, 1e-6, 1e6},
	{"7B", 3584, 18944, 28, 4, 128, 1e-6, 1e6},
}

// reference computes a check's expected value with the tree's Week 1 code,
// reporting a Week 1 stub or panic as such; ok is false when there is none.
func reference(t *testing.T, task string, f func() *tensor.Tensor) (want *tensor.Tensor, ok bool) {
	t.Helper()
	if grade.Run(t, task+" (its reference, the Week 1 code of this tree)", func() { want = f() }) || t.Failed() {
		return nil, false
	}
	return want, true
}

// rng is a fixed stream per check, so a failure repeats.
func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 5)) }

// Random fills a tensor with normal values times scale plus shift.
func Random(r *rand.Rand, scale, shift float32, shape ...int) *tensor.Tensor {
	t := tensor.RandN(r, shape...)
	d := t.Data()
	for i := range d {
		d[i] = d[i]*scale + shift
	}
	return t
}

// normWeight is an RMSNorm weight near 1, stored as bf16 like Qwen2's.
func normWeight(r *rand.Rand, d int) *tensor.Tensor {
	bits := make([]uint16, d)
	for i := range bits {
		bits[i] = tensor.BF16FromFloat32(float32(1 + 0.3*r.NormFloat64()))
	}
	return tensor.FromBF16(bits, d)
}

// NormCase is one input of the RMSNorm checks.
type NormCase struct {
	Name         string
	Shape        []int // N.. x D
	Scale, Shift float32
}

// NormCases are odd shapes (a single value, widths that are no multiple of
// anything), large activations (squares in the millions: a float16 or
// bfloat16 accumulator would overflow or lose them) and tiny ones (where
// eps is a large part of the mean), then each model's hidden size at one
// row (decode) and 24 (a short prefill).
func NormCases() []NormCase {
	cs := []NormCase{
		{"1x1", []int{1, 1}, 1, 0},
		{"3x7", []int{3, 7}, 1, 0.5},
		{"2x5x33", []int{2, 5, 33}, 2, 0},
		{"4x1000_large", []int{4, 1000}, 800, 100},
		{"3x200_tiny", []int{3, 200}, 1e-4, 0},
		{"2x300_offset", []int{2, 300}, 0.1, 3},
	}
	for _, m := range Models {
		cs = append(cs, NormCase{m.Name + "_decode_1x" + fmt.Sprint(m.Hidden), []int{1, m.Hidden}, 1, 0},
			NormCase{m.Name + "_prefill_24x" + fmt.Sprint(m.Hidden), []int{1, 24, m.Hidden}, 4, 0})
	}
	return cs
}

// normSuspects are the usual ways to get RMSNorm wrong.
func normSuspects(x, w *tensor.Tensor, eps float32) grade.Option {
	norm := func(stat func(row []float32) float64) func() *tensor.Tensor {
		return func() *tensor.Tensor {
			d := w.Size()
			src, ws := x.Data(), w.Data()
			out := make([]float32, len(src))
			for r := 0; r < len(src)/d; r++ {
				row := src[r*d : (r+1)*d]
				inv := 1 / math.Sqrt(stat(row))
				for i, v := range row {
					out[r*d+i] = float32(float64(v) * inv * float64(ws[i]))
				}
			}
			return tensor.New(out, x.Shape()...)
		}
	}
	meanSq := func(row []float32) float64 {
		var s float64
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		return s / float64(len(row))
	}
	return grade.Suspects(
		grade.Suspect{Cause: "eps is missing: y = x / sqrt(mean(x²)) · w, where the reference adds eps under the root",
			Output: norm(meanSq)},
		grade.Suspect{Cause: "the mean of x is used where RMSNorm takes the mean of x²",
			Output: norm(func(row []float32) float64 {
				var s float64
				for _, v := range row {
					s += float64(v)
				}
				return s/float64(len(row)) + float64(eps)
			})},
		grade.Suspect{Cause: "the sum of squares is not divided by D: that is sqrt(Σx²), not the root mean square",
			Output: norm(func(row []float32) float64 { return meanSq(row)*float64(len(row)) + float64(eps) })},
		grade.Suspect{Cause: "the weight is not applied",
			Output: func() *tensor.Tensor {
				ones := tensor.Ones(w.Size())
				return suspectNorm(x, ones, eps)
			}},
	)
}

func suspectNorm(x, w *tensor.Tensor, eps float32) *tensor.Tensor {
	d := w.Size()
	src, ws := x.Data(), w.Data()
	out := make([]float32, len(src))
	for r := 0; r < len(src)/d; r++ {
		var s float64
		for _, v := range src[r*d : (r+1)*d] {
			s += float64(v) * float64(v)
		}
		inv := 1 / math.Sqrt(s/float64(d)+float64(eps))
		for i, v := range src[r*d : (r+1)*d] {
			out[r*d+i] = float32(float64(v) * inv * float64(ws[i]))
		}
	}
	return tensor.New(out, x.Shape()...)
}

// RMSNorm checks Task 1 on the CPU: against Hugging Face's Qwen2RMSNorm on
// Week 1's fixtures, then against the Week 1 RMSNorm on NormCases.
func RMSNorm(t *testing.T, rmsNorm func(x, weight *tensor.Tensor, eps float32) *tensor.Tensor, w1 Week1) {
	const task = "W2D5 Task 1 RMSNorm"
	if grade.Cases(t, task, "w1d4", "rms_norm", func(t *testing.T, c *fixture.Case) {
		what := task + ", Week 1 fixture " + c.Name
		x, weight := grade.MustTensor(t, c, "x"), grade.MustTensor(t, c, "weight")
		eps := float32(grade.MustFloat(t, c, "eps"))
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return rmsNorm(x, weight, eps) }, grade.In("x", x), grade.In("weight", weight))
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), NormTol, normSuspects(x, weight, eps))
	}) {
		return
	}
	for i, c := range NormCases() {
		t.Run(c.Name, func(t *testing.T) {
			r := rng(uint64(100 + i))
			x, w := Random(r, c.Scale, c.Shift, c.Shape...), normWeight(r, c.Shape[len(c.Shape)-1])
			const eps = 1e-6
			what := task + ", " + c.Name
			want, ok := reference(t, what, func() *tensor.Tensor { return w1.RMSNorm(x, w, eps) })
			if !ok {
				return
			}
			var got *tensor.Tensor
			if grade.Run(t, what, func() {
				got = grade.Unchanged(t, what, func() *tensor.Tensor { return rmsNorm(x, w, eps) }, grade.In("x", x), grade.In("weight", w))
			}) {
				return
			}
			grade.AllClose(t, what+" (against Week 1's RMSNorm)", got, want, NormTol, normSuspects(x, w, eps))
		})
	}
}

// AddRMSNorm checks Task 4 on the CPU: h must come back as h + delta (the
// residual stream), delta unchanged, and the result must be Week 1's
// RMSNorm of the sum.
func AddRMSNorm(t *testing.T, addRMSNorm func(h, delta, weight *tensor.Tensor, eps float32) *tensor.Tensor, w1 Week1) {
	const task = "W2D5 Task 4 AddRMSNorm"
	grade.PointToChapter(t, task)
	for i, c := range NormCases() {
		stub := false
		t.Run(c.Name, func(t *testing.T) {
			r := rng(uint64(400 + i))
			h, delta := Random(r, c.Scale, c.Shift, c.Shape...), Random(r, c.Scale, 0, c.Shape...)
			w := normWeight(r, c.Shape[len(c.Shape)-1])
			const eps = 1e-6
			what := task + ", " + c.Name
			before := h.Clone()
			sum := tensor.Add(h, delta)
			want, ok := reference(t, what, func() *tensor.Tensor { return w1.RMSNorm(sum, w, eps) })
			if !ok {
				stub = true
				return
			}
			var got *tensor.Tensor
			if stub = grade.Run(t, what, func() {
				snap := grade.TakeSnapshot(grade.In("delta", delta), grade.In("weight", w))
				got = addRMSNorm(h, delta, w, eps)
				snap.Verify(t, what)
			}); stub {
				return
			}
			if grade.CompareExact(h, before) == "" && grade.CompareExact(before, sum) != "" {
				t.Errorf("%s: h is unchanged after the call\n    likely cause: the residual is not written back: h must hold h + delta afterwards, the input of the next layer", what)
			} else {
				grade.AllClose(t, what+" (h afterwards, want h + delta)", h, sum, NormTol)
			}
			grade.AllClose(t, what+" (the normalised sum)", got, want, NormTol, normSuspects(sum, w, eps), grade.Suspects(
				grade.Suspect{Cause: "the norm is taken of h before delta is added", Output: func() *tensor.Tensor { return suspectNorm(before, w, eps) }},
				grade.Suspect{Cause: "the norm is taken of delta alone", Output: func() *tensor.Tensor { return suspectNorm(delta, w, eps) }},
			))
		})
		if stub {
			return
		}
	}
}

// SwiGLUCase is one input of the SwiGLU checks.
type SwiGLUCase struct {
	Name  string
	Shape []int
	Range float32 // gate is uniform in ±Range
}

// SwiGLUCases are odd shapes, gates up to ±1000 (where e^-x overflows in
// a naive sigmoid), and each model's MLP width at one row and 24.
func SwiGLUCases() []SwiGLUCase {
	cs := []SwiGLUCase{
		{"1x1", []int{1, 1}, 5},
		{"3x37", []int{3, 37}, 20},
		{"2x3x513", []int{2, 3, 513}, 8},
		{"4x300_range1000", []int{4, 300}, 1000},
	}
	for _, m := range Models {
		cs = append(cs, SwiGLUCase{m.Name + "_decode_1x" + fmt.Sprint(m.Inter), []int{1, m.Inter}, 10},
			SwiGLUCase{m.Name + "_prefill_24x" + fmt.Sprint(m.Inter), []int{24, m.Inter}, 10})
	}
	return cs
}

// SwiGLU checks Task 3 on the CPU: against PyTorch's silu on Week 1's
// fixtures (with up = 1), then against Week 1's SiLU(gate)·up.
func SwiGLU(t *testing.T, swiGLU func(gate, up *tensor.Tensor) *tensor.Tensor, w1 Week1) {
	const task = "W2D5 Task 3 SwiGLU"
	if grade.Cases(t, task, "w1d4", "silu", func(t *testing.T, c *fixture.Case) {
		what := task + ", Week 1 SiLU fixture " + c.Name + " with up = 1"
		x := grade.MustTensor(t, c, "x")
		ones := tensor.Ones(x.Shape()...)
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return swiGLU(x, ones) }, grade.In("gate", x), grade.In("up", ones))
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), SwiGLUTol, swigluSuspects(x, ones))
	}) {
		return
	}
	for i, c := range SwiGLUCases() {
		t.Run(c.Name, func(t *testing.T) {
			r := rng(uint64(300 + i))
			gate := tensor.RandUniform(r, -c.Range, c.Range, c.Shape...)
			up := Random(r, 1, 0, c.Shape...)
			what := task + ", " + c.Name
			want, ok := reference(t, what, func() *tensor.Tensor { return tensor.Mul(w1.SiLU(gate), up) })
			if !ok {
				return
			}
			var got *tensor.Tensor
			if grade.Run(t, what, func() {
				got = grade.Unchanged(t, what, func() *tensor.Tensor { return swiGLU(gate, up) }, grade.In("gate", gate), grade.In("up", up))
			}) {
				return
			}
			grade.AllClose(t, what+" (against Week 1's SiLU(gate)·up)", got, want, SwiGLUTol, swigluSuspects(gate, up))
		})
	}
}

func swigluSuspects(gate, up *tensor.Tensor) grade.Option {
	return grade.Suspects(
		grade.Suspect{Cause: "sigmoid(gate)·up: SiLU is gate·sigmoid(gate), the sigmoid times its input",
			Output: func() *tensor.Tensor { return tensor.Mul(tensor.Sigmoid(gate), up) }},
		grade.Suspect{Cause: "gate and up are swapped: silu(up)·gate",
			Output: func() *tensor.Tensor { return tensor.Mul(tensor.Mul(up, tensor.Sigmoid(up)), gate) }},
		grade.Suspect{Cause: "silu is missing: gate·up",
			Output: func() *tensor.Tensor { return tensor.Mul(gate, up) }},
	)
}

// RoPECase is one input of the RoPE checks: N rows of L tokens, Hq query
// and Hk key heads of D values, and the rows' offsets (nil, one, or one
// per row).
type RoPECase struct {
	Name            string
	N, L, Hq, Hk, D int
	Offsets         []int
	Base            float64
}

// RoPECases are odd shapes (one pair, a single head, every form of
// offsets) and the real head layouts of Qwen2-0.5B and 7B, decoding far
// into the context and prefilling, including a batch of rows at different
// positions, as continuous batching has them.
func RoPECases() []RoPECase {
	return []RoPECase{
		{"1x1_one_pair", 1, 1, 1, 1, 2, nil, 10000},
		{"3x5_per_row", 3, 5, 4, 2, 8, []int{0, 7, 3}, 10000},
		{"2x7_one_offset", 2, 7, 6, 3, 16, []int{100}, 10000},
		{"1x9_no_offset", 1, 9, 2, 2, 6, nil, 500},
		{"0.5B_decode_at_4000", 1, 1, 14, 2, 64, []int{4000}, 1e6},
		{"0.5B_prefill_24", 1, 24, 14, 2, 64, nil, 1e6},
		{"0.5B_batch_4_rows", 4, 1, 14, 2, 64, []int{0, 17, 300, 32000}, 1e6},
		{"7B_decode_at_30000", 1, 1, 28, 4, 128, []int{30000}, 1e6},
		{"7B_prefill_24_at_100", 1, 24, 28, 4, 128, []int{100}, 1e6},
		{"7B_batch_3x2", 3, 2, 28, 4, 128, []int{5, 0, 1000}, 1e6},
	}
}

// RoPEMaxPos is the table the checks build: positions 0 … 32767, as
// Qwen2-0.5B's max_position_embeddings.
const RoPEMaxPos = 32768

func ropeSuspects(x *tensor.Tensor, offsets []int, base float64) grade.Option {
	rows := make([]int, x.Dim(0))
	for i := range rows {
		switch len(offsets) {
		case 0:
		case 1:
			rows[i] = offsets[0]
		default:
			rows[i] = offsets[i]
		}
	}
	firstOnly := make([]int, len(rows))
	for i := range firstOnly {
		firstOnly[i] = rows[0]
	}
	return grade.Suspects(
		grade.Suspect{Cause: "the rotation pairs neighbours (x[2i], x[2i+1]), the traditional form; Qwen2 pairs the halves (x[i], x[i+D/2])",
			Output: func() *tensor.Tensor { return suspect.RoPE(x, rows, base, true) }},
		grade.Suspect{Cause: fmt.Sprintf("the offsets %v are ignored: every row starts at position 0", offsets),
			Output: func() *tensor.Tensor { return suspect.RoPE(x, nil, base, false) }},
		grade.Suspect{Cause: "every row uses the first row's offset; with one offset per row, row n starts at offsets[n]",
			Output: func() *tensor.Tensor { return suspect.RoPE(x, firstOnly, base, false) }},
		grade.Suspect{Cause: "this tensor was not rotated at all",
			Output: func() *tensor.Tensor { return x.Clone() }},
	)
}

// RoPE checks Task 2 on the CPU: q and k rotated in place, against MLX and
// Hugging Face on Week 1's non-traditional fixtures (with q = k = x), then
// against Week 1's RoPE on RoPECases.
func RoPE[T any](t *testing.T, newTable func(dims, maxPos int, base float64) (T, error), rope func(q, k *tensor.Tensor, table T, offsets []int), w1 Week1) {
	const task = "W2D5 Task 2 RoPE"
	tables := map[[2]float64]T{}
	table := func(t *testing.T, d int, base float64) T {
		key := [2]float64{float64(d), base}
		if tb, ok := tables[key]; ok {
			return tb
		}
		tb, err := newTable(d, RoPEMaxPos, base)
		if err != nil {
			t.Fatalf("%s: NewRoPETable(%d, %d, %g): %v", task, d, RoPEMaxPos, base, err)
		}
		tables[key] = tb
		return tb
	}
	check := func(t *testing.T, what string, q, k, wantQ, wantK *tensor.Tensor, tb T, offsets []int, base float64) {
		q0, k0 := q.Clone(), k.Clone()
		rope(q, k, tb, offsets)
		grade.AllClose(t, what+" (q, rotated in place)", q, wantQ, RoPETol, grade.ByHead(2), ropeSuspects(q0, offsets, base))
		grade.AllClose(t, what+" (k, rotated in place)", k, wantK, RoPETol, grade.ByHead(2), ropeSuspects(k0, offsets, base))
	}
	if grade.Cases(t, task, "w1d2", "rope_halves", func(t *testing.T, c *fixture.Case) {
		what := task + ", Week 1 fixture " + c.Name
		x := grade.MustTensor(t, c, "x")
		var offsets []int
		if c.Has("offsets") {
			a, err := c.Array("offsets")
			if err == nil {
				offsets, err = a.Ints()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		want := grade.MustTensor(t, c, "out")
		base := grade.MustFloat(t, c, "base")
		check(t, what, x.Clone(), x.Clone(), want, want, table(t, x.Dim(3), base), offsets, base)
	}) {
		return
	}
	for i, c := range RoPECases() {
		stub := false
		t.Run(c.Name, func(t *testing.T) {
			r := rng(uint64(200 + i))
			q, k := Random(r, 1, 0, c.N, c.L, c.Hq, c.D), Random(r, 1, 0, c.N, c.L, c.Hk, c.D)
			what := task + ", " + c.Name
			wantQ, ok := reference(t, what, func() *tensor.Tensor { return w1.RoPE(q, c.Offsets, RoPEMaxPos, c.Base) })
			if !ok {
				stub = true
				return
			}
			wantK, _ := reference(t, what, func() *tensor.Tensor { return w1.RoPE(k, c.Offsets, RoPEMaxPos, c.Base) })
			tb := table(t, c.D, c.Base)
			stub = grade.Run(t, what, func() { check(t, what+" (against Week 1's RoPE)", q, k, wantQ, wantK, tb, c.Offsets, c.Base) })
		})
		if stub {
			return
		}
	}
}
