// Package models carries the small chat model that ships with the repository,
// so tinyllm runs on a fresh clone with no download, and its 4-bit sibling.
// The model is trained by refgen/chatmodel; see tinyqwen-chat/README.md for
// what it can do. The sibling is what `tinyllm quantize --bits 4
// --group-size 64` writes for it (see tinyqwen-chat-4bit/README.md).
package models

import (
	"embed"
)

// Name is the shipped model's folder name.
const Name = "tinyqwen-chat"

// Name4Bit is the folder name of its 4-bit sibling, in MLX's affine format
// (groups of 64).
const Name4Bit = "tinyqwen-chat-4bit"

// CacheEnv names the environment variable that, when set, replaces the
// folder where tinyllm keeps its unpacked copy of the shipped model
// (by default the tinyllm folder of os.UserCacheDir). It must be an
// absolute path: a relative one is refused rather than resolved against
// whatever folder a command happens to run in.
const CacheEnv = "TINYLLM_CACHE"

//go:embed tinyqwen-chat/config.json tinyqwen-chat/generation_config.json
//go:embed tinyqwen-chat/model.safetensors
//go:embed tinyqwen-chat/tokenizer.json tinyqwen-chat/tokenizer_config.json
//go:embed tinyqwen-chat-4bit/config.json tinyqwen-chat-4bit/generation_config.json
//go:embed tinyqwen-chat-4bit/model.safetensors tinyqwen-chat-4bit/model.safetensors.index.json
//go:embed tinyqwen-chat-4bit/tokenizer.json tinyqwen-chat-4bit/tokenizer_config.json
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

// Open4Bit is Open for the 4-bit sibling (Name4Bit), unpacked beside the
// shipped model in the same cache folder.
func Open4Bit() (dir string, notes []string, err error) {
	root, err := cacheRoot()
	if err != nil {
		return "", nil, err
	}
	return unpack(root, files, Name4Bit)
}
