//go:build unix

package tokenizer

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// specialFiles put a named pipe (opening it blocks until a writer comes) and
// a link to /dev/zero (endless) in place of the tokenizer's files.
func specialFiles() []limitCase {
	fifo := func(name string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, name)
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	zero := func(name string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, name)
			os.Remove(p)
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}
	}
	return []limitCase{
		{"tokenizer.json is a named pipe", fifo("tokenizer.json"), "tokenizer.json is a named pipe, not a regular file"},
		{"tokenizer.json is /dev/zero", zero("tokenizer.json"), "tokenizer.json is a character device, not a regular file"},
		{"tokenizer_config.json is a named pipe", fifo("tokenizer_config.json"), "tokenizer_config.json is a named pipe, not a regular file"},
		{"tokenizer_config.json is /dev/zero", zero("tokenizer_config.json"), "tokenizer_config.json is a character device, not a regular file"},
	}
}
