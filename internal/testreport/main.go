// Command testreport turns `go test -json` into the summary `make test`
// prints: one line per package, the full output of every failing test, and a
// closing list of the checks that did not run on this machine (skipped tests,
// with their reason), so a check that needs a GPU or a 1 GB checkpoint is
// named instead of passing silently.
//
//	go test -json ./... | go run ./internal/testreport
//
// It exits non-zero if any test or package failed or did not build.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	Elapsed    float64
	ImportPath string
}

func main() {
	os.Exit(report(os.Stdin, os.Stdout))
}

func report(in io.Reader, out io.Writer) int {
	// Output lines in arrival order, per package and top-level test (subtests
	// included), so a failure prints as `go test` would have printed it.
	outputs := map[string][]string{}
	var skipped []string
	failed := false
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil {
			fmt.Fprintln(out, string(line)) // not JSON: pass it through
			continue
		}
		top, _, _ := strings.Cut(e.Test, "/")
		key := e.Package + "\x00" + top
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
		case "build-fail":
			failed = true
		case "output":
			// The framework's "=== RUN" lines only say which test ran;
			// plain `go test` leaves them out of a failure, and so does this.
			if !strings.HasPrefix(e.Output, "=== ") {
				outputs[key] = append(outputs[key], e.Output)
			}
		case "skip":
			if e.Test != "" {
				skipped = append(skipped, fmt.Sprintf("%s %s: %s", short(e.Package), e.Test, reason(outputs[key])))
			}
		case "fail":
			failed = true
			if e.Test != "" && e.Test == top {
				fmt.Fprint(out, strings.Join(outputs[key], ""))
			}
			if e.Test == "" {
				fmt.Fprintf(out, "FAIL\t%s\t%.2fs\n", e.Package, e.Elapsed)
			}
		case "pass":
			if e.Test == "" {
				fmt.Fprintf(out, "ok  \t%s\t%.2fs\n", e.Package, e.Elapsed)
			}
		}
	}
	if len(skipped) > 0 {
		sort.Strings(skipped)
		fmt.Fprintf(out, "\nNot run on this machine (%d):\n", len(skipped))
		for _, s := range skipped {
			fmt.Fprintln(out, "  "+s)
		}
	}
	if failed {
		fmt.Fprintln(out, "\nFAIL")
		return 1
	}
	fmt.Fprintln(out, "\nPASS")
	return 0
}

// reason is the message a test gave to t.Skip: the last output line that is
// not the framework's own "=== RUN" or "--- SKIP" line.
func reason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "===") || strings.HasPrefix(l, "---") {
			continue
		}
		if _, msg, ok := strings.Cut(l, ": "); ok && strings.Contains(l[:len(l)-len(msg)], ".go:") {
			return msg
		}
		return l
	}
	return "skipped"
}

func short(pkg string) string {
	return strings.TrimPrefix(pkg, "github.com/tinyllm-go/tinyllm/")
}
