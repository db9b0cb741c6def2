package progress

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ev builds one `go test -json` line.
func ev(action, test, output string) string {
	return `{"Action":"` + action + `","Test":"` + test + `","Output":` + quote(output) + "}\n"
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestClassify(t *testing.T) {
	stubMsg := "    grade.go:40: W1D1 Task 1 Softmax: not implemented yet: TODO(W1D1): implement Softmax\n"
	tests := []struct {
		name   string
		events string
		stderr string
		state  State
		passed int
		total  int
		detail string
	}{
		{
			name:   "all pass",
			events: ev("pass", "TestW1D1Task1Softmax/case", "") + ev("pass", "TestW1D1Task1Softmax", "") + ev("pass", "TestW1D1Task2Linear", ""),
			state:  Passed, passed: 2, total: 2,
		},
		{
			name: "all stubs",
			events: ev("output", "TestW1D1Task1Softmax/no_batch", stubMsg) + ev("fail", "TestW1D1Task1Softmax/no_batch", "") +
				ev("fail", "TestW1D1Task1Softmax", "") +
				ev("output", "TestW1D1Task2Linear/no_batch", strings.ReplaceAll(stubMsg, "Softmax", "Linear")) +
				ev("fail", "TestW1D1Task2Linear", ""),
			state: NotStarted, passed: 0, total: 2,
		},
		{
			name: "checks of provided code pass, every task a stub",
			events: ev("pass", "TestW2D4Sources", "") + ev("pass", "TestW2D4Pick", "") +
				ev("output", "TestW2D4Task1RefusesBadShapes", stubMsg) + ev("fail", "TestW2D4Task1RefusesBadShapes", ""),
			state: NotStarted, passed: 2, total: 3,
		},
		{
			name: "one task done, one wrong, one stub",
			events: ev("pass", "TestW1D1Task1Softmax", "") +
				ev("output", "TestW1D1Task2Linear/batch2", "output does not match the reference\n") + ev("fail", "TestW1D1Task2Linear", "") +
				ev("output", "TestW1D1Task3ScaledDotProductAttention/x", stubMsg) + ev("fail", "TestW1D1Task3ScaledDotProductAttention", ""),
			state: Failing, passed: 1, total: 3,
			detail: "failing: Task2Linear, Task3ScaledDotProductAttention",
		},
		{
			name:   "wrong but no stub",
			events: ev("output", "TestW1D1Task1Softmax", "mismatch\n") + ev("fail", "TestW1D1Task1Softmax", ""),
			state:  Failing, passed: 0, total: 1, detail: "failing: Task1Softmax",
		},
		{
			name: "every check that ran passed, a GPU task skipped",
			events: ev("pass", "TestW1D7Task1SamplerGreedy", "") +
				ev("output", "TestW1D7Task2AxpbyGPU", "    axpby_test.go:20: not run: no GPU device\n") + ev("skip", "TestW1D7Task2AxpbyGPU", ""),
			state: PassedHere, passed: 1, total: 2, detail: "not run on this machine: Task2AxpbyGPU",
		},
		{
			name: "a task whose GPU cases were skipped",
			events: ev("pass", "TestW2D4Task1Rungs/cpu", "") + ev("skip", "TestW2D4Task1Rungs/gpu", "") +
				ev("pass", "TestW2D4Task1Rungs", "") + ev("pass", "TestW2D4Task2Pick", ""),
			state: PassedHere, passed: 2, total: 2, detail: "not run on this machine: Task1Rungs (in part)",
		},
		{
			name:   "only provided code ran, the tasks need a GPU",
			events: ev("pass", "TestW2D4Sources", "") + ev("skip", "TestW2D4Task1GPU", ""),
			state:  NotRunHere, passed: 1, total: 2, detail: "not run on this machine: Task1GPU",
		},
		{
			name: "a GPU task skipped does not hide a failing one",
			events: ev("skip", "TestW1D7Task2AxpbyGPU", "") +
				ev("output", "TestW1D7Task1SamplerGreedy", "mismatch\n") + ev("fail", "TestW1D7Task1SamplerGreedy", ""),
			state: Failing, passed: 0, total: 2, detail: "failing: Task1SamplerGreedy",
		},
		{
			name:   "build failure",
			events: `{"ImportPath":"x","Action":"build-output","Output":"# x\n"}` + "\n" + `{"ImportPath":"x","Action":"build-output","Output":"week1/day1/attention.go:12:2: undefined: foo\n"}` + "\n",
			state:  NoBuild, detail: "week1/day1/attention.go:12:2: undefined: foo",
		},
		{
			name:   "build failure on stderr only",
			stderr: "# github.com/x/week1/day1\nweek1/day1/attention.go:3:1: syntax error\n",
			state:  NoBuild, detail: "week1/day1/attention.go:3:1: syntax error",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d Day
			classify(&d, strings.NewReader(tc.events), tc.stderr)
			if d.State != tc.state || d.Passed != tc.passed || d.Total != tc.total || d.Detail != tc.detail {
				t.Errorf("got state %q %d/%d detail %q; want %q %d/%d detail %q",
					d.State, d.Passed, d.Total, d.Detail, tc.state, tc.passed, tc.total, tc.detail)
			}
		})
	}
}

func TestTableShowsEveryDay(t *testing.T) {
	table := Table([]Day{
		{Name: "W1D1", Dir: "week1/day1", State: Failing, Passed: 1, Total: 4, Detail: "failing: Task2Linear"},
		{Name: "W1D2", Dir: "week1/day2", State: NotInCourse},
	})
	for _, want := range []string{"W1D1", "week1/day1", "failing", "1/4", "Task2Linear", "W1D2", "not in course yet"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

// TestGradeRealGoTest grades a throwaway module with the real go command: a
// day whose file does not compile shows as "does not build" with the
// compiler's file:line message, a day that imports it says which day to fix,
// and a day beside them is still graded.
func TestGradeRealGoTest(t *testing.T) {
	root := t.TempDir()
	write := func(path, text string) {
		t.Helper()
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/course\n\ngo 1.22\n")
	write("week1/day1/a.go", "package day1\n\nimport \"os\"\n\nfunc One() int { return 1 }\n")
	write("week1/day1/a_test.go", "package day1\n\nimport \"testing\"\n\nfunc TestW1D1Task1One(t *testing.T) {}\n")
	write("week1/day2/b.go", "package day2\n\nimport \"example.com/course/week1/day1\"\n\nfunc Two() int { return 2 * day1.One() }\n")
	write("week1/day2/b_test.go", "package day2\n\nimport \"testing\"\n\nfunc TestW1D2Task1Two(t *testing.T) {}\n")
	write("week1/day3/c.go", "package day3\n\nfunc Three() int { return 3 }\n")
	write("week1/day3/c_test.go", "package day3\n\nimport \"testing\"\n\nfunc TestW1D3Task1Three(t *testing.T) {\n\tif Three() != 3 {\n\t\tt.Fatal(\"wrong\")\n\t}\n}\n")

	want := []struct {
		state  State
		detail string
	}{
		{NoBuild, `week1/day1/a.go:3:8: "os" imported and not used`},
		{NoBuild, `needs week1/day1, which does not build: week1/day1/a.go:3:8: "os" imported and not used`},
		{Passed, ""},
	}
	for i, w := range want {
		d := Grade(root, 1, i+1)
		if d.State != w.state || d.Detail != w.detail {
			t.Errorf("%s: state %q detail %q; want %q detail %q", d.Name, d.State, d.Detail, w.state, w.detail)
		}
	}
}
