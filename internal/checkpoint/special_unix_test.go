//go:build unix

package checkpoint

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// specialFolders are checkpoint folders with a named pipe or a device in
// place of one of the files Open reads. Opening a pipe with no writer
// blocks, and /dev/zero never ends.
func specialFolders(t *testing.T, src string) []folderCase {
	replace := func(name string, with func(t *testing.T, path string)) func(t *testing.T) string {
		return func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			p := filepath.Join(d, name)
			os.Remove(p)
			with(t, p)
			return d
		}
	}
	return []folderCase{
		{"config.json is a named pipe", replace("config.json", mkfifo), "config.json is a named pipe, not a regular file"},
		{"config.json is /dev/zero", replace("config.json", linkZero), "config.json is a character device, not a regular file"},
		{"index is a named pipe", replace("model.safetensors.index.json", mkfifo), "model.safetensors.index.json is a named pipe"},
		{"weights are a named pipe", replace("model.safetensors", mkfifo), "model.safetensors is a named pipe"},
		{"weights are /dev/zero", replace("model.safetensors", linkZero), "model.safetensors is a character device"},
	}
}

// specialFiles are a named pipe and a link to /dev/zero.
func specialFiles() []specialFile {
	return []specialFile{
		{"named pipe", mkfifo, "is a named pipe, not a regular file"},
		{"link to /dev/zero", linkZero, "is a character device, not a regular file"},
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

func linkZero(t *testing.T, path string) {
	t.Helper()
	if err := os.Symlink("/dev/zero", path); err != nil {
		t.Fatal(err)
	}
}
