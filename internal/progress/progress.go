// Package progress grades every day of the learner tree and summarises the
// result as a table: which days pass, which fail, which are not started.
package progress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/tinyllm-go/tinyllm/internal/stub"
)

// The course plan: three weeks of seven days.
const (
	Weeks       = 3
	DaysPerWeek = 7
)

// State is what `make progress` says about one day.
type State string

// The states a day can be in.
const (
	Passed      State = "passed"
	PassedHere  State = "passed what ran" // every check that ran passed; some cannot run here (a GPU)
	NotRunHere  State = "not run here"    // no task's check could run on this machine
	Failing     State = "failing"
	NotStarted  State = "not started"
	NoBuild     State = "does not build"
	NotInCourse State = "not in course yet"
)

// Day is the result of grading one learner day.
type Day struct {
	Name          string // "W1D1"
	Dir           string // "week1/day1"
	State         State
	Passed, Total int    // top-level tests (one per task); one that did not run counts in Total only
	Detail        string // first compiler error, the failing tasks, or the checks not run
}

// event is one line of `go test -json`.
type event struct {
	Action string
	Test   string
	Output string
}

// Grade runs the tests of one learner day under root and classifies them.
func Grade(root string, week, day int) Day {
	d := Day{Name: fmt.Sprintf("W%dD%d", week, day), Dir: fmt.Sprintf("week%d/day%d", week, day)}
	if _, err := os.Stat(filepath.Join(root, d.Dir)); err != nil {
		d.State = NotInCourse
		return d
	}
	cmd := exec.Command("go", "test", "-count=1", "-json", "./"+d.Dir)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, _ := cmd.Output() // a failing test exits non-zero; the events tell why
	classify(&d, bytes.NewReader(out), stderr.String())
	return d
}

// classify fills in d from the JSON events of `go test -json` and its stderr.
func classify(d *Day, events io.Reader, stderr string) {
	result := map[string]string{} // top-level test -> pass/fail/skip
	stubbed := map[string]bool{}  // top-level test hit a TODO stub
	partial := map[string]bool{}  // top-level test with a subtest that did not run
	var order, buildErrs []string
	sc := bufio.NewScanner(events)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if e.Action == "build-output" {
			buildErrs = append(buildErrs, strings.TrimSpace(e.Output))
		}
		if e.Test == "" {
			continue
		}
		top, _, _ := strings.Cut(e.Test, "/")
		switch e.Action {
		case "output":
			if strings.Contains(e.Output, stub.NotImplemented) {
				stubbed[top] = true
			}
		case "skip":
			if top != e.Test {
				partial[top] = true
				break
			}
			fallthrough
		case "pass", "fail":
			if top == e.Test {
				if _, seen := result[top]; !seen {
					order = append(order, top)
				}
				result[top] = e.Action
			}
		}
	}
	if len(result) == 0 {
		d.State = NoBuild
		d.Detail = firstLine(append(buildErrs, strings.TrimSpace(stderr))...)
		// A day that imports an earlier day fails with that day's error:
		// say so, or the learner hunts for it in the wrong folder.
		if other := dayOf(d.Detail); d.Dir != "" && other != "" && other != d.Dir {
			d.Detail = "needs " + other + ", which does not build: " + d.Detail
		}
		return
	}
	var failing, notRun []string
	allStubs, taskPassed := true, false
	for _, name := range order {
		d.Total++
		if result[name] == "skip" {
			// A GPU check on a machine without one: not a pass, and not
			// progress either way.
			notRun = append(notRun, taskName(name))
			continue
		}
		if result[name] == "pass" && partial[name] {
			notRun = append(notRun, taskName(name)+" (in part)")
		}
		if result[name] == "pass" {
			d.Passed++
			// A check of provided code (W2D4's kernel dispatcher, say)
			// passes on an untouched day; only a task passing is progress.
			if strings.Contains(name, "Task") {
				allStubs, taskPassed = false, true
			}
			continue
		}
		failing = append(failing, taskName(name))
		if !stubbed[name] {
			allStubs = false
		}
	}
	switch {
	case d.Passed == d.Total && len(notRun) == 0:
		d.State = Passed
	case len(failing) == 0:
		d.State = PassedHere
		if !taskPassed {
			d.State = NotRunHere
		}
		d.Detail = "not run on this machine: " + strings.Join(notRun, ", ")
	case allStubs:
		d.State = NotStarted
	default:
		d.State = Failing
		d.Detail = "failing: " + strings.Join(failing, ", ")
	}
}

// dayOf returns the day folder ("week1/day3") a compiler line points into, or "".
func dayOf(line string) string {
	parts := strings.SplitN(strings.TrimPrefix(line, "./"), "/", 3)
	if len(parts) == 3 && strings.HasPrefix(parts[0], "week") && strings.HasPrefix(parts[1], "day") {
		return parts[0] + "/" + parts[1]
	}
	return ""
}

// taskName shortens TestW1D1Task2Linear to Task2Linear.
func taskName(test string) string {
	if i := strings.Index(test, "Task"); i >= 0 {
		return test[i:]
	}
	return strings.TrimPrefix(test, "Test")
}

func firstLine(texts ...string) string {
	for _, t := range texts {
		for _, line := range strings.Split(t, "\n") {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				return line
			}
		}
	}
	return ""
}

// Table renders days as an aligned text table.
func Table(days []Day) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-5s  %-11s  %-17s  %-6s  %s\n", "day", "folder", "state", "tasks", "detail")
	for _, d := range days {
		tasks := ""
		if d.Total > 0 {
			tasks = fmt.Sprintf("%d/%d", d.Passed, d.Total)
		}
		fmt.Fprintf(&b, "%-5s  %-11s  %-17s  %-6s  %s\n", d.Name, d.Dir, d.State, tasks, d.Detail)
	}
	return b.String()
}
