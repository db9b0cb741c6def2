package grade_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// The functions below stand in for a day's code: the tests make this file
// count as one (grade.TreatAsDayCode).

func dayIndexes(xs []int, i int) int { return xs[i] }

func dayCallsTensor() { tensor.Reshape(tensor.Zeros(6), 4, 2) }

func dayChecksItself(n int) {
	if n%2 != 0 {
		panic(fmt.Sprintf("dims must be even, got %d", n))
	}
}

func dayDoesNothing(int) {}

func dayIsAStub() { panic("TODO(W9D9): implement it") }

const thisFile = `^internal/grade/trace_test\.go$`

func TestPanicTraceShowsTheDaysFrameFirst(t *testing.T) {
	defer grade.TreatAsDayCode(thisFile)()
	r, text := grade.PanicTrace(func() { dayIndexes([]int{1, 2, 3}, 3) })
	if r == nil {
		t.Fatal("no panic")
	}
	lines := strings.Split(text, "\n")
	own := regexp.MustCompile(`^    in the day's code at internal/grade/trace_test\.go:\d+ \(grade_test\.dayIndexes\)$`)
	if !own.MatchString(lines[0]) {
		t.Errorf("first line does not name the day's frame:\n%s", text)
	}
	if strings.Contains(text, "runtime.") || strings.Contains(text, "testing.") || strings.Contains(text, "/internal/grade.") {
		t.Errorf("trace keeps runtime, testing or grader frames:\n%s", text)
	}
	if n := len(lines); n > 14 {
		t.Errorf("trace has %d lines; want a short one:\n%s", n, text)
	}
}

func TestPanicTraceThroughTheSubstrate(t *testing.T) {
	defer grade.TreatAsDayCode(thisFile)()
	_, text := grade.PanicTrace(dayCallsTensor)
	lines := strings.Split(text, "\n")
	if !strings.Contains(lines[0], "grade_test.dayCallsTensor") {
		t.Errorf("first line should name the day's frame, not the tensor op:\n%s", text)
	}
	if !strings.Contains(text, "internal/tensor/") {
		t.Errorf("the stack should still show where in the substrate it panicked:\n%s", text)
	}
}

func TestMisuseReport(t *testing.T) {
	defer grade.TreatAsDayCode(thisFile)()
	tests := []struct {
		name     string
		m        grade.Misuse
		stub     bool
		contains []string // empty: must pass
	}{
		{"own panic", grade.Misuse{What: "f(7)", Own: true, Mentions: []string{"7"}, Call: func() { dayChecksItself(7) }}, false, nil},
		{"no panic", grade.Misuse{What: "f(7)", Why: "odd", Call: func() { dayDoesNothing(7) }}, false,
			[]string{"f(7) did not panic", "odd"}},
		{"stub", grade.Misuse{What: "f(7)", Call: dayIsAStub}, true, []string{grade.NotImplemented, "TODO(W9D9)"}},
		{"runtime error", grade.Misuse{What: "f(7)", Call: func() { dayIndexes(nil, 7) }}, false,
			[]string{"runtime error", "index out of range", "in the day's code at internal/grade/trace_test.go"}},
		{"panic in the substrate", grade.Misuse{What: "f(7)", Own: true, Call: dayCallsTensor}, false,
			[]string{"panicked inside tensor.Reshape at internal/tensor/", "not in the day's own code"}},
		{"substrate allowed", grade.Misuse{What: "f(7)", Call: dayCallsTensor}, false, nil},
		{"message lacks a number", grade.Misuse{What: "f(7)", Mentions: []string{"7", "12"}, Call: func() { dayChecksItself(7) }}, false,
			[]string{`does not mention 12`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			report, stub := grade.MisuseReport("W9D9 Task 1", tc.m)
			if stub != tc.stub {
				t.Errorf("stub = %v, want %v", stub, tc.stub)
			}
			if len(tc.contains) == 0 && report != "" {
				t.Fatalf("want no report, got:\n%s", report)
			}
			for _, s := range tc.contains {
				if !strings.Contains(report, s) {
					t.Errorf("report lacks %q:\n%s", s, report)
				}
			}
		})
	}
}

func TestChapter(t *testing.T) {
	for task, want := range map[string]string{
		"W1D3 Task 2 CausalMask":    "book/src/week1-day3.md",
		"W1D7 Task 1 Sampler":       "book/src/week1-day7.md",
		"W1D7 Task 2 Axpby":         "book/src/week1-day7-kernel.md",
		"W2D1 Task 1 KVCache":       "book/src/week2-day1.md",
		"not a task of any chapter": "",
	} {
		if got := grade.Chapter(task); got != want {
			t.Errorf("Chapter(%q) = %q, want %q", task, got, want)
		}
	}
	if got, want := grade.Pointer("W1D3 Task 2 CausalMask"), "see book/src/week1-day3.md, section 'When a check fails'"; got != want {
		t.Errorf("Pointer = %q, want %q", got, want)
	}
}
