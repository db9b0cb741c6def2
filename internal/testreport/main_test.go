package main

import (
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestGPU","Output":"    gpu_test.go:9: not run: no GPU device\n"}`,
		`{"Action":"output","Package":"p","Test":"TestGPU","Output":"--- SKIP: TestGPU (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestGPU"}`,
		`{"Action":"output","Package":"p","Test":"TestB/case1","Output":"=== RUN   TestB/case1\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB/case1","Output":"    b.go:3: wrong answer\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestB/case1"}`,
		`{"Action":"fail","Package":"p","Test":"TestB"}`,
		`{"Action":"fail","Package":"p","Elapsed":0.5}`,
		`{"Action":"pass","Package":"q","Elapsed":0.1}`,
	}, "\n")
	var out strings.Builder
	code := report(strings.NewReader(in), &out)
	got := out.String()
	if code != 1 {
		t.Errorf("exit %d, want 1 for a failing package", code)
	}
	for _, want := range []string{"wrong answer", "FAIL\tp\t0.50s", "ok  \tq", "Not run on this machine (1):", "p TestGPU: not run: no GPU device"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "=== RUN   TestA") {
		t.Errorf("output of a passing test was printed:\n%s", got)
	}
	if strings.Contains(got, "=== RUN") {
		t.Errorf("the framework's === lines were printed with a failure:\n%s", got)
	}

	out.Reset()
	if code := report(strings.NewReader(`{"Action":"pass","Package":"q"}`), &out); code != 0 {
		t.Errorf("exit %d for a passing run:\n%s", code, out.String())
	}
}
