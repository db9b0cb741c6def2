//go:build unix

package models

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// noHome makes os.UserCacheDir fail, as for a service without a home
// folder, and points the temporary folder at a fresh one.
func noHome(t *testing.T) (tmp string) {
	tmp = t.TempDir()
	t.Setenv(CacheEnv, "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	t.Setenv("TMPDIR", tmp)
	if _, err := os.UserCacheDir(); err == nil {
		t.Fatal("os.UserCacheDir still finds a cache folder")
	}
	return tmp
}

func TestCacheRootIsPerUser(t *testing.T) {
	t.Run("user cache folder", func(t *testing.T) {
		xdg := t.TempDir()
		t.Setenv(CacheEnv, "")
		t.Setenv("XDG_CACHE_HOME", xdg)
		t.Setenv("HOME", t.TempDir()) // macOS takes $HOME/Library/Caches
		want, _ := os.UserCacheDir()
		root, err := cacheRoot()
		if err != nil || root != filepath.Join(want, "tinyllm") {
			t.Fatalf("cacheRoot: %q, %v; want %s", root, err, filepath.Join(want, "tinyllm"))
		}
	})
	t.Run("override", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "c")
		t.Setenv(CacheEnv, dir)
		if root, err := cacheRoot(); err != nil || root != dir {
			t.Fatalf("cacheRoot: %q, %v; want %s", root, err, dir)
		}
	})
	t.Run("no home folder", func(t *testing.T) {
		tmp := noHome(t)
		root, err := cacheRoot()
		want := filepath.Join(tmp, "tinyllm-"+strconv.Itoa(os.Getuid()))
		if err != nil || root != want {
			t.Fatalf("cacheRoot: %q, %v; want %s", root, err, want)
		}
		fi, err := os.Stat(root)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v, mode %v; want a folder of mode 0700", root, err, fi.Mode())
		}
	})
}

func TestCacheRootRefusesSharedFolders(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		want    string
	}{
		{"writable by others", func(t *testing.T, path string) {
			must(t, os.Mkdir(path, 0o700))
			must(t, os.Chmod(path, 0o777))
		}, "writable by others (mode 0777)"},
		{"group-writable", func(t *testing.T, path string) {
			must(t, os.Mkdir(path, 0o700))
			must(t, os.Chmod(path, 0o770))
		}, "writable by others (mode 0770)"},
		{"someone else's", func(t *testing.T, path string) {
			must(t, os.Mkdir(path, 0o700))
			uid := os.Getuid()
			getuid = func() int { return uid + 1 }
			t.Cleanup(func() { getuid = os.Getuid })
		}, "not by you"},
		{"a planted link", func(t *testing.T, path string) {
			must(t, os.Symlink(t.TempDir(), path))
		}, "symbolic link"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmp := noHome(t)
			tc.prepare(t, filepath.Join(tmp, "tinyllm-"+strconv.Itoa(os.Getuid())))
			root, err := cacheRoot()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("cacheRoot: %q, %v; want an error containing %q", root, err, tc.want)
			}
			if _, _, err := Open(); err == nil {
				t.Fatal("Open used a shared folder")
			}
		})
	}
	t.Run("override writable by others", func(t *testing.T) {
		dir := t.TempDir()
		must(t, os.Chmod(dir, 0o777))
		t.Setenv(CacheEnv, dir)
		if _, err := cacheRoot(); err == nil || !strings.Contains(err.Error(), "writable by others") {
			t.Fatalf("cacheRoot: %v; want a refusal", err)
		}
	})
}
