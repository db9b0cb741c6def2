//go:build !amd64 && !arm64

package tensor

// archKernels: this architecture has no assembly kernels; the portable Go
// ones run.
func archKernels() []*kernelSet { return nil }
