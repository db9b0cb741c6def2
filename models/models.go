// Package models carries the small chat model that ships with the repository,
// so tinyllm runs on a fresh clone with no download. It is trained by
// refgen/chatmodel; see tinyqwen-chat/README.md for what it can do.
package models

import (
	"embed"
)

// Name is the shipped model's folder name.
const Name = "tinyqwen-chat"

// CacheEnv names the environment variable that, when set, replaces the
// folder where tinyllm keeps its unpacked copy of the shipped model
// (by default the tinyllm folder of os.UserCacheDir).
const CacheEnv = "TINYLLM_CACHE"

//go:embed tinyqwen-chat/config.json tinyqwen-chat/generation_config.json
//go:embed tinyqwen-chat/model.safetensors
//go:embed tinyqwen-chat/tokenizer.json tinyqwen-chat/tokenizer_config.json
var files embed.FS

// Dir returns a folder holding the shipped model, as Open does, without
// Open's notes.
func Dir() (string, error) {
	dir, _, err := Open()
	return dir, err
}

// Open returns a folder holding the shipped model. The weights are
// memory-mapped from a real file, so the embedded folder is unpacked once
// into the cache folder (see CacheEnv), under a name that changes with
// everything unpacked, and reused afterwards once its files check out
// against the record written when it was unpacked.
//
// The notes say what Open repaired on the way: a damaged copy unpacked
// again, a folder that was in the way moved aside, leftovers of an
// interrupted unpack removed. A program shows them to its user (on stderr);
// none of them is an error.
func Open() (dir string, notes []string, err error) {
	root, err := cacheRoot()
	if err != nil {
		return "", nil, err
	}
	return unpack(root, files, Name)
}
