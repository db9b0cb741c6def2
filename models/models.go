// Package models carries the small chat model that ships with the repository,
// so tinyllm runs on a fresh clone with no download. It is trained by
// refgen/chatmodel; see tinyqwen-chat/README.md for what it can do.
package models

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Name is the shipped model's folder name.
const Name = "tinyqwen-chat"

//go:embed tinyqwen-chat/config.json tinyqwen-chat/generation_config.json
//go:embed tinyqwen-chat/model.safetensors
//go:embed tinyqwen-chat/tokenizer.json tinyqwen-chat/tokenizer_config.json
var files embed.FS

// Dir returns a folder holding the shipped model. The weights are memory-mapped
// from a real file, so the embedded copy is written once to the user's cache
// folder (under a name that changes with the weights) and reused afterwards.
func Dir() (string, error) {
	weights, err := files.ReadFile(Name + "/model.safetensors")
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(weights)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "tinyllm", Name+"-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		return dir, nil
	}
	// Write into a temporary sibling and rename it into place, so a run that is
	// interrupted half-way never leaves a folder that looks complete.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("models: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), Name+"-partial-")
	if err != nil {
		return "", fmt.Errorf("models: %w", err)
	}
	defer os.RemoveAll(tmp)
	entries, err := fs.ReadDir(files, Name)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		data, err := files.ReadFile(Name + "/" + e.Name())
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(tmp, e.Name()), data, 0o644); err != nil {
			return "", fmt.Errorf("models: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "model.safetensors")); statErr == nil {
			return dir, nil // another process got there first
		}
		return "", fmt.Errorf("models: %w", err)
	}
	return dir, nil
}
