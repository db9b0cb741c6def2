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
	"path/filepath"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/stub"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
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
// stub's TODO panic is reported in one line; any other panic names the first
// frame in the day's own code, then a short stack from the panic down to the
// check that made the call. It returns true if fn hit a TODO stub.
func Run(t *testing.T, task string, fn func()) (isStub bool) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if stub.Is(r) {
			isStub = true
			markStub(t)
			t.Errorf("%s: %s: %v", task, NotImplemented, r)
			return
		}
		t.Errorf("%s: panicked: %v\n%s", task, r, tracePanic().String())
	}()
	fn()
	return false
}

// Cases runs check once per fixture case of testdata/<day>/<fixtureTask>, each
// as a subtest named after the case. When the first case hits a TODO stub the
// rest are skipped over silently: one "not implemented yet" line is enough.
// It reports whether a stub was hit, so a check can skip what follows.
func Cases(t *testing.T, task, day, fixtureTask string, check func(t *testing.T, c *fixture.Case)) (isStub bool) {
	t.Helper()
	PointToChapter(t, task)
	cases, err := fixture.Load(day, fixtureTask)
	if err != nil {
		t.Fatalf("%s: %v", task, err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			isStub = Run(t, task+", case "+c.Name, func() { check(t, c) })
		})
		if isStub {
			return true
		}
	}
	return false
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

// MustInts reads a 1-D integer array of a case (token ids) or fails the test.
func MustInts(t *testing.T, c *fixture.Case, name string) []int {
	t.Helper()
	a, err := c.Array(name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.Ints()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// MustTokenRows reads a B x L integer array of a case (a batch of token
// sequences) or fails the test.
func MustTokenRows(t *testing.T, c *fixture.Case, name string) [][]int {
	t.Helper()
	a, err := c.Array(name)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := a.Ints()
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 2 {
		t.Fatalf("%s of case %s: shape %v, want B x L", name, c.Name, a.Shape)
	}
	out := make([][]int, a.Shape[0])
	for i := range out {
		out[i] = ids[i*a.Shape[1] : (i+1)*a.Shape[1]]
	}
	return out
}

// LogSoftmax turns logits into log-probabilities along the last axis,
// computed in float64 by the grader, independent of the learner's code.
func LogSoftmax(x *tensor.Tensor) *tensor.Tensor {
	data := x.Data()
	v := x.Dim(-1)
	out := make([]float32, len(data))
	for r := 0; r < len(data)/v; r++ {
		row := data[r*v : (r+1)*v]
		m := math.Inf(-1)
		for _, e := range row {
			m = math.Max(m, float64(e))
		}
		s := 0.0
		for _, e := range row {
			s += math.Exp(float64(e) - m)
		}
		lse := m + math.Log(s)
		for i, e := range row {
			out[r*v+i] = float32(float64(e) - lse)
		}
	}
	return tensor.New(out, x.Shape()...)
}

// MaxAbsDiff is the largest |a - b| over the elements, NaN if the sizes differ.
func MaxAbsDiff(a, b *tensor.Tensor) float64 {
	if a.Size() != b.Size() {
		return math.NaN()
	}
	m := 0.0
	for i, x := range a.Data() {
		m = math.Max(m, math.Abs(float64(x)-float64(b.Data()[i])))
	}
	return m
}

// MustMessages reads a case's "messages" parameter, a conversation as
// transformers' apply_chat_template takes it, or fails the test.
func MustMessages(t *testing.T, c *fixture.Case) []tokenizer.Message {
	t.Helper()
	raw, ok := c.Params["messages"].([]any)
	if !ok {
		t.Fatalf("case %s: no messages", c.Name)
	}
	var out []tokenizer.Message
	for _, r := range raw {
		m, _ := r.(map[string]any)
		role, _ := m["role"].(string)
		content, _ := m["content"].(string)
		out = append(out, tokenizer.Message{Role: role, Content: content})
	}
	return out
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

// OpenCheckpoint opens the model folder at rel, a path from the
// repository's root (a test checkpoint in testdata/, or a shipped model),
// and closes it when the test ends.
func OpenCheckpoint(t testing.TB, rel string) *checkpoint.Checkpoint {
	t.Helper()
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	return ck
}
