package apiparity

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/stub"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestLearnerAndSolutionAPIsMatch is the parity check of the course: every
// learner day has a solution with the same exported API, and vice versa.
func TestLearnerAndSolutionAPIsMatch(t *testing.T) {
	root := repoRoot(t)
	learnerDays, err := DayDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	solutionDays, err := DayDirs(filepath.Join(root, "solutions"))
	if err != nil {
		t.Fatal(err)
	}
	if len(learnerDays) == 0 {
		t.Fatal("no learner days found under", root)
	}
	if strings.Join(learnerDays, " ") != strings.Join(solutionDays, " ") {
		t.Fatalf("learner days %v and solution days %v differ", learnerDays, solutionDays)
	}
	for _, day := range learnerDays {
		learner, err := Extract(filepath.Join(root, day))
		if err != nil {
			t.Fatal(err)
		}
		solution, err := Extract(filepath.Join(root, "solutions", day))
		if err != nil {
			t.Fatal(err)
		}
		if len(solution) == 0 {
			t.Errorf("%s: the solution exports nothing", day)
		}
		for _, d := range Diff(learner, solution) {
			t.Errorf("%s: %s", day, d)
		}
	}
}

// TestStubsAndSolutions checks the markers: each learner day has at least one
// `// Your code here (WnDm).` with a matching TODO(WnDm) panic, and the
// solutions contain neither.
func TestStubsAndSolutions(t *testing.T) {
	root := repoRoot(t)
	days, err := DayDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	dayRe := regexp.MustCompile(`^week(\d)/day(\d)$`)
	for _, day := range days {
		m := dayRe.FindStringSubmatch(day)
		tag := "W" + m[1] + "D" + m[2]
		learner := readGo(t, filepath.Join(root, day))
		if !strings.Contains(learner, "// Your code here ("+tag+").") {
			t.Errorf("%s: no `// Your code here (%s).` marker", day, tag)
		}
		if !strings.Contains(learner, `panic("`+stub.Prefix+tag+`)`) {
			t.Errorf("%s: no panic(\"TODO(%s): …\") stub", day, tag)
		}
		if other := regexp.MustCompile(`TODO\((W\dD\d)\)`).FindAllStringSubmatch(learner, -1); other != nil {
			for _, o := range other {
				if o[1] != tag {
					t.Errorf("%s: stub panics with TODO(%s), want TODO(%s)", day, o[1], tag)
				}
			}
		}
		solution := readGo(t, filepath.Join(root, "solutions", day))
		if strings.Contains(solution, "Your code here") || strings.Contains(solution, `panic("TODO`) {
			t.Errorf("solutions/%s still holds a stub or a learner marker", day)
		}
	}
}

func readGo(t *testing.T, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	var b strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// TestDiffCatchesDrift proves the check can fail: a changed signature, a
// missing function, an extra exported field and a changed doc comment are
// each reported.
func TestDiffCatchesDrift(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "a.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	sol := write("sol", `package p
type T struct { A int; b string }
func F(x, y float32) float32 { return x }
func G() {}
func (t *T) M(a int) int { return a }
// H returns the sum of x and y.
func H(x, y int) int { return x + y }
`)
	same := write("same", `package p
type T struct { A int; c []byte }
func F(a float32, b float32) float32 { panic("TODO") }
func G() {}
func (t *T) M(z int) int { panic("TODO") }
// H returns the sum
// of x and y.
func H(x, y int) int { panic("TODO") }
`)
	drift := write("drift", `package p
type T struct { A int; B int }
func F(x float32, y float64) float32 { return x }
func (t T) M(a int) int { return a }
// H returns the product of x and y.
func H(x, y int) int { return x * y }
`)
	solAPI, err := Extract(sol)
	if err != nil {
		t.Fatal(err)
	}
	sameAPI, _ := Extract(same)
	if d := Diff(sameAPI, solAPI); len(d) != 0 {
		t.Errorf("equivalent APIs reported as different: %v", d)
	}
	driftAPI, _ := Extract(drift)
	got := strings.Join(Diff(driftAPI, solAPI), "\n")
	for _, want := range []string{"func F: learner has", "func G: in the solution, missing", "type T: learner has", "method (*T).M: in the solution", "method (T).M: in the learner", "func H: the doc comments differ"} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q; got:\n%s", want, got)
		}
	}
}
