package bench

import "syscall"

// PeakRSS returns the most resident memory this process has used so far,
// in bytes (getrusage's ru_maxrss, which macOS reports in bytes). It
// returns 0 if it cannot tell.
func PeakRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss
}
