// Package grade holds what every day's checks share: turning a stub's panic into
// a readable failure, running a check over every fixture case of a task, and
// comparing tensors with a report a learner can act on.
//
// A day's checks are written once, in a package such as internal/grade/w1d1, as
// functions that take the day's functions as arguments. The learner tree and the
// solutions tree each wire their own functions in with a few lines of _test.go,
// so both trees are graded by the very same code.
package grade

import (
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/stub"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Tol is an elementwise tolerance: |got - want| <= ATol + RTol*|want|.
type Tol struct {
	RTol, ATol float64
}

// The course's tolerances for float32 compute (see the guide's setup chapter).
var (
	// Elementwise is for elementwise maps and reductions (softmax, norms, activations).
	Elementwise = Tol{RTol: 1e-5, ATol: 1e-6}
	// Products is for anything built on sums of products (linear layers,
	// attention): the summation order differs from the reference's.
	Products = Tol{RTol: 1e-5, ATol: 1e-5}
	// LogProbs is for whole-model log-probabilities against a float32 reference.
	LogProbs = Tol{RTol: 0, ATol: 1e-3}
)

func (t Tol) String() string {
	return fmt.Sprintf("|got-want| <= %.0e + %.0e*|want|", t.ATol, t.RTol)
}

// NotImplemented is the phrase the grader prints for a stub that still
// panics; `make progress` looks for it to tell "not started" from "failing".
const NotImplemented = stub.NotImplemented

// Run calls fn and turns a panic into a test failure with the task's name. A
// stub's TODO panic is reported in one line; any other panic gets its stack,
// since it is a bug to chase. It returns true if fn hit a TODO stub.
func Run(t *testing.T, task string, fn func()) (isStub bool) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		msg := fmt.Sprint(r)
		if stub.Is(r) {
			isStub = true
			t.Errorf("%s: %s: %s", task, NotImplemented, msg)
			return
		}
		t.Errorf("%s: panicked: %s\n%s", task, msg, debug.Stack())
	}()
	fn()
	return false
}

// Cases runs check once per fixture case of testdata/<day>/<fixtureTask>, each
// as a subtest named after the case. When the first case hits a TODO stub the
// rest are skipped over silently: one "not implemented yet" line is enough.
func Cases(t *testing.T, task, day, fixtureTask string, check func(t *testing.T, c *fixture.Case)) {
	t.Helper()
	cases, err := fixture.Load(day, fixtureTask)
	if err != nil {
		t.Fatalf("%s: %v", task, err)
	}
	for _, c := range cases {
		stub := false
		t.Run(c.Name, func(t *testing.T) {
			stub = Run(t, task+", case "+c.Name, func() { check(t, c) })
		})
		if stub {
			return
		}
	}
}

// MustTensor loads a fixture array or fails the test.
func MustTensor(t *testing.T, c *fixture.Case, name string) *tensor.Tensor {
	t.Helper()
	x, err := c.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// OptionalTensor loads a fixture array if the case has it, else returns nil.
func OptionalTensor(t *testing.T, c *fixture.Case, name string) *tensor.Tensor {
	t.Helper()
	if !c.Has(name) {
		return nil
	}
	return MustTensor(t, c, name)
}

// MustInt and MustFloat read a case parameter or fail the test.
func MustInt(t *testing.T, c *fixture.Case, name string) int {
	t.Helper()
	v, err := c.Int(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// MustFloat reads a numeric case parameter or fails the test.
func MustFloat(t *testing.T, c *fixture.Case, name string) float64 {
	t.Helper()
	v, err := c.Float(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// AllClose fails the test with a report unless got matches want within tol:
// same shape, and every element within tolerance (NaN only where want is NaN,
// infinities only where want has the same infinity).
func AllClose(t *testing.T, what string, got, want *tensor.Tensor, tol Tol) {
	t.Helper()
	if report := Compare(got, want, tol); report != "" {
		t.Fatalf("%s: output does not match the reference\n%s", what, report)
	}
}

// maxListed is how many mismatching elements a report lists.
const maxListed = 5

// Compare returns "" if got matches want within tol, or else a multi-line
// report: shapes, tolerance, largest errors with their indices, and the first
// mismatching elements.
func Compare(got, want *tensor.Tensor, tol Tol) string {
	if got == nil {
		return "    got a nil tensor"
	}
	if !slices.Equal(got.Shape(), want.Shape()) {
		return fmt.Sprintf("    shape      got %v, want %v", got.Shape(), want.Shape())
	}
	g, w := got.Data(), want.Data()
	shape := want.Shape()
	var (
		maxAbs, maxRel     float64
		maxAbsAt, maxRelAt = -1, -1
		bad, nonFinite     int
		listed             []string
	)
	for i := range w {
		gi, wi := float64(g[i]), float64(w[i])
		ok, diff := within(gi, wi, tol)
		if !math.IsNaN(diff) {
			if diff > maxAbs || maxAbsAt < 0 {
				maxAbs, maxAbsAt = diff, i
			}
			if wi != 0 {
				if rel := diff / math.Abs(wi); rel > maxRel || maxRelAt < 0 {
					maxRel, maxRelAt = rel, i
				}
			}
		}
		if !ok {
			bad++
			if math.IsNaN(gi) || math.IsInf(gi, 0) {
				nonFinite++
			}
			if len(listed) < maxListed {
				listed = append(listed, fmt.Sprintf("      %v  got %.7g  want %.7g", unravel(i, shape), gi, wi))
			}
		}
	}
	if bad == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "    shape      got %v, want %v\n", got.Shape(), shape)
	fmt.Fprintf(&b, "    tolerance  %s\n", tol)
	if nonFinite > 0 {
		fmt.Fprintf(&b, "    %d elements are NaN or Inf where the reference is not (overflow? 0/0?)\n", nonFinite)
	}
	if maxAbsAt >= 0 {
		fmt.Fprintf(&b, "    among finite elements: max abs error %.2e at %v", maxAbs, unravel(maxAbsAt, shape))
		if maxRelAt >= 0 {
			fmt.Fprintf(&b, "; max rel error %.2e at %v", maxRel, unravel(maxRelAt, shape))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "    %d of %d elements out of tolerance; first mismatches:\n", bad, len(w))
	b.WriteString(strings.Join(listed, "\n"))
	return b.String()
}

// within reports whether one element matches, and its absolute error (NaN
// when either side is NaN or infinite).
func within(g, w float64, tol Tol) (bool, float64) {
	switch {
	case math.IsNaN(w):
		return math.IsNaN(g), math.NaN()
	case math.IsInf(w, 0):
		return g == w, math.NaN()
	case math.IsNaN(g) || math.IsInf(g, 0):
		return false, math.NaN()
	}
	diff := math.Abs(g - w)
	return diff <= tol.ATol+tol.RTol*math.Abs(w), diff
}

func unravel(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d] = i % shape[d]
		i /= shape[d]
	}
	return idx
}
