//go:build unix && !linux

package safetensors

// dontNeed does nothing where the syscall package has no madvise: the
// pages of a copied tensor stay resident until the file is closed.
func dontNeed([]byte) {}
