package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 2, "usage: tinyllm"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"progress", "--week", "9"}, 2, "--week must be between 1 and 3"},
		{[]string{"progress", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"progress", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"help"}, 0, "progress"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("tinyllm %v: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
		if strings.Contains(stderr.String(), "goroutine ") {
			t.Errorf("tinyllm %v printed a stack trace:\n%s", tc.args, stderr.String())
		}
	}
}
