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
// on Qwen2-0.5B, a 128-token prefill took some 30 000 page faults and a
// quarter of a CPU-second of system time that way, a fifth of its time.
// With MADV_FREE (madvdontneed=0) the kernel reclaims the pages only when
// it runs short of memory, and until then reusing them costs nothing.
// Peak RSS does not change: it is set by the heap's high-water mark, which
// the pacing keeps where it was. The setting is read when a Go program
// starts, hence the restart; where that fails the program runs on as is.
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
