package grade

import (
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
)

// A panic's full stack is mostly the runtime and the grader; what a learner
// needs is the line of their own code where it went wrong and the few calls
// around it. tracePanic keeps those.

// frame is one call in a trimmed stack.
type frame struct {
	File string // relative to the repository root where possible
	Line int
	Func string // qualified by the package's last element: day2.(*RoPE).Forward
}

func (f frame) String() string { return fmt.Sprintf("%s:%d", f.File, f.Line) }

// trace is where a panic came from: the frames from the panic site (first)
// down to the check that called the day's code (last).
type trace struct {
	Frames  []frame
	Omitted int // frames left out of the middle of a very deep stack
}

// maxFrames is how many frames a trimmed stack shows.
const maxFrames = 10

// modulePath is the module's import path, stripped from function names.
const modulePath = "github.com/tinyllm-go/tinyllm/"

// gradePackage is this package's path: its frames are where the stack stops.
const gradePackage = modulePath + "internal/grade."

// dayCode matches a source file of a day package, learner or reference, but
// not its tests.
var dayCode = regexp.MustCompile(`^(solutions/)?week\d+/day\d+/[^/]+\.go$`)

// catch calls fn and returns what it panicked with, if it did, and where.
func catch(fn func()) (recovered any, tr trace, panicked bool) {
	defer func() {
		if recovered = recover(); recovered != nil {
			panicked = true
			tr = tracePanic()
		}
	}()
	fn()
	return nil, trace{}, false
}

// tracePanic must be called from the deferred function that recovered the
// panic: the panicking frames are still on the stack then, above
// runtime.gopanic.
func tracePanic() trace {
	pcs := make([]uintptr, 128)
	n := runtime.Callers(1, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	var (
		tr          trace
		pastPanic   bool
		all         []frame
		sawGradeRun bool
	)
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			pastPanic = true
		case !pastPanic, strings.HasPrefix(f.Function, "runtime."):
			// The recovering function above the panic, and runtime helpers
			// such as panicIndex or sigpanic below it.
		case strings.HasPrefix(f.Function, gradePackage):
			// Back in the grader (Run, Cases): the calls below are the
			// test framework.
			sawGradeRun = true
		default:
			if !sawGradeRun {
				all = append(all, frame{File: relPath(f.File), Line: f.Line, Func: shortFunc(f.Function)})
			}
		}
		if !more || sawGradeRun {
			break
		}
	}
	if len(all) > maxFrames {
		// Keep the panic site and the calls nearest the check.
		keepTop, keepBottom := maxFrames-3, 3
		tr.Omitted = len(all) - keepTop - keepBottom
		all = append(all[:keepTop:keepTop], all[len(all)-keepBottom:]...)
	}
	tr.Frames = all
	return tr
}

// Own returns the frame nearest the panic that is in a day's own source, or
// false if the panic did not pass through one.
func (tr trace) Own() (frame, bool) {
	for _, f := range tr.Frames {
		if dayCode.MatchString(f.File) {
			return f, true
		}
	}
	return frame{}, false
}

// Site returns the frame where the panic was raised.
func (tr trace) Site() (frame, bool) {
	if len(tr.Frames) == 0 {
		return frame{}, false
	}
	return tr.Frames[0], true
}

// String renders the trace as indented lines: the day's own frame, then
// the trimmed stack.
func (tr trace) String() string {
	var b strings.Builder
	if own, ok := tr.Own(); ok {
		fmt.Fprintf(&b, "    in the day's code at %s (%s)\n", own, own.Func)
	}
	if len(tr.Frames) == 0 {
		return strings.TrimRight(b.String(), "\n")
	}
	b.WriteString("    stack, innermost call first:\n")
	width := 0
	for _, f := range tr.Frames {
		width = max(width, len(f.String()))
	}
	for i, f := range tr.Frames {
		if tr.Omitted > 0 && i == maxFrames-3 {
			fmt.Fprintf(&b, "      … %d more\n", tr.Omitted)
		}
		fmt.Fprintf(&b, "      %-*s  %s\n", width, f, f.Func)
	}
	return strings.TrimRight(b.String(), "\n")
}

// repoRoot is the repository root as the compiler saw it, derived from this
// file's own path; "" when the build trimmed paths.
var repoRoot = func() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}()

// relPath shortens a source path to one relative to the repository root:
// from an absolute path, or from a module path under -trimpath.
func relPath(file string) string {
	file = filepath.ToSlash(file)
	if root := filepath.ToSlash(repoRoot); root != "" && strings.HasPrefix(file, root+"/") {
		return strings.TrimPrefix(file, root+"/")
	}
	if rest, ok := strings.CutPrefix(file, modulePath); ok {
		return rest
	}
	return file
}

// shortFunc drops the import path before a function's package name:
// github.com/x/week1/day2.(*RoPE).Forward becomes day2.(*RoPE).Forward.
func shortFunc(name string) string {
	head := name
	if i := strings.IndexAny(name, "[("); i >= 0 {
		head = name[:i]
	}
	return name[strings.LastIndex(head, "/")+1:]
}
