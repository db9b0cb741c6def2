package main

import (
	"os"
	"strings"
	"syscall"
)

// keepFreedPages restarts the program, once, with GODEBUG=madvdontneed=0
// added to its environment, unless GODEBUG already sets madvdontneed.
//
// Why: the collector is paced for a small heap (heap.go), so a prefill
// frees tens of MB of activations several times over, and Go hands the
// freed pages back to the kernel with MADV_DONTNEED. The next activation
// that lands on such a page faults it in again, zeroed by the kernel:
// on Qwen2-0.5B, a 128-token prefill took some 27 000 page faults and
// 0.15–0.4 CPU-seconds of system time that way. With MADV_FREE
// (madvdontneed=0) the kernel reclaims the pages only when it runs short
// of memory, and until then reusing them costs nothing: in alternating
// runs on a 2-core AVX2 machine the prefill went from 107–114 to 142–157
// tokens per second. The price is memory: pages freed this way count
// towards the resident set until the kernel takes them, so the peak is
// the heap's high-water mark in full (after a 2048-token prompt, about
// 12 MB more than before; heap.go's pacing has the numbers). The setting
// is read when a Go program starts, hence the restart; where that fails
// the program runs on as is.
func keepFreedPages() {
	if strings.Contains(os.Getenv("GODEBUG"), "madvdontneed") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	godebug := "madvdontneed=0"
	if v := os.Getenv("GODEBUG"); v != "" {
		godebug = v + "," + godebug
	}
	env := append(os.Environ(), "GODEBUG="+godebug)
	_ = syscall.Exec(exe, os.Args, env) // returns only on failure
}
