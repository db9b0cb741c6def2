// Package w2d6 checks Week 2 Day 6, flash attention, for both trees: the
// CPU FlashAttention against PyTorch's scaled_dot_product_attention
// (fixtures in testdata/w2d6) and against Week 1's grouped attention on
// inputs of many tiles; the GPU prefill and decode kernels against the same
// fixtures and against the CPU on the real Qwen2 shapes. Without a GPU the
// GPU checks say by name that they did not run (kernels/kerneltest).
package w2d6

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/suspect"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Flash is the signature of the day's FlashAttention.
type Flash func(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor, causal bool) *tensor.Tensor

// CausalBias is the additive L x S bottom-right causal mask: row i hides
// the keys after i + S - L.
func CausalBias(l, s int) *tensor.Tensor {
	m := make([]float32, l*s)
	for i := range l {
		for j := i + s - l + 1; j < s; j++ {
			m[i*s+j] = float32(math.Inf(-1))
		}
	}
	return tensor.New(m, l, s)
}

// fullMask is the explicit mask plus, if causal, the causal one: what the
// formula adds to the scores.
func fullMask(mask *tensor.Tensor, causal bool, l, s int) *tensor.Tensor {
	if !causal {
		return mask
	}
	if mask == nil {
		return CausalBias(l, s)
	}
	return tensor.Add(mask, CausalBias(l, s))
}

// Mistake is a known way to get flash attention wrong.
type Mistake int

// The mistakes the checks recognise.
const (
	Correct            Mistake = iota
	NoRescaleSum               // the running sum is not multiplied by exp(m_old - m_new)
	NoRescaleOutput            // the output accumulator is not
	CausalTopLeft              // row i sees keys j <= i, as if L = S
	CausalNoDiagonal           // row i does not see its own position
	CausalOneTooMany           // row i sees one key past its own position
	InterleavedKVHeads         // query head j reads key/value head j mod H
)

// mistaken computes attention row by row over tiles of blockK keys with
// the online softmax, with one mistake in it. It is a diagnosis only,
// never the expected value.
func mistaken(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor, causal bool, blockK int, m Mistake) *tensor.Tensor {
	b, hq, l, d := q.Dim(0), q.Dim(1), q.Dim(2), q.Dim(3)
	h, s := k.Dim(1), k.Dim(2)
	if scale == 0 {
		scale = suspect.DefaultScale(d)
	}
	qd, kd, vd := q.Data(), k.Data(), v.Data()
	out := make([]float32, len(qd))
	for bi := range b {
		for j := range hq {
			kvh := suspect.Grouped(j, hq, h)
			if m == InterleavedKVHeads {
				kvh = suspect.Interleaved(j, hq, h)
			}
			kv := (bi*h + kvh) * s * d
			for i := range l {
				row := qd[((bi*hq+j)*l+i)*d:][:d]
				last := s - 1
				if causal {
					switch m {
					case CausalTopLeft:
						last = i
					case CausalNoDiagonal:
						last = i + s - l - 1
					case CausalOneTooMany:
						last = i + s - l + 1
					default:
						last = i + s - l
					}
				}
				run, sum := math.Inf(-1), 0.0
				acc := make([]float64, d)
				for j0 := 0; j0 <= min(last, s-1); j0 += blockK {
					j1 := min(j0+blockK, last+1, s)
					sc := make([]float64, j1-j0)
					top := math.Inf(-1)
					for c := range sc {
						dot := 0.0
						for e := range d {
							dot += float64(row[e]) * float64(kd[kv+(j0+c)*d+e])
						}
						sc[c] = dot * float64(scale)
						if mask != nil {
							sc[c] += float64(mask.At(i, j0+c))
						}
						top = max(top, sc[c])
					}
					mx := max(run, top)
					if math.IsInf(mx, -1) {
						continue
					}
					corr := math.Exp(run - mx)
					if m != NoRescaleSum {
						sum *= corr
					}
					if m != NoRescaleOutput {
						for e := range acc {
							acc[e] *= corr
						}
					}
					for c, x := range sc {
						p := math.Exp(x - mx)
						sum += p
						for e := range acc {
							acc[e] += p * float64(vd[kv+(j0+c)*d+e])
						}
					}
					run = mx
				}
				o := out[((bi*hq+j)*l+i)*d:][:d]
				for e := range o {
					o[e] = float32(acc[e] / sum)
				}
			}
		}
	}
	return tensor.New(out, b, hq, l, d)
}

// suspects are the mistakes a failed comparison tries, with their causes.
func suspects(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor, causal bool, blockK int) grade.Option {
	s := func(cause string, m Mistake) grade.Suspect {
		return grade.Suspect{Cause: cause, Output: func() *tensor.Tensor { return mistaken(q, k, v, scale, mask, causal, blockK, m) }}
	}
	return grade.Suspects(
		s("the running maximum moved but the running sum was not rescaled: multiply it by exp(m_old - m_new) before adding the new tile's terms", NoRescaleSum),
		s("the running maximum moved but the output accumulator was not rescaled: multiply it by exp(m_old - m_new) before adding the new tile's p·V", NoRescaleOutput),
		s("the causal mask is aligned top-left (row i sees keys j <= i); with a cache the L queries are the LAST L of S positions: row i sees j <= i + S - L", CausalTopLeft),
		s("causal tile skip off by one: row i does not see its own position i + S - L (use j <= i + S - L, not <)", CausalNoDiagonal),
		s("causal tile skip off by one: row i sees one key too many (the last visible key is i + S - L)", CausalOneTooMany),
		s("GQA head mapping wrong: query head j reads key/value head j mod H instead of j / (Hq/H)", InterleavedKVHeads),
	)
}

// FlashFixtures checks Task 1 against PyTorch's scaled_dot_product_attention
// with enable_gqa: causal (bottom-right) and explicit masks, L != S, odd
// lengths. blockK is the day's key tile size, for the diagnoses.
func FlashFixtures(t *testing.T, flash Flash, blockK int) {
	const task = "W2D6 Task 1 FlashAttention"
	grade.Cases(t, task, "w2d6", "sdpa", func(t *testing.T, c *fixture.Case) {
		what := task + ", case " + c.Name
		q, k, v := grade.MustTensor(t, c, "q"), grade.MustTensor(t, c, "k"), grade.MustTensor(t, c, "v")
		mask := grade.OptionalTensor(t, c, "mask")
		scale := float32(grade.MustFloat(t, c, "scale"))
		causal, err := c.Bool("causal")
		if err != nil {
			t.Fatal(err)
		}
		got := grade.Unchanged(t, what, func() *tensor.Tensor { return flash(q, k, v, scale, mask, causal) },
			grade.In("q", q), grade.In("k", k), grade.In("v", v), grade.In("mask", mask))
		grade.AllClose(t, what, got, grade.MustTensor(t, c, "out"), grade.Products, grade.ByHead(-3),
			suspects(q, k, v, scale, mask, causal, blockK))
	})
}

// Week1Case is a shape the Week 1 comparison runs: many tiles each way.
type Week1Case struct {
	Name              string
	B, Hq, H, L, S, D int
	Causal, Mask      bool
}

// Week1Cases span several query and key tiles, with tile-straddling lengths.
var Week1Cases = []Week1Case{
	{"qwen05b_prefill_causal", 1, 14, 2, 200, 200, 64, true, false},
	{"cache_l70_s333_causal", 2, 4, 2, 70, 333, 32, true, false},
	{"decode_s1025", 1, 7, 1, 1, 1025, 128, true, false},
	{"mask_l65_s129", 1, 6, 3, 65, 129, 16, false, true},
	{"causal_and_mask", 1, 4, 1, 97, 161, 8, true, true},
}

// MatchesWeek1 checks Task 1 against Week 1's grouped attention (the
// grader's own copy, which copies the key/value heads and materialises every
// score) on random inputs spanning many tiles.
func MatchesWeek1(t *testing.T, flash Flash, blockK int) {
	const task = "W2D6 Task 1 FlashAttention vs Week 1"
	grade.PointToChapter(t, task)
	for i, c := range Week1Cases {
		rng := rand.New(rand.NewPCG(26, uint64(i)))
		q := tensor.RandN(rng, c.B, c.Hq, c.L, c.D)
		k, v := tensor.RandN(rng, c.B, c.H, c.S, c.D), tensor.RandN(rng, c.B, c.H, c.S, c.D)
		var mask *tensor.Tensor
		if c.Mask {
			mask = tensor.RandN(rng, c.L, c.S)
		}
		stub := false
		t.Run(c.Name, func(t *testing.T) {
			what := task + ", " + c.Name
			var got *tensor.Tensor
			if stub = grade.Run(t, what, func() { got = flash(q, k, v, 0, mask, c.Causal) }); stub {
				return
			}
			want := suspect.GroupedAttention(q, k, v, suspect.DefaultScale(c.D), fullMask(mask, c.Causal, c.L, c.S), suspect.Grouped)
			grade.AllClose(t, what, got, want, grade.Products, grade.ByHead(-3), suspects(q, k, v, 0, mask, c.Causal, blockK))
		})
		if stub {
			return // one "not implemented yet" is enough
		}
	}
}

// FlashMisuses checks that shapes which do not fit panic with a message of
// the day's own.
func FlashMisuses(t *testing.T, flash Flash) {
	const task = "W2D6 Task 1 FlashAttention"
	q, kv := tensor.Ones(1, 6, 2, 4), tensor.Ones(1, 4, 3, 4)
	grade.Misuses(t, task,
		grade.Misuse{Name: "six_query_heads_on_four", What: "FlashAttention with 6 query heads on 4 key/value heads",
			Why: "Hq must be a multiple of H; panic with both numbers", Own: true, Mentions: []string{"6", "4"},
			Call: func() { flash(q, kv, kv, 0, nil, false) }},
		grade.Misuse{Name: "mask_of_wrong_shape", What: "FlashAttention with a 3 x 3 mask for L = 2, S = 3",
			Why: "the mask must be L x S", Own: true,
			Call: func() {
				flash(tensor.Ones(1, 2, 2, 4), tensor.Ones(1, 1, 3, 4), tensor.Ones(1, 1, 3, 4), 0, tensor.Zeros(3, 3), false)
			}},
	)
}
