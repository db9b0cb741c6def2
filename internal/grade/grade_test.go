package grade

import (
	"math"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

func TestCompare(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	want := tensor.New([]float32{1, 2, 3, 4, nan, inf}, 2, 3)
	tests := []struct {
		name     string
		got      *tensor.Tensor
		tol      Tol
		contains []string // empty: must match
	}{
		{"identical", tensor.New([]float32{1, 2, 3, 4, nan, inf}, 2, 3), Elementwise, nil},
		{"within atol", tensor.New([]float32{1 + 5e-7, 2, 3, 4, nan, inf}, 2, 3), Elementwise, nil},
		{"within rtol", tensor.New([]float32{1, 2, 3, 4.00003, nan, inf}, 2, 3), Tol{RTol: 1e-5, ATol: 0}, nil},
		{"nil", nil, Elementwise, []string{"nil"}},
		{"shape", tensor.New([]float32{1, 2, 3, 4, nan, inf}, 3, 2), Elementwise, []string{"got [3 2], want [2 3]"}},
		{"one wrong", tensor.New([]float32{1, 2, 3.5, 4, nan, inf}, 2, 3), Elementwise,
			[]string{"1 of 6 elements", "[0 2]  got 3.5  want 3", "max abs error 5.00e-01 at [0 2]"}},
		{"NaN where finite", tensor.New([]float32{nan, 2, 3, 4, nan, inf}, 2, 3), Elementwise,
			[]string{"1 elements are NaN or Inf", "[0 0]  got NaN  want 1"}},
		{"finite where NaN", tensor.New([]float32{1, 2, 3, 4, 0, inf}, 2, 3), Elementwise, []string{"[1 1]  got 0  want NaN"}},
		{"wrong infinity", tensor.New([]float32{1, 2, 3, 4, nan, -inf}, 2, 3), Elementwise, []string{"[1 2]  got -Inf  want +Inf"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			report := Compare(tc.got, want, tc.tol)
			if len(tc.contains) == 0 {
				if report != "" {
					t.Fatalf("want a match, got report:\n%s", report)
				}
				return
			}
			for _, s := range tc.contains {
				if !strings.Contains(report, s) {
					t.Errorf("report lacks %q:\n%s", s, report)
				}
			}
		})
	}
}

func TestCompareListsAtMostFive(t *testing.T) {
	want := tensor.Zeros(100)
	report := Compare(tensor.Ones(100), want, Elementwise)
	if n := strings.Count(report, "got 1"); n != maxListed {
		t.Errorf("listed %d mismatches, want %d:\n%s", n, maxListed, report)
	}
	if !strings.Contains(report, "100 of 100") {
		t.Errorf("report does not count all mismatches:\n%s", report)
	}
}

func TestCompareByHead(t *testing.T) {
	// 4 heads x 2 positions x 3 features; heads 1 and 2 are off.
	want := tensor.Zeros(4, 2, 3)
	got := want.Clone()
	got.Data()[1*6+2] = 1
	got.Data()[2*6+4] = -1
	report := Compare(got, want, Products, ByHead(-3))
	if !strings.Contains(report, "heads 1, 2 of 4 differ; 0, 3 match") {
		t.Errorf("no head summary:\n%s", report)
	}
	if strings.Index(report, "heads 1, 2") > strings.Index(report, "first mismatches") {
		t.Errorf("the head summary should come before the element list:\n%s", report)
	}
	got.Data()[0] = 1
	got.Data()[3*6] = 1
	if report := Compare(got, want, Products, ByHead(-3)); !strings.Contains(report, "all 4 heads differ") {
		t.Errorf("want 'all 4 heads differ':\n%s", report)
	}
	if report := Compare(tensor.Ones(2, 3), tensor.Zeros(2, 3), Products, ByHead(-3)); strings.Contains(report, "head") {
		t.Errorf("a 2-D result has no head axis:\n%s", report)
	}
}

func TestCompareNamesSuspect(t *testing.T) {
	want := tensor.New([]float32{1, 2, 3, 4}, 4)
	doubled := func() *tensor.Tensor { return tensor.MulScalar(want, 2) }
	negated := func() *tensor.Tensor { return tensor.MulScalar(want, -1) }
	same := func() *tensor.Tensor { return want.Clone() }
	broken := func() *tensor.Tensor { panic("does not apply to these shapes") }
	suspects := Suspects(
		Suspect{Cause: "a mistake that changes nothing here", Output: same},
		Suspect{Cause: "a mistake that cannot be made here", Output: broken},
		Suspect{Cause: "negated", Output: negated},
		Suspect{Cause: "doubled", Output: doubled},
	)
	tests := []struct {
		name, cause string
		got         *tensor.Tensor
	}{
		{"doubled", "likely cause: doubled", tensor.New([]float32{2, 4, 6, 8}, 4)},
		{"doubled within the slack", "likely cause: doubled", tensor.New([]float32{2, 4, 6, 8.0001}, 4)},
		{"negated", "likely cause: negated", tensor.New([]float32{-1, -2, -3, -4}, 4)},
		{"something else", "", tensor.New([]float32{1, 2, 3, 5}, 4)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			report := Compare(tc.got, want, Products, suspects)
			if tc.cause == "" {
				if strings.Contains(report, "likely cause") {
					t.Errorf("names a cause that does not match:\n%s", report)
				}
				return
			}
			if !strings.HasPrefix(report, "    "+tc.cause+"\n") {
				t.Errorf("report does not start with %q:\n%s", tc.cause, report)
			}
		})
	}
}

func TestCompareExact(t *testing.T) {
	inf := float32(math.Inf(-1))
	want := tensor.New([]float32{0, inf, inf, 0, 0, inf}, 2, 3)
	if r := CompareExact(want.Clone(), want); r != "" {
		t.Fatalf("identical masks differ:\n%s", r)
	}
	got := tensor.New([]float32{0, 0, inf, 0, inf, inf}, 2, 3)
	report := CompareExact(got, want)
	for _, s := range []string{
		"2 of 6 elements differ: 1 × got 0 where want -Inf; 1 × got -Inf where want 0",
		"[0 1]  got 0 where want -Inf",
		"[1 1]  got -Inf where want 0",
		"    got                want\n",
		"        0    0 -Inf        0 -Inf -Inf\n",
	} {
		if !strings.Contains(report, s) {
			t.Errorf("report lacks %q:\n%s", s, report)
		}
	}
	for _, s := range []string{"tolerance", "error", "overflow", "NaN"} {
		if strings.Contains(report, s) {
			t.Errorf("an exact report should not mention %q:\n%s", s, report)
		}
	}
	if r := CompareExact(tensor.Zeros(3, 2), want); !strings.Contains(r, "got [3 2], want [2 3]") {
		t.Errorf("shape mismatch not reported:\n%s", r)
	}
}

func TestSnapshot(t *testing.T) {
	x := tensor.New([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	w := tensor.New([]float32{1, 2}, 2)
	bf := tensor.AsType(tensor.New([]float32{1, 2, 3}, 3), tensor.BFloat16)
	tests := []struct {
		name  string
		write func()
		want  string // "" for no change
	}{
		{"untouched", func() {}, ""},
		{"one element", func() { x.Data()[4] = 7 },
			"modified its input x (first changed element [1,1]: was 5, now 7; 1 of 6 elements changed)"},
		{"through a reshape", func() { tensor.Reshape(x, 6).Data()[0] = -1 }, "input x (first changed element [0,0]: was 1, now -1"},
		{"zero to minus zero", func() { z := x.Data(); z[0] = 0; z[0] = -z[0] }, "input x (first changed element [0,0]: was 1, now -0"},
		{"second input", func() { w.Data()[1] = 3 }, "modified its input w (first changed element [1]: was 2, now 3"},
		{"bfloat16 bits", func() { bf.Bits()[2] ^= 1 }, "modified its input bf (first changed element [2]: was 3,"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x = tensor.New([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
			w = tensor.New([]float32{1, 2}, 2)
			bf = tensor.AsType(tensor.New([]float32{1, 2, 3}, 3), tensor.BFloat16)
			s := TakeSnapshot(In("x", x), In("nothing", nil), In("w", w), In("bf", bf))
			tc.write()
			got := s.Changed()
			if tc.want == "" {
				if got != "" {
					t.Errorf("untouched inputs reported: %s", got)
				}
				return
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

func TestSnapshotSeesTheSignOfZero(t *testing.T) {
	x := tensor.New([]float32{0, 1}, 2)
	s := TakeSnapshot(In("x", x))
	x.Data()[0] = float32(math.Copysign(0, -1))
	if got := s.Changed(); !strings.Contains(got, "first changed element [0]: was 0, now -0") {
		t.Errorf("-0 written over 0 not caught: %q", got)
	}
}
