package safetensors

import "syscall"

// dontNeed drops the pages of b from this process's memory. It is only a
// hint: if it fails, the pages simply stay resident.
func dontNeed(b []byte) { _ = syscall.Madvise(b, syscall.MADV_DONTNEED) }
