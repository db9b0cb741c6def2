//go:build unix

package safetensors

import (
	"fmt"
	"syscall"

	"github.com/tinyllm-go/tinyllm/internal/boundedfile"
)

// mmapping is a private, copy-on-write memory map of a whole file. It is
// mapped writable so that a write through a tensor view changes this
// process's copy of the page instead of crashing with SIGSEGV; the file on
// disk is never modified.
type mmapping struct{ b []byte }

func (m *mmapping) bytes() []byte { return m.b }

func (m *mmapping) close() error {
	if m.b == nil {
		return nil
	}
	err := syscall.Munmap(m.b)
	m.b = nil
	return err
}

func mapFile(path string) (mapping, error) {
	// A named pipe or a device under a .safetensors name is refused before
	// anything is read from it: it would block, or never end.
	f, st, err := boundedfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping stays valid after the descriptor is closed
	size := st.Size()
	if size == 0 {
		// mmap rejects an empty length; Open reports the file as too short.
		return &readMapping{}, nil
	}
	if int64(int(size)) != size || size < 0 {
		return nil, fmt.Errorf("%s: %d bytes is too large to map on this platform", path, size)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	return &mmapping{b: b}, nil
}
