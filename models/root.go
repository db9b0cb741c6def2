package models

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// cacheRoot returns the folder that holds the unpacked model, creating it
// if needed: $TINYLLM_CACHE (an absolute path), else the tinyllm folder of the user's cache
// folder, else (no home folder) a folder of the temporary folder named
// after the user id. Never a shared one: another user who could write in
// it could swap the weights or the tokenizer.
func cacheRoot() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		// A relative path would put a cache in every folder a command runs
		// from, each unpacking the model again; the cache is meant to be
		// one folder, found from anywhere.
		if !filepath.IsAbs(d) {
			msg := fmt.Sprintf("models: %s=%s is a relative path; set it to an absolute one", CacheEnv, d)
			if abs, err := filepath.Abs(d); err == nil {
				msg += fmt.Sprintf(" (such as %s)", abs)
			}
			return "", errors.New(msg + ", so that every command finds the same cache from any folder")
		}
		return privateDir(filepath.Clean(d), false)
	}
	if d, err := os.UserCacheDir(); err == nil {
		return privateDir(filepath.Join(d, "tinyllm"), false)
	}
	return privateDir(filepath.Join(os.TempDir(), "tinyllm-"+strconv.Itoa(getuid())), true)
}

// privateDir creates dir (mode 0700) if it does not exist and checks that
// it is a folder of the current user that no one else can write in. In a
// shared parent (strict), a symbolic link there is refused too, as anyone
// could have planted it.
func privateDir(dir string, strict bool) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("models: creating the cache folder: %w", err)
	}
	stat := os.Stat
	if strict {
		stat = os.Lstat
	}
	fi, err := stat(dir)
	switch {
	case err != nil:
		return "", fmt.Errorf("models: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return "", fmt.Errorf("models: cache folder %s is a symbolic link; remove it, or set %s to a folder of yours", dir, CacheEnv)
	case !fi.IsDir():
		return "", fmt.Errorf("models: cache folder %s is not a folder; set %s to a folder of yours", dir, CacheEnv)
	}
	if why := notPrivate(fi); why != "" {
		return "", fmt.Errorf("models: refusing cache folder %s: it is %s; set %s to a folder of yours that only you can write", dir, why, CacheEnv)
	}
	return dir, nil
}
