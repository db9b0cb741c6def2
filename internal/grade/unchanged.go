package grade

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Tensors share memory: a function that writes into its argument's Data(),
// or into a Reshape of it, changes the caller's tensor too. In a model that
// tensor is often the residual stream, and the damage shows days later, far
// from its cause. So every check hands its inputs over through Unchanged or
// a Snapshot, which catches the write where it happens.

// Input is one named tensor handed to the code under test.
type Input struct {
	Name   string
	Tensor *tensor.Tensor
}

// In names an input for Unchanged and TakeSnapshot; a nil tensor is ignored.
func In(name string, t *tensor.Tensor) Input { return Input{Name: name, Tensor: t} }

// Snapshot is a bit-for-bit copy of a task's inputs, taken before the call.
type Snapshot struct {
	inputs []Input
	copies []*tensor.Tensor
}

// TakeSnapshot copies the inputs. Verify then says whether any changed.
func TakeSnapshot(inputs ...Input) *Snapshot {
	s := &Snapshot{}
	for _, in := range inputs {
		if in.Tensor == nil {
			continue
		}
		s.inputs = append(s.inputs, in)
		s.copies = append(s.copies, in.Tensor.Clone())
	}
	return s
}

// Changed returns, for the first input that differs from its copy in any
// bit, a sentence naming it and its first changed element; "" if none does.
func (s *Snapshot) Changed() string {
	for i, in := range s.inputs {
		if at, was, now, n := firstChange(s.copies[i], in.Tensor); at >= 0 {
			idx := unravel(at, in.Tensor.Shape())
			parts := make([]string, len(idx))
			for j, v := range idx {
				parts[j] = fmt.Sprint(v)
			}
			return fmt.Sprintf("modified its input %s (first changed element [%s]: was %s, now %s; %d of %d elements changed)",
				in.Name, strings.Join(parts, ","), num(was), num(now), n, in.Tensor.Size())
		}
	}
	return ""
}

// Verify fails the test (without stopping it) if an input changed.
func (s *Snapshot) Verify(t *testing.T, task string) {
	t.Helper()
	if msg := s.Changed(); msg != "" {
		t.Errorf("%s %s; build the result in a new tensor instead of writing into an argument (a Reshape of an argument shares its memory)", task, msg)
	}
}

// Unchanged calls f and fails the test if f wrote into any of the inputs,
// comparing every element bit for bit. It returns f's result.
func Unchanged[R any](t *testing.T, task string, f func() R, inputs ...Input) R {
	t.Helper()
	s := TakeSnapshot(inputs...)
	out := f()
	s.Verify(t, task)
	return out
}

// firstChange compares the bits of every element of before and after and
// returns the flat index of the first difference (-1 if none), the values
// there, and how many elements differ.
func firstChange(before, after *tensor.Tensor) (at int, was, now float32, n int) {
	at = -1
	if before.DType() != after.DType() || before.Size() != after.Size() {
		return 0, 0, 0, after.Size()
	}
	if before.DType() == tensor.Float32 {
		b, a := before.Data(), after.Data()
		for i := range b {
			if math.Float32bits(b[i]) != math.Float32bits(a[i]) {
				if at < 0 {
					at, was, now = i, b[i], a[i]
				}
				n++
			}
		}
		return at, was, now, n
	}
	b, a := before.Bits(), after.Bits()
	for i := range b {
		if b[i] != a[i] {
			if at < 0 {
				at = i
			}
			n++
		}
	}
	if at >= 0 {
		was, now = before.Data()[at], after.Data()[at]
	}
	return at, was, now, n
}
