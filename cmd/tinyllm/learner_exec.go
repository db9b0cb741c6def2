package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// learnerLinked reports whether this binary was built with the learner's days
// (the build tag "learner").
func learnerLinked() bool {
	_, ok := impls["learner"]
	return ok
}

// wantsLearner reports whether a subcommand's arguments ask for --impl learner,
// in any of the spellings the flag package accepts.
func wantsLearner(args []string) bool {
	for i, a := range args {
		if a == "--" {
			return false
		}
		switch a {
		case "--impl=learner", "-impl=learner":
			return true
		case "--impl", "-impl":
			if i+1 < len(args) && args[i+1] == "learner" {
				return true
			}
		}
	}
	return false
}

// runLearnerBinary builds tinyllm with the learner's days linked in
// (go build -tags learner, into bin/ of the course repository, where Go's build
// cache makes a rebuild take a second) and runs it with the same arguments.
// When the learner tree does not compile, it says in one line which day does
// not build and why, instead of the compiler's whole output.
func runLearnerBinary(args []string, stdout, stderr io.Writer) (int, error) {
	root, err := courseRoot()
	if err != nil {
		return 0, fmt.Errorf("--impl learner builds your week1/ code, so run it inside the course repository: %w", err)
	}
	bin := filepath.Join(root, "bin", "tinyllm-learner")
	build := exec.Command("go", "build", "-tags", "learner", "-o", bin, "./cmd/tinyllm")
	build.Dir = root
	out, err := build.CombinedOutput()
	if err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return 0, fmt.Errorf("--impl learner needs the go command to build your code: %w", err)
		}
		return 0, learnerBuildError(out)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && exitErr.ExitCode() >= 0 {
			return exitErr.ExitCode(), nil
		}
		return 0, fmt.Errorf("running %s: %w", bin, err)
	}
	return 0, nil
}

// compilerLine matches a compiler message about a learner file:
// "week1/day3/attention.go:12:2: declared and not used: x".
var compilerLine = regexp.MustCompile(`^(?:\./)?(week\d+/day\d+)/[^:\s]+\.go:\d+(?::\d+)?: .*`)

// learnerBuildError turns the output of a failed build into one line that
// names the day that does not build and the compiler's first complaint.
func learnerBuildError(out []byte) error {
	var first string
	for _, line := range strings.Split(string(bytes.TrimSpace(out)), "\n") {
		line = strings.TrimSpace(line)
		if m := compilerLine.FindStringSubmatch(line); m != nil {
			return fmt.Errorf("your %s does not build: %s (make progress grades the other days; without --impl learner the reference runs)", m[1], line)
		}
		if first == "" && line != "" && !strings.HasPrefix(line, "#") {
			first = line
		}
	}
	return fmt.Errorf("your code does not build: %s", first)
}

// courseRoot is the root of the course repository the working directory is
// in: the nearest folder above it whose go.mod is this module's.
func courseRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if mod, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.HasPrefix(bytes.TrimSpace(mod), []byte("module github.com/tinyllm-go/tinyllm")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no course repository (go.mod of github.com/tinyllm-go/tinyllm) above the working directory")
		}
		dir = parent
	}
}
