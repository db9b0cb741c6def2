//go:build unix

package boundedfile

import (
	"path/filepath"
	"syscall"
	"testing"
)

// specialFiles are the cases that need Unix: a named pipe nobody writes to
// (opening it for reading blocks) and a link to /dev/zero (endless).
func specialFiles() []readCase {
	return []readCase{
		{"named pipe", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "config.json")
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, 16 << 20, "is a named pipe, not a regular file"},
		{"link to /dev/zero", func(t *testing.T, dir string) string {
			return symlink(t, "/dev/zero", filepath.Join(dir, "config.json"))
		}, 16 << 20, "is a character device, not a regular file"},
	}
}
