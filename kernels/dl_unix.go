//go:build (linux && (amd64 || arm64)) || darwin

package kernels

import (
	"unsafe"

	"github.com/ebitengine/purego"
)

// call invokes a C function by address with integer/pointer arguments and
// returns its int result (a CUresult, an nvrtcResult). The go:uintptrescapes
// directive makes any Go object whose address is converted to uintptr in the
// call expression live on the heap, where it cannot move during the call.
//
//go:uintptrescapes
func call(fn uintptr, args ...uintptr) int32 {
	r, _, _ := purego.SyscallN(fn, args...)
	return int32(r)
}

// callPtr is call for functions that return a pointer.
//
//go:uintptrescapes
func callPtr(fn uintptr, args ...uintptr) uintptr {
	r, _, _ := purego.SyscallN(fn, args...)
	return r
}

// goString copies the NUL-terminated C string at p.
func goString(p uintptr) string {
	if p == 0 {
		return ""
	}
	ptr := *(*unsafe.Pointer)(unsafe.Pointer(&p))
	n := 0
	for *(*byte)(unsafe.Add(ptr, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(ptr), n))
}

// cString is s with a terminating NUL, for passing to C.
func cString(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}
