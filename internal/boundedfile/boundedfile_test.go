package boundedfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// within runs f and fails the test if it has not returned after a few
// seconds: a read that blocks is the bug some cases look for.
func within(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("still blocked after 10s")
	}
}

// readCase is one file for Read: setup makes it in dir and returns its path.
type readCase struct {
	name  string
	setup func(t *testing.T, dir string) string
	limit int64
	want  string // a part of the error; "" for success
}

func TestRead(t *testing.T) {
	tests := []readCase{
		{"small file", func(t *testing.T, dir string) string {
			return writeFile(t, dir, "a.json", []byte(`{"a": 1}`))
		}, 16, ""},
		{"exactly the limit", func(t *testing.T, dir string) string {
			return writeFile(t, dir, "a.json", bytes.Repeat([]byte("x"), 16))
		}, 16, ""},
		{"one byte over", func(t *testing.T, dir string) string {
			return writeFile(t, dir, "a.json", bytes.Repeat([]byte("x"), 17))
		}, 16, "larger than its limit of 16 bytes"},
		{"sparse file over the limit", func(t *testing.T, dir string) string {
			p := writeFile(t, dir, "big.json", nil)
			if err := os.Truncate(p, 1<<40); err != nil {
				t.Fatal(err)
			}
			return p
		}, 16 << 20, "larger than its limit of 16 MiB"},
		{"missing", func(t *testing.T, dir string) string { return filepath.Join(dir, "nope.json") }, 16, "no such file"},
		{"folder", func(t *testing.T, dir string) string { return dir }, 16, "is a folder, not a regular file"},
		{"symlink to a regular file", func(t *testing.T, dir string) string {
			target := writeFile(t, dir, "real.json", []byte("{}"))
			return symlink(t, target, filepath.Join(dir, "link.json"))
		}, 16, ""},
	}
	for _, tc := range append(tests, specialFiles()...) {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.setup(t, t.TempDir())
			var data []byte
			var err error
			within(t, func() { data, err = Read(path, tc.limit) })
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				if int64(len(data)) > tc.limit {
					t.Errorf("read %d bytes, limit %d", len(data), tc.limit)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v, want it to name %s", err, path)
			}
			if strings.Contains(tc.want, "limit") && !errors.Is(err, ErrTooLarge) {
				t.Errorf("err = %v does not wrap ErrTooLarge", err)
			}
		})
	}
}

// TestReadAllStopsAtTheLimit reads an endless stream: the limit, not the
// stream's end, must stop it.
func TestReadAllStopsAtTheLimit(t *testing.T) {
	_, err := ReadAll("endless", endless{}, 1<<20)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "endless") {
		t.Fatalf("err = %v, want ErrTooLarge naming the stream", err)
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func symlink(t *testing.T, target, link string) string {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}
