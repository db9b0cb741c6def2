package safetensors

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"unsafe"
)

// hugeMapping is a file read into anonymous memory advised to use huge
// pages (UseHugePages). fd stays open so that released pages can be
// mapped back from the file.
type hugeMapping struct {
	b  []byte
	fd int
}

// thpOff reports whether the kernel's transparent huge pages are switched
// off ("[never]"): then reading the file into memory would only cost time.
var thpOff = func() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && strings.Contains(string(b), "[never]")
}()

// fitsInMemory reports whether size bytes take at most half the memory the
// kernel says is available (MemAvailable): a copy is memory the kernel
// cannot drop the way it drops a mapped file's pages, so a checkpoint that
// would crowd the machine (a 7B model bound for a GPU on a small host)
// stays mapped.
func fitsInMemory(size int) bool {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb); err != nil {
				return false
			}
			return int64(size) <= kb*1024/2
		}
	}
	return false
}

// readHuge reads the size bytes of f into a new huge-page mapping, or
// returns nil (map the file instead) where the kernel has no huge pages
// to give.
func readHuge(f *os.File, size int) (mapping, error) {
	if thpOff || !fitsInMemory(size) {
		return nil, nil
	}
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", f.Name(), err)
	}
	// Only a hint: without transparent huge pages the memory works the same.
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	for off := 0; off < size; {
		n, err := f.ReadAt(b[off:min(size, off+8<<20)], int64(off))
		off += n
		if err != nil && off < size {
			_ = syscall.Munmap(b)
			return nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
	}
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		_ = syscall.Munmap(b)
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return &hugeMapping{b: b, fd: fd}, nil
}

func (m *hugeMapping) bytes() []byte { return m.b }

// release maps the file's pages over the whole pages inside b: the memory
// they held goes back to the operating system, and a later read faults the
// file's bytes in again, as for a memory-mapped file.
func (m *hugeMapping) release(b []byte) {
	lo, hi := wholePages(m.b, b)
	if hi <= lo {
		return
	}
	_, _, _ = syscall.Syscall6(syscall.SYS_MMAP, uintptr(unsafe.Pointer(&m.b[lo])), uintptr(hi-lo),
		syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_FIXED, uintptr(m.fd), uintptr(lo))
}

func (m *hugeMapping) close() error {
	if m.b == nil {
		return nil
	}
	err := syscall.Munmap(m.b)
	m.b = nil
	if cerr := syscall.Close(m.fd); err == nil {
		err = cerr
	}
	return err
}
