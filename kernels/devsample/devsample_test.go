package devsample

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day7"
)

func TestCUDASourceCompiles(t *testing.T) {
	err := kernels.CheckCUDASource(Source(kernels.CUDA), "sm_90")
	if errors.Is(err, kernels.ErrNoCompiler) {
		if os.Getenv(kerneltest.RequireEnv) != "" {
			t.Fatal(err)
		}
		t.Skipf("not run: %v", err)
	}
	if err != nil {
		t.Fatalf("the sampler's CUDA source does not compile: %v", err)
	}
}

// State must be where Week 1's NewSampler starts its PCG, which the
// generator's binary form shows: "pcg:", then the high and low words.
func TestStateIsWeek1Seeding(t *testing.T) {
	for _, seed := range []uint64{0, 1, 42, math.MaxUint64} {
		st := State(seed)
		b, err := rand.NewPCG(seed, seed^0x9e3779b97f4a7c15).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 20 || string(b[:4]) != "pcg:" {
			t.Fatalf("unexpected PCG encoding %q", b)
		}
		if hi, lo := binary.BigEndian.Uint64(b[4:]), binary.BigEndian.Uint64(b[12:]); st != [2]uint64{hi, lo} {
			t.Errorf("seed %d: State is %x, Go's PCG starts at %x %x", seed, st, hi, lo)
		}
	}
}

func TestParamsCheck(t *testing.T) {
	bad := []Params{
		{Temperature: -0.1},
		{Temperature: math.NaN()},
		{Temperature: math.Inf(1)},
		{Temperature: 1, TopP: 1.5},
		{Temperature: 1, TopP: -0.1},
		{Temperature: 1, TopP: math.NaN()},
		{Temperature: 1, TopK: -1},
	}
	for _, p := range bad {
		if p.Check() == nil {
			t.Errorf("%+v was accepted", p)
		}
	}
	for _, p := range []Params{{}, {Temperature: 0.7, TopP: 0.8, TopK: 20, Seed: 3}, {Temperature: 2, TopP: 1}} {
		if err := p.Check(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
}

// sampleCase is one row of the comparison with Week 1's sampler.
type sampleCase struct {
	name string
	p    Params
	ties bool // logits rounded to halves, so that the filters cut through runs of equal values
}

var sampleCases = []sampleCase{
	{"greedy", Params{Temperature: 0, TopP: 1, Seed: 1}, false},
	{"temperature only", Params{Temperature: 0.8, TopP: 1, Seed: 2}, false},
	{"top-k 40", Params{Temperature: 1, TopP: 1, TopK: 40, Seed: 3}, false},
	{"top-p 0.9", Params{Temperature: 0.7, TopP: 0.9, Seed: 4}, false},
	{"T 0.7, top-p 0.8, top-k 20", Params{Temperature: 0.7, TopP: 0.8, TopK: 20, Seed: 5}, false},
	{"hot: T 1.5, top-p 0.95", Params{Temperature: 1.5, TopP: 0.95, Seed: 6}, false},
	{"top-k 1", Params{Temperature: 1, TopP: 1, TopK: 1, Seed: 7}, false},
	{"top-k 7 through ties", Params{Temperature: 1, TopP: 1, TopK: 7, Seed: 8}, true},
	{"top-p 0.5 through ties", Params{Temperature: 1.3, TopP: 0.5, Seed: 9}, true},
	{"top-k 300 then top-p 0.6 with ties", Params{Temperature: 0.9, TopP: 0.6, TopK: 300, Seed: 10}, true},
	{"top-k larger than the vocabulary", Params{Temperature: 1, TopP: 1, TopK: 1 << 20, Seed: 11}, false},
}

// logitsRow is a row of log-probabilities: normal logits of spread scale,
// shifted by their log-sum-exp, and rounded to halves for ties.
func logitsRow(rng *rand.Rand, n int, scale float64, ties bool) []float32 {
	x := make([]float64, n)
	maxv := math.Inf(-1)
	for i := range x {
		x[i] = rng.NormFloat64() * scale
		if ties {
			x[i] = math.Round(2*x[i]) / 2
		}
		maxv = math.Max(maxv, x[i])
	}
	sum := 0.0
	for _, v := range x {
		sum += math.Exp(v - maxv)
	}
	lse := maxv + math.Log(sum)
	row := make([]float32, n)
	for i, v := range x {
		row[i] = float32(v - lse)
	}
	return row
}

// The device draws, step after step, the tokens Week 1's sampler draws with
// the same settings and seed from the same rows: every case in one launch of
// one row each, twenty steps, new logits every step, at a small vocabulary
// and at Qwen2's.
func TestSampleMatchesWeek1GPU(t *testing.T) {
	d := kerneltest.Open(t)
	for _, n := range []int{1000, 151936} {
		rows := len(sampleCases)
		s, err := New(d, rows)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		cpu := make([]*day7.Sampler, rows)
		for r, c := range sampleCases {
			if err := s.Set(r, c.p); err != nil {
				t.Fatal(err)
			}
			cpu[r] = day7.NewSampler(c.p.Temperature, c.p.TopP, c.p.TopK, c.p.Seed)
		}
		logits, err := d.Alloc(4 * rows * n)
		if err != nil {
			t.Fatal(err)
		}
		defer logits.Free()
		tokens, err := d.Alloc(4 * rows)
		if err != nil {
			t.Fatal(err)
		}
		defer tokens.Free()
		pos, err := kernels.Upload(d, []int32{5})
		if err != nil {
			t.Fatal(err)
		}
		defer pos.Free()
		rng := rand.New(rand.NewPCG(uint64(n), 99))
		const steps = 20
		for step := range steps {
			all := make([]float32, 0, rows*n)
			for _, c := range sampleCases {
				all = append(all, logitsRow(rng, n, 2.5, c.ties)...)
			}
			if err := kernels.Write(logits, 0, all); err != nil {
				t.Fatal(err)
			}
			if err := s.Launch(tokens, pos, 3, logits, rows, n); err != nil {
				t.Fatal(err)
			}
			got, err := kernels.Download[int32](tokens, rows)
			if err != nil {
				t.Fatal(err)
			}
			for r, c := range sampleCases {
				want := cpu[r].Sample(tensor.New(all[r*n:(r+1)*n], 1, n))
				if int(got[r]) != want {
					t.Errorf("vocabulary %d, %s, step %d: the device drew token %d, Week 1's sampler %d", n, c.name, step, got[r], want)
				}
			}
		}
		p, err := kernels.Download[int32](pos, 1)
		if err != nil {
			t.Fatal(err)
		}
		if p[0] != 5+3*steps {
			t.Errorf("vocabulary %d: the position is %d after %d launches that advance it by 3 from 5", n, p[0], steps)
		}
	}
}

// LaunchPicked draws for rows of logits in any order, each with the
// settings and stream of the sampler row it is given: three rows of logits
// drawn by sampler rows in another order, some rows left out of some steps,
// against one Week 1 sampler per sampler row.
func TestLaunchPickedGPU(t *testing.T) {
	d := kerneltest.Open(t)
	const n, rows = 5000, 4
	params := []Params{
		{Temperature: 0.8, TopP: 0.9, TopK: 40, Seed: 21},
		{Temperature: 1.1, TopP: 1, Seed: 22},
		{Temperature: 0.6, TopP: 0.7, Seed: 23},
		{Temperature: 1, TopP: 1, TopK: 5, Seed: 24},
	}
	s, err := New(d, rows)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cpu := make([]*day7.Sampler, rows)
	for r, p := range params {
		if err := s.Set(r, p); err != nil {
			t.Fatal(err)
		}
		cpu[r] = day7.NewSampler(p.Temperature, p.TopP, p.TopK, p.Seed)
	}
	logits, err := d.Alloc(4 * 3 * n)
	if err != nil {
		t.Fatal(err)
	}
	defer logits.Free()
	tokens, err := d.Alloc(4 * 3)
	if err != nil {
		t.Fatal(err)
	}
	defer tokens.Free()
	rng := rand.New(rand.NewPCG(5, 6))
	picks := [][2][]int{
		{{0, 1, 2}, {2, 0, 3}},
		{{2, 0}, {1, 3}},
		{{1}, {0}},
		{{0, 1, 2}, {3, 1, 2}},
	}
	for step := range 12 {
		pk := picks[step%len(picks)]
		var all []float32
		for range 3 {
			all = append(all, logitsRow(rng, n, 2, false)...)
		}
		if err := kernels.Write(logits, 0, all); err != nil {
			t.Fatal(err)
		}
		if err := kernels.Write(tokens, 0, []int32{-1, -1, -1}); err != nil {
			t.Fatal(err)
		}
		if err := s.LaunchPicked(tokens, logits, n, pk[0], pk[1]); err != nil {
			t.Fatal(err)
		}
		got, err := kernels.Download[int32](tokens, 3)
		if err != nil {
			t.Fatal(err)
		}
		drawn := map[int]bool{}
		for b, l := range pk[0] {
			drawn[l] = true
			want := cpu[pk[1][b]].Sample(tensor.New(all[l*n:(l+1)*n], 1, n))
			if int(got[l]) != want {
				t.Errorf("step %d: logits row %d with sampler row %d: the device drew %d, Week 1's sampler %d", step, l, pk[1][b], got[l], want)
			}
		}
		for l := range 3 {
			if !drawn[l] && got[l] != -1 {
				t.Errorf("step %d: logits row %d was not picked, but its token became %d", step, l, got[l])
			}
		}
	}
}

func TestLaunchRefusesBadShapesGPU(t *testing.T) {
	d := kerneltest.Open(t)
	s, err := New(d, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf, err := d.Alloc(4 * 100)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Free()
	for _, c := range []struct{ rows, n int }{{0, 10}, {3, 10}, {2, 0}, {2, 51}} {
		if err := s.Launch(buf, nil, 0, buf, c.rows, c.n); err == nil {
			t.Errorf("%d rows of %d logits in 400 bytes, sampler of 2 rows: accepted", c.rows, c.n)
		}
	}
	for _, c := range []struct{ lrow, prow []int }{{nil, nil}, {[]int{0}, []int{0, 1}}, {[]int{4}, []int{0}}, {[]int{-1}, []int{0}}, {[]int{0}, []int{2}}, {[]int{0, 1, 2}, []int{0, 1, 0}}} {
		if err := s.LaunchPicked(buf, buf, 25, c.lrow, c.prow); err == nil {
			t.Errorf("LaunchPicked of logits rows %v with sampler rows %v (4 rows of 25 in the buffer, sampler of 2 rows): accepted", c.lrow, c.prow)
		}
	}
	if err := s.Set(2, Params{}); err == nil {
		t.Error("Set of row 2 on a sampler of 2 rows: accepted")
	}
	if err := s.Set(0, Params{Temperature: -1}); err == nil {
		t.Error("a negative temperature: accepted")
	}
}

// BenchmarkSample times one draw over Qwen2's vocabulary with common
// settings, against the greedy path of the same kernel.
func BenchmarkSampleGPU(b *testing.B) {
	d := kerneltest.Open(b)
	const n = 151936
	for _, c := range []sampleCase{
		{"greedy", Params{}, false},
		{"T0.7-topk20-topp0.8", Params{Temperature: 0.7, TopP: 0.8, TopK: 20}, false},
		{"T1-topp0.9", Params{Temperature: 1, TopP: 0.9}, false},
		{"T1-all", Params{Temperature: 1, TopP: 1}, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := New(d, 1)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.Set(0, c.p); err != nil {
				b.Fatal(err)
			}
			row := logitsRow(rand.New(rand.NewPCG(1, 2)), n, 2.5, false)
			logits, err := kernels.Upload(d, row)
			if err != nil {
				b.Fatal(err)
			}
			defer logits.Free()
			tokens, err := d.Alloc(4)
			if err != nil {
				b.Fatal(err)
			}
			defer tokens.Free()
			kerneltest.TimeGPU(b, d, 4*n, func() error { return s.Launch(tokens, nil, 0, logits, 1, n) })
		})
	}
}
