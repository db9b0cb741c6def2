//go:build unix

package safetensors

import (
	"fmt"
	"syscall"
	"unsafe"

	"github.com/tinyllm-go/tinyllm/internal/boundedfile"
)

// mmapping is a private, copy-on-write memory map of a whole file. It is
// mapped writable so that a write through a tensor view changes this
// process's copy of the page instead of crashing with SIGSEGV; the file on
// disk is never modified.
type mmapping struct{ b []byte }

func (m *mmapping) bytes() []byte { return m.b }

// release drops the whole pages inside b from this process's memory. The
// mapping is private: a page that was never written is read from the file
// again on the next access; none of these was written (they were copied).
func (m *mmapping) release(b []byte) {
	if len(b) == 0 {
		return
	}
	if lo, hi := wholePages(m.b, b); hi > lo {
		dontNeed(m.b[lo:hi])
	}
}

// wholePages returns the offsets in all (page-aligned) of the first and
// past the last whole page inside b, a part of all.
func wholePages(all, b []byte) (lo, hi int) {
	page := uintptr(syscall.Getpagesize())
	base := uintptr(unsafe.Pointer(&all[0]))
	l := uintptr(unsafe.Pointer(&b[0])) - base
	h := l + uintptr(len(b))
	return int((l + page - 1) &^ (page - 1)), int(h &^ (page - 1))
}

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
	if hugePages.Load() {
		if m, err := readHuge(f, int(size)); m != nil || err != nil {
			return m, err
		}
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	return &mmapping{b: b}, nil
}
