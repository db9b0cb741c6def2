package tokenizer

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
)

// tokenizerFolder is a model folder holding the tiny test tokenizer as
// tokenizer.json, and an empty tokenizer_config.json.
func tokenizerFolder(t *testing.T) string {
	t.Helper()
	root, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "tokenizer", "tiny", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "tokenizer.json"), raw)
	writeFile(t, filepath.Join(dir, "tokenizer_config.json"), []byte("{}"))
	return dir
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	os.Remove(path)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sparse makes path a file of size bytes that takes no room on disk.
func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	writeFile(t, path, nil)
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// gzipBomb is a small gzip stream of one byte more than MaxFileBytes of
// spaces (which would be valid JSON padding if it were read).
func gzipBomb(t *testing.T) []byte {
	t.Helper()
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	chunk := bytes.Repeat([]byte(" "), 1<<20)
	for range MaxFileBytes >> 20 {
		zw.Write(chunk)
	}
	zw.Write([]byte(" "))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return gz.Bytes()
}

// limitCase edits a tokenizer folder into one LoadDir must refuse, with a
// part of the error it must give.
type limitCase struct {
	name string
	edit func(t *testing.T, dir string)
	want string
}

// TestLoadDirReadsWithLimits replaces the files LoadDir reads with ones too
// large, or that unpack too large, or that are not files: each must fail at
// once with the file named, never hang or read without end.
func TestLoadDirReadsWithLimits(t *testing.T) {
	bomb := gzipBomb(t)
	tests := []limitCase{
		{"tokenizer.json of a terabyte", func(t *testing.T, dir string) {
			sparse(t, filepath.Join(dir, "tokenizer.json"), 1<<40)
		}, "tokenizer.json: file is larger than its limit of 64 MiB"},
		{"tokenizer.json.gz that unpacks past the limit", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "tokenizer.json"))
			writeFile(t, filepath.Join(dir, "tokenizer.json.gz"), bomb)
		}, "tokenizer.json.gz unpacked: file is larger than its limit of 64 MiB"},
		{"gzip under the plain name", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "tokenizer.json"), bomb)
		}, "tokenizer.json unpacked: file is larger than its limit of 64 MiB"},
		{"tokenizer_config.json of a terabyte", func(t *testing.T, dir string) {
			sparse(t, filepath.Join(dir, "tokenizer_config.json"), 1<<40)
		}, "tokenizer_config.json: file is larger than its limit of 16 MiB"},
		{"tokenizer_config.json is a folder", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "tokenizer_config.json"))
			if err := os.Mkdir(filepath.Join(dir, "tokenizer_config.json"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "tokenizer_config.json is a folder, not a regular file"},
	}
	for _, tc := range append(tests, specialFiles()...) {
		t.Run(tc.name, func(t *testing.T) {
			dir := tokenizerFolder(t)
			tc.edit(t, dir)
			errc := make(chan error, 1)
			go func() { _, err := LoadDir(dir); errc <- err }()
			select {
			case err := <-errc:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("LoadDir still blocked after 10s")
			}
		})
	}
	// The folder itself, untouched, loads: the limits refuse only what is wrong.
	if _, err := LoadDir(tokenizerFolder(t)); err != nil {
		t.Fatal(err)
	}
}
