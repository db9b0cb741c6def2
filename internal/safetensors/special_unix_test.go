//go:build unix

package safetensors

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOpenRefusesSpecialFiles puts what is not a regular file under a
// .safetensors name. A named pipe with no writer would block the open call
// itself and /dev/zero never ends: both must fail at once, naming the file.
func TestOpenRefusesSpecialFiles(t *testing.T) {
	cases := []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"named pipe", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is a named pipe, not a regular file"},
		{"link to /dev/zero", func(t *testing.T, path string) {
			if err := os.Symlink("/dev/zero", path); err != nil {
				t.Fatal(err)
			}
		}, "is a character device, not a regular file"},
		{"folder", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "is a folder, not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.safetensors")
			c.make(t, path)
			errc := make(chan error, 1)
			go func() {
				f, err := Open(path)
				if err == nil {
					f.Close()
				}
				errc <- err
			}()
			select {
			case err := <-errc:
				if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("err = %v, want one naming %s and saying %q", err, path, c.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Open still blocked after 10s")
			}
		})
	}
}
