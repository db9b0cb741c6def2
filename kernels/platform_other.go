//go:build !(linux && (amd64 || arm64)) && !darwin

package kernels

import "fmt"

const platformBackend = ""

func openPlatform() (backend, error) {
	return nil, fmt.Errorf("%w: this platform has no supported GPU backend (CUDA needs linux/amd64 or linux/arm64, Metal needs macOS)", ErrNoDevice)
}

// CheckCUDASource needs NVRTC, which the CUDA backend loads on Linux only.
func CheckCUDASource(src, arch string, opts ...string) error {
	return fmt.Errorf("%w: CUDA sources are compiled on Linux only", ErrNoCompiler)
}
