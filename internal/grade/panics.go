package grade

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/stub"
)

// Misuse is a call the chapter says must panic: a caller's bug that the
// day's code has to refuse loudly instead of computing something wrong.
type Misuse struct {
	Name string // the subtest's name, e.g. "odd_dims"
	What string // the call, as the report names it: "NewRoPE(7, 8, 10000, false)"
	Why  string // what the chapter asks: "Dims must be even"
	Call func()
	// Own requires the panic to be raised by the day's own code, not by a
	// tensor operation it called that happened to fail on the bad shapes.
	Own bool
	// Mentions are strings the message must contain, where the chapter
	// says what the message names (for instance both head counts).
	Mentions []string
}

// Misuses runs each misuse as a subtest and fails unless it panics as the
// chapter asks: with a message of its own, not a TODO stub and not a
// runtime error such as an index out of range. It reports whether one hit
// a TODO stub (then the rest are skipped).
func Misuses(t *testing.T, task string, misuses ...Misuse) (isStub bool) {
	t.Helper()
	PointToChapter(t, task)
	for _, m := range misuses {
		t.Run(m.Name, func(t *testing.T) {
			isStub = expectPanic(t, task, m)
		})
		if isStub {
			return true
		}
	}
	return false
}

func expectPanic(t *testing.T, task string, m Misuse) (isStub bool) {
	t.Helper()
	report, isStub := misuseReport(task, m)
	if isStub {
		markStub(t)
	}
	if report != "" {
		t.Error(report)
	}
	return isStub
}

// misuseReport calls m and returns "" if it panicked as asked, or else what
// is wrong, and whether it hit a TODO stub.
func misuseReport(task string, m Misuse) (report string, isStub bool) {
	what := fmt.Sprintf("%s: %s", task, m.What)
	recovered, tr, panicked := catch(m.Call)
	switch {
	case !panicked:
		return fmt.Sprintf("%s did not panic. The chapter asks for a panic here: %s.", what, m.Why), false
	case stub.Is(recovered):
		return fmt.Sprintf("%s: %s: %v", what, NotImplemented, recovered), true
	}
	msg := fmt.Sprint(recovered)
	if _, isRuntime := recovered.(runtime.Error); isRuntime {
		return fmt.Sprintf("%s panicked with a runtime error (%s), not a message of its own. The chapter asks: %s; check the arguments first and panic saying what is wrong.\n%s",
			what, msg, m.Why, tr), false
	}
	if m.Own {
		if site, ok := tr.Site(); ok && !dayCode.MatchString(site.File) {
			return fmt.Sprintf("%s panicked inside %s at %s (%s), not in the day's own code. The chapter asks: %s; check the arguments before using them.\n%s",
				what, site.Func, site, msg, m.Why, tr), false
		}
	}
	var missing []string
	for _, s := range m.Mentions {
		if !strings.Contains(msg, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("%s panicked with %q, which does not mention %s. The chapter asks: %s.",
			what, msg, strings.Join(missing, " and "), m.Why), false
	}
	return "", false
}
