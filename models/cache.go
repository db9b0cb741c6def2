package models

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// stampName is the record, inside an unpacked folder, of what was written
// and verified there. It is written last, before the folder is renamed into
// place, so a folder without one was not finished by us.
const stampName = ".tinyllm-unpacked.json"

// staleAfter is how long a partial unpack must have been left untouched
// before it counts as the leftover of a killed run. An unpack takes well
// under a second, so a folder this old is not being written by anyone.
const staleAfter = time.Hour

// fileSum is one unpacked file: what the embedded copy holds and, in a
// stamp, the modification time the file got on disk.
type fileSum struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	ModTime int64  `json:"mtime_ns,omitempty"`
}

// stamp is the content of stampName.
type stamp struct {
	Key   string    `json:"key"`
	Files []fileSum `json:"files"`
}

// contents describes an embedded model folder: its files and the key that
// names its cache folder, a hash of every file's name, size and content.
type contents struct {
	fsys  fs.FS // the model folder
	key   string
	files []fileSum
}

func readContents(fsys fs.FS, name string) (*contents, error) {
	sub, err := fs.Sub(fsys, name)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(sub, ".")
	if err != nil {
		return nil, err
	}
	c := &contents{fsys: sub}
	key := sha256.New()
	for _, e := range entries { // sorted by name
		sum, size, err := hashFS(sub, e.Name())
		if err != nil {
			return nil, err
		}
		c.files = append(c.files, fileSum{Name: e.Name(), Size: size, SHA256: sum})
		fmt.Fprintf(key, "%q %d %s\n", e.Name(), size, sum)
	}
	c.key = hex.EncodeToString(key.Sum(nil))
	return c, nil
}

func hashFS(fsys fs.FS, name string) (sum string, size int64, err error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	return hashReader(f)
}

func hashFile(path string) (sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	return hashReader(f)
}

func hashReader(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// unpack returns root/<name>-<key>, holding the files of fsys's folder name,
// after checking it or (re)creating it.
func unpack(root string, fsys fs.FS, name string) (dir string, notes []string, err error) {
	want, err := readContents(fsys, name)
	if err != nil {
		return "", nil, fmt.Errorf("models: reading the embedded %s: %w", name, err)
	}
	base := name + "-" + want.key[:16]
	dir = filepath.Join(root, base)
	notes = removeStalePartials(root, name, want)

	v, err := inspect(dir, want)
	if err != nil {
		return "", notes, err
	}
	switch v.state {
	case intact:
		return dir, notes, nil
	case empty:
		if err := os.Remove(dir); err != nil {
			return "", notes, fmt.Errorf("models: removing the empty folder in the way: %w", err)
		}
		notes = append(notes, fmt.Sprintf("%s was an empty folder; unpacked the shipped model into it", dir))
	case damaged:
		// Ours, so it may go: renamed first, so that no one opens a folder
		// half-removed, then removed (a failed removal is a leftover that
		// a later run cleans up).
		trash, err := os.MkdirTemp(root, base+".partial-")
		if err == nil {
			err = os.Rename(dir, filepath.Join(trash, base))
		}
		if err != nil {
			return "", notes, fmt.Errorf("models: the cached model in %s is damaged (%s) and could not be moved away: %w", dir, v.reason, err)
		}
		os.RemoveAll(trash)
		notes = append(notes, fmt.Sprintf("the cached model in %s was damaged (%s); unpacked it again", dir, v.reason))
	case foreign:
		// Not ours to delete: moved aside, for its owner to look at.
		aside := fmt.Sprintf("%s.aside-%s", dir, time.Now().Format("20060102-150405.000000000"))
		if err := os.Rename(dir, aside); err != nil {
			return "", notes, fmt.Errorf("models: %s is in the way (%s) and could not be moved aside: %w", dir, v.reason, err)
		}
		notes = append(notes, fmt.Sprintf("%s was not an unpacked copy of the shipped model (%s); moved it to %s", dir, v.reason, aside))
	}

	tmp, err := os.MkdirTemp(root, base+".partial-")
	if err != nil {
		return "", notes, fmt.Errorf("models: %w", err)
	}
	defer os.RemoveAll(tmp) // gone already after a successful rename
	if err := writeAll(tmp, want); err != nil {
		return "", notes, fmt.Errorf("models: unpacking the shipped model into %s: %w", root, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process may have put its own copy in place meanwhile.
		if v, verr := inspect(dir, want); verr == nil && v.state == intact {
			return dir, notes, nil
		}
		return "", notes, fmt.Errorf("models: %w", err)
	}
	return dir, notes, nil
}

// writeAll writes want's files into dir, reads each back to check it, and
// records them in the stamp. Nothing is synced: after a crash the stamp
// check finds any file that did not reach the disk whole.
func writeAll(dir string, want *contents) error {
	st := stamp{Key: want.key}
	for _, f := range want.files {
		path := filepath.Join(dir, f.Name)
		if err := writeFile(path, want.fsys, f.Name); err != nil {
			return err
		}
		sum, size, err := hashFile(path)
		if err != nil {
			return err
		}
		if sum != f.SHA256 || size != f.Size {
			return fmt.Errorf("%s reads back different from what was written", path)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		f.ModTime = fi.ModTime().UnixNano()
		st.Files = append(st.Files, f)
	}
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, stampName), raw, 0o644)
}

func writeFile(path string, fsys fs.FS, name string) error {
	src, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// state is what inspect found at the cache path.
type state int

const (
	missing state = iota // nothing there
	intact               // our unpacked copy, every file checked
	empty                // an empty folder: replaced without ado
	damaged              // our copy, with a file changed or missing: unpacked again
	foreign              // something we did not write: moved aside, never deleted
)

type verdict struct {
	state  state
	reason string
}

// inspect checks the folder at dir against want. Sizes and modification
// times are compared with the stamp; a file whose time differs is hashed,
// so a copy changed in place (same size, other bytes) is caught, while a
// file that was only touched is still accepted.
func inspect(dir string, want *contents) (verdict, error) {
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return verdict{state: missing}, nil
	case err != nil:
		return verdict{}, fmt.Errorf("models: %w", err)
	case !fi.IsDir():
		return verdict{foreign, "not a folder"}, nil
	}
	if why := notPrivate(fi); why != "" {
		return verdict{foreign, why}, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return verdict{}, fmt.Errorf("models: %w", err)
	}
	if len(entries) == 0 {
		return verdict{state: empty}, nil
	}
	known := map[string]fileSum{}
	for _, f := range want.files {
		known[f.Name] = f
	}
	for _, e := range entries {
		if _, ok := known[e.Name()]; !ok && e.Name() != stampName {
			return verdict{foreign, fmt.Sprintf("it holds %s, which is not a file of the model", e.Name())}, nil
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, stampName))
	if err != nil {
		return verdict{foreign, "it has no " + stampName}, nil
	}
	var st stamp
	if err := json.Unmarshal(raw, &st); err != nil || st.Key != want.key {
		return verdict{foreign, "its " + stampName + " is not the record of this model"}, nil
	}
	stamped := map[string]fileSum{}
	for _, f := range st.Files {
		stamped[f.Name] = f
	}
	for _, f := range want.files {
		path := filepath.Join(dir, f.Name)
		fi, err := os.Lstat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return verdict{damaged, f.Name + " is missing"}, nil
		case err != nil:
			return verdict{}, fmt.Errorf("models: %w", err)
		case !fi.Mode().IsRegular():
			return verdict{damaged, f.Name + " is not a regular file"}, nil
		case fi.Size() != f.Size:
			return verdict{damaged, fmt.Sprintf("%s has %d bytes, not %d", f.Name, fi.Size(), f.Size)}, nil
		case fi.Mode().Perm()&0o022 != 0:
			return verdict{damaged, f.Name + " is writable by others"}, nil
		}
		s, ok := stamped[f.Name]
		if ok && s.SHA256 == f.SHA256 && s.Size == f.Size && s.ModTime == fi.ModTime().UnixNano() {
			continue
		}
		sum, _, err := hashFile(path)
		if err != nil {
			return verdict{}, fmt.Errorf("models: %w", err)
		}
		if sum != f.SHA256 {
			return verdict{damaged, f.Name + "'s contents changed"}, nil
		}
	}
	return verdict{state: intact}, nil
}

// removeStalePartials removes the folders that interrupted unpacks of
// this model left in root: only folders named as unpack names them, holding
// nothing but files an unpack writes, and untouched for staleAfter (so
// never one that another process is writing now).
func removeStalePartials(root, name string, want *contents) (notes []string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if !e.IsDir() || !isPartialName(e.Name(), name) {
			continue
		}
		path := filepath.Join(root, e.Name())
		if ours, newest := partialAge(path, name, want); ours && time.Since(newest) > staleAfter {
			if err := os.RemoveAll(path); err != nil {
				notes = append(notes, fmt.Sprintf("could not remove %s, left by an interrupted unpack: %v", path, err))
				continue
			}
			notes = append(notes, fmt.Sprintf("removed %s, left by an interrupted unpack", path))
		}
	}
	return notes
}

// isPartialName reports whether s is a name unpack gives its temporary
// folders: <name>-<16 hex digits>.partial-<digits>.
func isPartialName(s, name string) bool {
	key, tail, ok := strings.Cut(strings.TrimPrefix(s, name+"-"), ".partial-")
	if !ok || len(key) != 16 || len(tail) == 0 || !strings.HasPrefix(s, name+"-") {
		return false
	}
	return strings.Trim(key, "0123456789abcdef") == "" && strings.Trim(tail, "0123456789") == ""
}

// partialAge reports whether the partial folder at path holds only what an
// unpack writes there (the model's files, the stamp, or a damaged copy
// moved in to be removed) and the newest modification time in it.
func partialAge(path, name string, want *contents) (ours bool, newest time.Time) {
	fi, err := os.Lstat(path)
	if err != nil || !fi.IsDir() {
		return false, time.Time{}
	}
	newest = fi.ModTime()
	known := map[string]bool{stampName: true}
	for _, f := range want.files {
		known[f.Name] = true
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return false, newest
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return false, newest
		}
		if info.ModTime().After(newest) {
			newest = info.ModTime()
		}
		switch {
		case info.Mode().IsRegular() && known[e.Name()]:
		case info.IsDir() && strings.HasPrefix(e.Name(), name+"-"):
			// A damaged copy being thrown away: its files count too.
			sub, t := partialAge(filepath.Join(path, e.Name()), name, want)
			if !sub {
				return false, newest
			}
			if t.After(newest) {
				newest = t
			}
		default:
			return false, newest
		}
	}
	return true, newest
}
