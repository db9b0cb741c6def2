//go:build !linux && !darwin

package bench

// PeakRSS would return the peak resident memory of the process; this
// platform has no implementation, so it returns 0 ("unknown").
func PeakRSS() int64 { return 0 }
