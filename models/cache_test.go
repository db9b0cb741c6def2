package models

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

// folder returns a small stand-in for an embedded model folder "m".
func folder(config, tokenizer, weights string) fstest.MapFS {
	return fstest.MapFS{
		"m/config.json":       {Data: []byte(config)},
		"m/tokenizer.json":    {Data: []byte(tokenizer)},
		"m/model.safetensors": {Data: []byte(weights)},
	}
}

var stand = folder(`{"hidden_size": 8}`, `{"model": {}}`, strings.Repeat("weights.", 64))

// requireCopy fails unless dir holds exactly the files of fsys's folder m
// (and the stamp).
func requireCopy(t *testing.T, dir string, fsys fstest.MapFS) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := len(fsys) + 1; len(names) != want {
		t.Fatalf("%s holds %v, want the %d files of the model and the stamp", dir, names, len(fsys))
	}
	for path, f := range fsys {
		got, err := os.ReadFile(filepath.Join(dir, strings.TrimPrefix(path, "m/")))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.Data) {
			t.Errorf("%s: unpacked copy differs from the embedded file", path)
		}
	}
}

func TestCacheKeyCoversEveryFile(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
	}{
		{"config changed", folder(`{"hidden_size": 16}`, `{"model": {}}`, strings.Repeat("weights.", 64))},
		{"tokenizer changed", folder(`{"hidden_size": 8}`, `{"model": {"type": "BPE"}}`, strings.Repeat("weights.", 64))},
		{"file renamed", fstest.MapFS{
			"m/config.json":               stand["m/config.json"],
			"m/tokenizer.json":            stand["m/tokenizer.json"],
			"m/model-renamed.safetensors": stand["m/model.safetensors"],
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			first, _, err := unpack(root, stand, "m")
			if err != nil {
				t.Fatal(err)
			}
			second, _, err := unpack(root, tc.fsys, "m")
			if err != nil {
				t.Fatal(err)
			}
			if first == second {
				t.Fatalf("both models unpacked to %s", first)
			}
			requireCopy(t, second, tc.fsys)
			requireCopy(t, first, stand)
		})
	}
}

func TestCacheRepairs(t *testing.T) {
	weights := filepath.FromSlash("model.safetensors")
	later := time.Now().Add(time.Minute)
	tests := []struct {
		name     string
		damage   func(t *testing.T, dir string)
		wantNote string // "" for none
		aside    string // a file that must survive in the folder moved aside
	}{
		{"same size, other bytes", func(t *testing.T, dir string) {
			path := filepath.Join(dir, weights)
			raw, _ := os.ReadFile(path)
			raw[len(raw)/2] ^= 0xff
			must(t, os.WriteFile(path, raw, 0o644))
			must(t, os.Chtimes(path, later, later))
		}, "model.safetensors's contents changed", ""},
		{"truncated", func(t *testing.T, dir string) {
			must(t, os.Truncate(filepath.Join(dir, weights), 10))
		}, "model.safetensors has 10 bytes", ""},
		{"file missing", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "tokenizer.json")))
		}, "tokenizer.json is missing", ""},
		{"only touched", func(t *testing.T, dir string) {
			must(t, os.Chtimes(filepath.Join(dir, weights), later, later))
		}, "", ""},
		{"empty folder", func(t *testing.T, dir string) {
			must(t, os.RemoveAll(dir))
			must(t, os.Mkdir(dir, 0o700))
		}, "was an empty folder", ""},
		{"someone else's folder", func(t *testing.T, dir string) {
			must(t, os.RemoveAll(dir))
			must(t, os.Mkdir(dir, 0o700))
			must(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644))
		}, "it holds notes.txt", "notes.txt"},
		{"no stamp", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, stampName)))
		}, "it has no " + stampName, "config.json"},
		{"a file in the way", func(t *testing.T, dir string) {
			must(t, os.RemoveAll(dir))
			must(t, os.WriteFile(dir, []byte("x"), 0o644))
		}, "not a folder", ""},
		{"folder others can write", func(t *testing.T, dir string) {
			must(t, os.Chmod(dir, 0o777))
		}, "writable by others", "config.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir, notes, err := unpack(root, stand, "m")
			if err != nil || len(notes) != 0 {
				t.Fatalf("first unpack: %v, notes %q", err, notes)
			}
			tc.damage(t, dir)
			before, _ := os.Stat(filepath.Join(dir, weights))
			again, notes, err := unpack(root, stand, "m")
			if err != nil {
				t.Fatal(err)
			}
			if again != dir {
				t.Fatalf("unpacked to %s, then to %s", dir, again)
			}
			requireCopy(t, dir, stand)
			switch {
			case tc.wantNote == "" && len(notes) > 0:
				t.Errorf("notes %q, want none", notes)
			case tc.wantNote == "":
				// Accepted as it is, not written again.
				after, _ := os.Stat(filepath.Join(dir, weights))
				if !after.ModTime().Equal(before.ModTime()) {
					t.Errorf("an intact copy was written again")
				}
			case len(notes) != 1 || !strings.Contains(notes[0], tc.wantNote):
				t.Errorf("notes %q, want one containing %q", notes, tc.wantNote)
			}
			if tc.aside != "" {
				kept, _ := filepath.Glob(filepath.Join(dir+".aside-*", tc.aside))
				if len(kept) != 1 {
					t.Errorf("the folder in the way was not moved aside whole (found %v)", kept)
				}
			}
			if _, notes, err := unpack(root, stand, "m"); err != nil || len(notes) != 0 {
				t.Errorf("after the repair: %v, notes %q", err, notes)
			}
			leftovers, _ := filepath.Glob(filepath.Join(root, "*.partial-*"))
			if len(leftovers) != 0 {
				t.Errorf("left behind %v", leftovers)
			}
		})
	}
}

func TestStalePartialsAreRemoved(t *testing.T) {
	root := t.TempDir()
	want, err := readContents(stand, "m")
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * staleAfter)
	partial := func(name string, files []string, age time.Time) string {
		dir := filepath.Join(root, name)
		must(t, os.Mkdir(dir, 0o700))
		for _, f := range files {
			must(t, os.WriteFile(filepath.Join(dir, f), []byte("half"), 0o644))
			must(t, os.Chtimes(filepath.Join(dir, f), age, age))
		}
		must(t, os.Chtimes(dir, age, age))
		return dir
	}
	key := "0123456789abcdef"
	killed := partial("m-"+key+".partial-123", []string{"config.json", "model.safetensors"}, old)
	emptyOld := partial("m-"+key+".partial-124", nil, old)
	writing := partial("m-"+key+".partial-125", []string{"config.json"}, time.Now())
	notOurs := partial("m-"+key+".partial-126", []string{"config.json", "thesis.tex"}, old)
	otherName := partial("m-backup", []string{"config.json"}, old)
	otherModel := partial("n-"+key+".partial-127", []string{"config.json"}, old)

	notes := removeStalePartials(root, "m", want)
	for _, tc := range []struct {
		dir  string
		gone bool
	}{{killed, true}, {emptyOld, true}, {writing, false}, {notOurs, false}, {otherName, false}, {otherModel, false}} {
		_, err := os.Stat(tc.dir)
		if gone := os.IsNotExist(err); gone != tc.gone {
			t.Errorf("%s: removed %v, want %v", filepath.Base(tc.dir), gone, tc.gone)
		}
	}
	if len(notes) != 2 || !strings.Contains(strings.Join(notes, "\n"), killed) {
		t.Errorf("notes %q, want two, one naming %s", notes, killed)
	}
}

func TestConcurrentUnpacksAgree(t *testing.T) {
	root := t.TempDir()
	const n = 8
	dirs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dirs[i], _, errs[i] = unpack(root, stand, "m") })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Fatalf("unpack %d: %q, %v (first: %q)", i, dirs[i], errs[i], dirs[0])
		}
	}
	requireCopy(t, dirs[0], stand)
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 {
		t.Errorf("root holds %d entries, want only the model folder", len(entries))
	}
}

// TestOpenRepairsTheShippedModel damages the real unpacked model the way
// that used to go unnoticed (same size, other bytes) and expects Open to
// unpack it again and say so.
func TestOpenRepairsTheShippedModel(t *testing.T) {
	t.Setenv(CacheEnv, t.TempDir())
	dir, notes, err := Open()
	if err != nil || len(notes) != 0 {
		t.Fatalf("Open: %v, notes %q", err, notes)
	}
	path := filepath.Join(dir, "model.safetensors")
	embedded, err := files.ReadFile(Name + "/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	raw := bytes.Clone(embedded)
	for i := len(raw) / 2; i < len(raw)/2+4096; i++ {
		raw[i] = 0
	}
	must(t, os.WriteFile(path, raw, 0o644))
	later := time.Now().Add(time.Minute)
	must(t, os.Chtimes(path, later, later))

	again, notes, err := Open()
	if err != nil || again != dir {
		t.Fatalf("Open after damage: %q, %v (first %q)", again, err, dir)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "damaged") {
		t.Errorf("notes %q, want one saying the copy was damaged", notes)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, embedded) {
		t.Errorf("the damaged weights are still in use")
	}
	if d, err := Dir(); err != nil || d != dir {
		t.Errorf("Dir: %q, %v; want %q", d, err, dir)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
