// Package modelfolder writes a model folder so that it is never seen half
// written: the new files go into a hidden partial folder inside the target
// and are moved into place at the end, config.json last. mkmodel and
// quantize both write model folders this way.
package modelfolder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// TokenizerFiles are the files of a Hugging Face tokenizer besides
// tokenizer.json; writers copy them when present.
var TokenizerFiles = []string{"tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "chat_template.jinja", "added_tokens.json"}

// IsModelFile reports whether a file of this name in a model folder belongs
// to the model (and so is replaced when a writer overwrites the model): the
// configs, the tokenizer files, the weights and their index.
func IsModelFile(name string) bool {
	switch name {
	case "config.json", "generation_config.json", "model.safetensors.index.json",
		"tokenizer.json", "tokenizer.json.gz":
		return true
	}
	return strings.HasSuffix(name, ".safetensors") || slices.Contains(TokenizerFiles, name)
}

// ErrModelExists matches (errors.Is) the errors refusing to overwrite a
// model.
var ErrModelExists = errors.New("folder already holds a model")

// existsError is a refusal to overwrite whose message stands alone.
type existsError struct{ msg string }

func (e *existsError) Error() string        { return e.msg }
func (e *existsError) Is(target error) bool { return target == ErrModelExists }

// ModelFiles lists the files of dir that belong to a model.
func ModelFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if IsModelFile(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// CheckFree returns an ErrModelExists error if dir holds model files and
// overwrite is false.
func CheckFree(dir string, overwrite bool) error {
	old, err := ModelFiles(dir)
	if err != nil {
		return err
	}
	if len(old) > 0 && !overwrite {
		return &existsError{fmt.Sprintf("%s already holds model files (%s)", dir, strings.Join(old, ", "))}
	}
	return nil
}

// Install moves the files written in tmp into dir. With overwrite, the
// model files already there go first, config.json before the rest, and the
// new config.json comes last, so that at no moment does dir hold a
// config.json beside weights of another model. Files of dir that are not
// model files stay.
func Install(tmp, dir string, overwrite bool) error {
	old, err := ModelFiles(dir)
	if err != nil {
		return err
	}
	if len(old) > 0 && !overwrite {
		return &existsError{fmt.Sprintf("%s got model files (%s) while the model was being written", dir, strings.Join(old, ", "))}
	}
	slices.SortFunc(old, configFirst)
	for _, name := range old {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("replacing the model in %s: %w", dir, err)
		}
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	slices.SortFunc(names, func(a, b string) int { return configFirst(b, a) })
	for _, name := range names {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// configFirst orders config.json before every other name.
func configFirst(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "config.json":
		return -1
	case b == "config.json":
		return 1
	}
	return strings.Compare(a, b)
}

// StaleAfter is how long a partial folder must have been left untouched
// before a later run removes it: a writer touches its files continuously.
const StaleAfter = time.Hour

// RemoveStalePartials removes the partial folders (named prefix…) that
// killed runs of tool left in dir: only those holding nothing but model
// files (and the safetensors writer's temporary files) and untouched for
// StaleAfter, so never one that a run is writing now. It names the others
// in a note.
func RemoveStalePartials(dir, prefix, tool string, note func(string)) {
	if note == nil {
		note = func(string) {}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		ours, newest := partialState(path)
		switch {
		case !ours:
			note(fmt.Sprintf("left %s alone: it holds files that are not part of a model", path))
		case time.Since(newest) < StaleAfter:
			note(fmt.Sprintf("left %s alone: written in the last hour, perhaps by another %s still running; remove it if not", path, tool))
		default:
			if err := os.RemoveAll(path); err != nil {
				note(fmt.Sprintf("could not remove %s, left by an interrupted %s: %v", path, tool, err))
			} else {
				note(fmt.Sprintf("removed %s, left by an interrupted %s", path, tool))
			}
		}
	}
}

// partialState reports whether a partial folder holds only what a writer
// puts there, and the newest modification time in it.
func partialState(path string) (ours bool, newest time.Time) {
	fi, err := os.Lstat(path)
	if err != nil {
		return false, newest
	}
	newest = fi.ModTime()
	entries, err := os.ReadDir(path)
	if err != nil {
		return false, newest
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			return false, newest
		}
		// safetensors.WriteFile writes through "<name>.tmp<digits>".
		name := e.Name()
		if base, _, ok := strings.Cut(name, ".safetensors.tmp"); ok {
			name = base + ".safetensors"
		}
		if !IsModelFile(name) {
			return false, newest
		}
		if info.ModTime().After(newest) {
			newest = info.ModTime()
		}
	}
	return true, newest
}
