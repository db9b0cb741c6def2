//go:build !unix

package safetensors

// mapFile reads the whole file on platforms without a Unix mmap (Windows,
// WebAssembly). Everything else works the same; the tensors just live on
// the heap instead of in the page cache.
func mapFile(path string) (mapping, error) {
	return readWhole(path)
}
