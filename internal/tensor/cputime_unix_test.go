//go:build unix

package tensor

import "syscall"

// processCPUSeconds is the CPU time (user and system) this process has
// used so far, all threads together.
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
