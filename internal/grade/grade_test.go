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
