package day7

// Task 2: a first GPU kernel, y = a·x + b·y, through the course's kernel
// runtime (package kernels): the kernel bodies are in axpby.cu and
// axpby.metal, the Go side compiles and launches them.

import (
	_ "embed"
	"fmt"

	"github.com/tinyllm-go/tinyllm/kernels"
)

//go:embed axpby.cu
var axpbyCUDA string

//go:embed axpby.metal
var axpbyMetal string

// AxpbyBlock is the number of threads per block that Run launches with.
const AxpbyBlock = 256

// AxpbySource returns this folder's axpby kernel source for a backend: the
// text of axpby.cu for kernels.CUDA, of axpby.metal for kernels.Metal, and ""
// for anything else. (Provided.)
func AxpbySource(backend string) string {
	switch backend {
	case kernels.CUDA:
		return axpbyCUDA
	case kernels.Metal:
		return axpbyMetal
	}
	return ""
}

// Axpby is the axpby kernel compiled for one device.
type Axpby struct {
	dev    *kernels.Device
	module *kernels.Module
	kernel *kernels.Kernel
}

// NewAxpby compiles AxpbySource(dev.Backend()) on dev and looks up the
// kernel named "axpby" in it. A compile error is returned as it is: it
// carries the compiler's log.
func NewAxpby(dev *kernels.Device) (*Axpby, error) {
	src := AxpbySource(dev.Backend())
	if src == "" {
		return nil, fmt.Errorf("no axpby kernel for backend %q", dev.Backend())
	}
	m, err := dev.Compile(src)
	if err != nil {
		return nil, err
	}
	k, err := m.Kernel("axpby")
	if err != nil {
		m.Close()
		return nil, err
	}
	return &Axpby{dev: dev, module: m, kernel: k}, nil
}

// Run computes y[i] = a·x[i] + b·y[i] for every i < n on the device, in
// place in y, and waits for the result. It launches one thread per element,
// AxpbyBlock threads per block and just enough blocks to cover n, passing
// the kernel's arguments in its order: a, x, b, y, and n as a uint32.
func (k *Axpby) Run(a float32, x *kernels.Buffer, b float32, y *kernels.Buffer, n int) error {
	if n <= 0 {
		return nil
	}
	if x.Size() < 4*n || y.Size() < 4*n {
		return fmt.Errorf("axpby of %d elements: x has %d bytes, y %d, want at least %d", n, x.Size(), y.Size(), 4*n)
	}
	cfg := kernels.LaunchConfig{
		Grid:  kernels.D1(kernels.Blocks(n, AxpbyBlock)),
		Block: kernels.D1(AxpbyBlock),
	}
	if err := k.dev.Launch(k.kernel, cfg, a, x, b, y, uint32(n)); err != nil {
		return err
	}
	return k.dev.Synchronize()
}

// Close unloads the compiled kernel. (Provided.)
func (k *Axpby) Close() error {
	if k.module == nil {
		return nil
	}
	return k.module.Close()
}
