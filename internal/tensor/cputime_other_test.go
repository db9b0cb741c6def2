//go:build !unix

package tensor

// processCPUSeconds is not measured on this system: the benchmarks that
// use it report only their wall-clock rates.
func processCPUSeconds() float64 { return 0 }
