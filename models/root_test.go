package models

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCacheRootRefusesRelativePaths: a relative TINYLLM_CACHE is refused
// with the absolute path it would have meant, and nothing is created in
// the working folder.
func TestCacheRootRefusesRelativePaths(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	for _, rel := range []string{"cache", "./cache", "../cache", "~/cache"} {
		t.Setenv(CacheEnv, rel)
		root, err := cacheRoot()
		want := CacheEnv + "=" + rel + " is a relative path; set it to an absolute one (such as " + filepath.Join(work, rel) + ")"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%s: cacheRoot = %q, %v; want an error containing %q", CacheEnv, rel, root, err, want)
		}
	}
	entries, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("the refused paths left %v in the working folder", entries)
	}
	// An absolute path with redundant parts names the same folder, cleaned.
	abs := filepath.Join(t.TempDir(), "c")
	t.Setenv(CacheEnv, abs+string(filepath.Separator)+".")
	if root, err := cacheRoot(); err != nil || root != abs {
		t.Errorf("cacheRoot = %q, %v; want %s", root, err, abs)
	}
}
