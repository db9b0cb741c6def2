package grade

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Option refines what a comparison reports when it fails.
type Option func(*options)

type options struct {
	headAxis int
	byHead   bool
	suspects []Suspect
}

// ByHead makes a failed comparison summarise its mismatches by the index
// along axis (negative counts from the end), as in "heads 1, 2 of 4 differ;
// 0, 3 match", before listing elements. It applies when the output has that
// axis.
func ByHead(axis int) Option {
	return func(o *options) { o.headAxis, o.byHead = axis, true }
}

// Suspect is a known mistake: Output computes, from the case's inputs, what
// code with that mistake returns, and Cause says what the mistake is. A
// suspect's output is only ever a diagnosis, never the expected value.
type Suspect struct {
	Cause  string
	Output func() *tensor.Tensor
}

// Suspects makes a failed comparison name a known mistake when the output
// matches what that mistake produces.
func Suspects(s ...Suspect) Option {
	return func(o *options) { o.suspects = append(o.suspects, s...) }
}

// AllClose fails the test with a report unless got matches want within tol:
// same shape, and every element within tolerance (NaN only where want is NaN,
// infinities only where want has the same infinity).
func AllClose(t *testing.T, what string, got, want *tensor.Tensor, tol Tol, opts ...Option) {
	t.Helper()
	if report := Compare(got, want, tol, opts...); report != "" {
		t.Fatalf("%s: output does not match the reference\n%s", what, report)
	}
}

// maxListed is how many mismatching elements a report lists.
const maxListed = 5

// Compare returns "" if got matches want within tol, or else a multi-line
// report: the likely cause if a suspect matches, shapes, tolerance, largest
// errors with their indices, which heads differ (with ByHead), and the first
// mismatching elements.
func Compare(got, want *tensor.Tensor, tol Tol, opts ...Option) string {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
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
		badHeads           map[int]bool
	)
	headAxis := -1
	if o.byHead && len(shape) > 0 {
		if a := o.headAxis; a >= -len(shape) && a < len(shape) {
			headAxis = (a + len(shape)) % len(shape)
			badHeads = map[int]bool{}
		}
	}
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
			if headAxis >= 0 {
				badHeads[unravel(i, shape)[headAxis]] = true
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
	if cause := diagnose(got, want, tol, o.suspects); cause != "" {
		fmt.Fprintf(&b, "    likely cause: %s\n", cause)
	}
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
	if headAxis >= 0 && shape[headAxis] > 1 {
		fmt.Fprintf(&b, "    %s\n", headSummary(badHeads, shape[headAxis]))
	}
	fmt.Fprintf(&b, "    %d of %d elements out of tolerance; first mismatches:\n", bad, len(w))
	b.WriteString(strings.Join(listed, "\n"))
	return b.String()
}

// headSummary says which of n heads hold mismatches: "heads 1, 2 of 4
// differ; 0, 3 match".
func headSummary(bad map[int]bool, n int) string {
	var differ, match []string
	for h := range n {
		if bad[h] {
			differ = append(differ, fmt.Sprint(h))
		} else {
			match = append(match, fmt.Sprint(h))
		}
	}
	switch {
	case len(match) == 0 && n == 2:
		return "both heads differ"
	case len(match) == 0:
		return fmt.Sprintf("all %d heads differ", n)
	case len(differ) == 1:
		return fmt.Sprintf("head %s of %d differs; %s match", differ[0], n, strings.Join(match, ", "))
	default:
		return fmt.Sprintf("heads %s of %d differ; %s match", strings.Join(differ, ", "), n, strings.Join(match, ", "))
	}
}

// suspectSlack widens the task's tolerance when matching a suspect: the
// suspect is computed by other code than the learner's, so the two round
// differently, and a wrong method is still far outside this.
const suspectSlack = 10

// diagnose returns the cause of the first suspect whose output got matches
// while want does not, or "".
func diagnose(got, want *tensor.Tensor, tol Tol, suspects []Suspect) string {
	loose := Tol{RTol: tol.RTol * suspectSlack, ATol: tol.ATol * suspectSlack}
	if loose == (Tol{}) {
		loose = Tol{ATol: 1e-6}
	}
	for _, s := range suspects {
		wrong := suspectOutput(s)
		if wrong == nil || Compare(wrong, want, tol) == "" {
			continue // the mistake does not show in this case
		}
		if Compare(got, wrong, loose) == "" {
			return s.Cause
		}
	}
	return ""
}

// suspectOutput runs a suspect, treating a panic (a mistake that cannot be
// made with these shapes) as no output.
func suspectOutput(s Suspect) (out *tensor.Tensor) {
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	return s.Output()
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

// Exact fails the test unless got equals want element for element, as for a
// mask or a gathered row, where nothing is rounded. Its report names each
// mismatch by value ("got -Inf where want 0"), with no error statistics.
func Exact(t *testing.T, what string, got, want *tensor.Tensor) {
	t.Helper()
	if report := CompareExact(got, want); report != "" {
		t.Fatalf("%s: output does not match the reference exactly\n%s", what, report)
	}
}

// maxPicture is the largest side of a 2-D result that CompareExact draws.
const maxPicture = 16

// CompareExact returns "" if got equals want (same shape; NaN matches NaN),
// or else a report: how many elements differ and how, the first of them,
// and, for a small 2-D result, both side by side.
func CompareExact(got, want *tensor.Tensor) string {
	if got == nil {
		return "    got a nil tensor"
	}
	if !slices.Equal(got.Shape(), want.Shape()) {
		return fmt.Sprintf("    shape      got %v, want %v", got.Shape(), want.Shape())
	}
	g, w := got.Data(), want.Data()
	shape := want.Shape()
	kinds := map[string]int{}
	var order, listed []string
	bad := 0
	for i := range w {
		if g[i] == w[i] || (isNaN(g[i]) && isNaN(w[i])) {
			continue
		}
		bad++
		kind := fmt.Sprintf("got %s where want %s", num(g[i]), num(w[i]))
		if kinds[kind] == 0 {
			order = append(order, kind)
		}
		kinds[kind]++
		if len(listed) < maxListed {
			listed = append(listed, fmt.Sprintf("      %v  %s", unravel(i, shape), kind))
		}
	}
	if bad == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "    shape      %v\n", shape)
	if len(order) <= 3 {
		var parts []string
		for _, k := range order {
			parts = append(parts, fmt.Sprintf("%d × %s", kinds[k], k))
		}
		fmt.Fprintf(&b, "    %d of %d elements differ: %s\n", bad, len(w), strings.Join(parts, "; "))
	} else {
		fmt.Fprintf(&b, "    %d of %d elements differ\n", bad, len(w))
	}
	b.WriteString("    first mismatches:\n")
	b.WriteString(strings.Join(listed, "\n"))
	if len(shape) == 2 && shape[0] <= maxPicture && shape[1] <= maxPicture {
		b.WriteString("\n" + picture(g, w, shape[0], shape[1]))
	}
	return b.String()
}

// picture draws got and want side by side, one row per line.
func picture(g, w []float32, rows, cols int) string {
	cell := func(v float32) string { return fmt.Sprintf("%5s", num(v)) }
	width := 5 * cols
	var b strings.Builder
	fmt.Fprintf(&b, "    %-*s    %s\n", width, "got", "want")
	for r := range rows {
		var left, right strings.Builder
		for c := range cols {
			left.WriteString(cell(g[r*cols+c]))
			right.WriteString(cell(w[r*cols+c]))
		}
		fmt.Fprintf(&b, "    %s    %s", left.String(), right.String())
		if r < rows-1 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// num prints a value the way the chapters write it: -Inf, 0, 0.25.
func num(v float32) string {
	switch {
	case math.IsInf(float64(v), -1):
		return "-Inf"
	case math.IsInf(float64(v), 1):
		return "+Inf"
	}
	return fmt.Sprintf("%.7g", v)
}

func isNaN(v float32) bool { return v != v }
