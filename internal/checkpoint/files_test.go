package checkpoint

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
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

// sparse makes path a file of size bytes that takes no room on disk.
func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	write(t, path, nil)
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// folderCase is a checkpoint folder Open must refuse, with a part of the
// error it must give.
type folderCase struct {
	name string
	dir  func(t *testing.T) string
	want string
}

// TestOpenReadsWithLimits replaces the files Open reads with ones that are
// too large or not files at all. Each must fail at once with an error naming
// the file, never hang or read without end.
func TestOpenReadsWithLimits(t *testing.T) {
	src := tiedDir(t)
	tests := []folderCase{
		{"config.json of a terabyte", func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			sparse(t, filepath.Join(d, "config.json"), 1<<40)
			return d
		}, "config.json: file is larger than its limit of 16 MiB"},
		{"config.json one byte over the limit", func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			sparse(t, filepath.Join(d, "config.json"), MaxJSONBytes+1)
			return d
		}, "config.json: file is larger than its limit of 16 MiB"},
		{"index of a terabyte", func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			sparse(t, filepath.Join(d, "model.safetensors.index.json"), 1<<40)
			return d
		}, "model.safetensors.index.json: file is larger than its limit of 16 MiB"},
		{"config.json is a folder", func(t *testing.T) string {
			d := copyCheckpoint(t, src, nil)
			os.Remove(filepath.Join(d, "config.json"))
			if err := os.Mkdir(filepath.Join(d, "config.json"), 0o755); err != nil {
				t.Fatal(err)
			}
			return d
		}, "config.json is a folder, not a regular file"},
	}
	for _, tc := range append(tests, specialFolders(t, src)...) {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			var err error
			within(t, func() {
				var ck *Checkpoint
				if ck, err = Open(dir); err == nil {
					ck.Close()
				}
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestIndexNamesOnlyPlainFiles gives the index shard names that leave the
// folder, or are not weight files at all; each is refused by name before
// anything is opened.
func TestIndexNamesOnlyPlainFiles(t *testing.T) {
	for _, shard := range []string{
		"../model.safetensors", "..", ".", "", "/etc/passwd.safetensors", "sub/model.safetensors",
		`sub\model.safetensors`, "C:model.safetensors", "config.json", ".safetensors",
	} {
		t.Run(shard, func(t *testing.T) {
			d := copyCheckpoint(t, tiedDir(t), nil)
			write(t, filepath.Join(d, "model.safetensors.index.json"),
				[]byte(`{"weight_map": {"model.norm.weight": "model.safetensors", "lm_head.weight": `+quote(shard)+`}}`))
			ck, err := Open(d)
			if err == nil {
				ck.Close()
				t.Fatal("opened without error")
			}
			if want := "a shard must be a plain file name ending in .safetensors"; !strings.Contains(err.Error(), want) ||
				!strings.Contains(err.Error(), quote(shard)) {
				t.Errorf("err = %v, want it to name %s and say %q", err, quote(shard), want)
			}
		})
	}
}

func quote(s string) string { return strings.ReplaceAll(`"`+s+`"`, `\`, `\\`) }

// TestWeightFilesAreWhatTheIndexNames splits the tied checkpoint over two
// shards beside two files that are not part of it: a stray .safetensors
// file and a stale model.safetensors. Only the shards are opened and listed.
func TestWeightFilesAreWhatTheIndexNames(t *testing.T) {
	d := copyCheckpoint(t, tiedDir(t), nil)
	all := readWeights(t, filepath.Join(d, "model.safetensors"))
	half := len(all) / 2
	writeWeights(t, filepath.Join(d, "model-00001-of-00002.safetensors"), all[:half])
	writeWeights(t, filepath.Join(d, "model-00002-of-00002.safetensors"), all[half:])
	index := `{"metadata": {}, "weight_map": {"` + all[0].spec.Name + `": "model-00002-of-00002.safetensors", "` +
		all[half].spec.Name + `": "model-00001-of-00002.safetensors"}}`
	write(t, filepath.Join(d, "model.safetensors.index.json"), []byte(index))
	write(t, filepath.Join(d, "consolidated.safetensors"), []byte("not a weight file"))
	ck, err := Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	want := []string{filepath.Join(d, "model-00001-of-00002.safetensors"), filepath.Join(d, "model-00002-of-00002.safetensors")}
	if got := ck.WeightFiles(); !slices.Equal(got, want) {
		t.Errorf("WeightFiles() = %v, want %v", got, want)
	}
	for _, s := range all {
		if !ck.Has(s.spec.Name) {
			t.Errorf("tensor %s of the shards is not visible", s.spec.Name)
		}
	}
	single, err := Open(copyCheckpoint(t, tiedDir(t), nil))
	if err != nil {
		t.Fatal(err)
	}
	single.Close()
	if got := single.WeightFiles(); len(got) != 1 || filepath.Base(got[0]) != "model.safetensors" {
		t.Errorf("single-file checkpoint: WeightFiles() = %v after Close, want its model.safetensors", got)
	}
}

// TestHeadersAreBoundedTogether gives a checkpoint two shards whose headers
// are each within safetensors' limit (padding is allowed) but together
// exceed it: Open stops rather than keep parsing.
func TestHeadersAreBoundedTogether(t *testing.T) {
	d := copyCheckpoint(t, tiedDir(t), nil)
	all := readWeights(t, filepath.Join(d, "model.safetensors"))
	writeWeights(t, filepath.Join(d, "a.safetensors"), all)
	// Two files with no tensors and a 50 MB header: "{}" and spaces.
	const n = 50_000_000
	empty := binary.LittleEndian.AppendUint64(nil, n)
	empty = append(append(empty, "{}"...), bytes.Repeat([]byte(" "), n-2)...)
	for _, name := range []string{"b.safetensors", "c.safetensors"} {
		write(t, filepath.Join(d, name), empty)
	}
	write(t, filepath.Join(d, "model.safetensors.index.json"),
		[]byte(`{"weight_map": {"x": "a.safetensors", "y": "b.safetensors", "z": "c.safetensors"}}`))
	ck, err := Open(d)
	if err == nil {
		ck.Close()
		t.Fatal("opened without error")
	}
	if want := "the headers of the first 3 weight files add up to more than 100000000 bytes"; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to say %q", err, want)
	}
}

// TestGenerationConfigReadWithLimits puts a file too large, a named pipe and
// /dev/zero in place of generation_config.json.
func TestGenerationConfigReadWithLimits(t *testing.T) {
	ck, err := Open(copyCheckpoint(t, tiedDir(t), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	path := filepath.Join(ck.Dir, "generation_config.json")
	cases := append([]specialFile{
		{"a terabyte", func(t *testing.T, p string) { sparse(t, p, 1<<40) }, "larger than its limit of 16 MiB"},
	}, specialFiles()...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(path)
			c.make(t, path)
			var err error
			within(t, func() { _, err = ck.ReadGenerationConfig() })
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to name %s and say %q", err, path, c.want)
			}
		})
	}
}

// specialFile makes something at a path in place of a file, and gives a part
// of the error that reading it must give.
type specialFile struct {
	name string
	make func(t *testing.T, path string)
	want string
}
