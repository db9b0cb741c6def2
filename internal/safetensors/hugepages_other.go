//go:build unix && !linux

package safetensors

import "os"

// readHuge has no huge pages to offer outside Linux: the file is mapped
// as usual (nil).
func readHuge(*os.File, int) (mapping, error) { return nil, nil }
