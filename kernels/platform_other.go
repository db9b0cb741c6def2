//go:build !(linux && (amd64 || arm64)) && !darwin

package kernels

import "fmt"

const platformBackend = ""

func openPlatform() (backend, error) {
	return nil, fmt.Errorf("%w: this platform has no supported GPU backend (CUDA needs linux/amd64 or linux/arm64, Metal needs macOS)", ErrNoDevice)
}
