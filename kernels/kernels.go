// Package kernels is the course's GPU kernel runtime: one small API over a GPU
// device — open it, allocate and copy buffers, compile kernel source at run
// time, launch kernels with a grid and block shape, synchronise, and time with
// device events — with two backends, both loaded through purego without cgo:
//
//   - CUDA on Linux: the driver API of libcuda.so.1, kernels compiled from CUDA
//     C++ source (.cu) by NVRTC (libnvrtc.so of whatever major version is
//     installed).
//   - Metal on macOS: Metal.framework through purego/objc, kernels compiled
//     from Metal Shading Language source (.metal) by newLibraryWithSource.
//
// On a machine with neither, Open returns an error that wraps ErrNoDevice, and
// GPU checks report by name that they did not run (see kernels/kerneltest).
//
// The model is CUDA's: a launch runs Grid.X·Grid.Y·Grid.Z blocks (Metal:
// threadgroups) of Block.X·Block.Y·Block.Z threads each. Kernel arguments are
// passed in order: a *Buffer becomes a device pointer (CUDA) or the buffer
// bound at [[buffer(i)]] (Metal); a Go scalar (int32, uint32, int64, uint64,
// float32, float64) is passed by value (CUDA) or as the constant bytes at
// [[buffer(i)]] (Metal). CUDA kernels must be declared extern "C" so that
// their names are not mangled.
//
// A Device is safe for use by several goroutines: every call takes the
// device's lock and, for CUDA, binds the device's context to the calling OS
// thread for the duration of the call. Buffers, modules and events are freed
// deterministically by their Free/Close methods; Device.Close frees whatever
// is still live.
package kernels

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"
)

// ErrNoDevice is wrapped by Open's error when this machine has no usable GPU
// (no driver library, no device, or no run-time compiler).
var ErrNoDevice = errors.New("no GPU device")

// ErrNoCompiler is wrapped by CheckCUDASource's error when this machine has
// no NVRTC (or is not a Linux machine, where the CUDA backend lives).
var ErrNoCompiler = errors.New("no CUDA compiler")

// Backend names.
const (
	CUDA  = "cuda"
	Metal = "metal"
)

// Dim3 is a grid or block shape. Zero components count as 1.
type Dim3 struct{ X, Y, Z int }

// D1 is a one-dimensional shape.
func D1(x int) Dim3 { return Dim3{X: x, Y: 1, Z: 1} }

func (d Dim3) norm() Dim3 {
	if d.Y == 0 {
		d.Y = 1
	}
	if d.Z == 0 {
		d.Z = 1
	}
	return d
}

// Count is X·Y·Z.
func (d Dim3) Count() int { d = d.norm(); return d.X * d.Y * d.Z }

// LaunchConfig is the shape of one launch.
type LaunchConfig struct {
	Grid  Dim3 // blocks (CUDA) or threadgroups (Metal) per grid
	Block Dim3 // threads per block / threadgroup
	// SharedMem is the dynamic shared memory per block in bytes: CUDA's
	// `extern __shared__` array, Metal's threadgroup buffer at
	// [[threadgroup(0)]].
	SharedMem int
	// Overlap lets the kernel start before the launch ahead of it has
	// finished, while a graph is being captured on a GPU that can (CUDA
	// programmatic dependent launch, compute capability 9.0 and later):
	// its blocks are scheduled during the other's last ones, so the gap
	// between two small kernels shrinks. The kernel must wait for the
	// launch ahead (PTX griddepcontrol.wait) before it reads anything that
	// launch writes. Elsewhere the launch is a plain one.
	Overlap bool
}

// Blocks returns the number of blocks of size block needed to cover n
// elements: ceil(n / block).
func Blocks(n, block int) int { return (n + block - 1) / block }

// Balance is how evenly a launch of grid blocks, which take items equal
// pieces of work in turn (item i by block i mod grid), spreads them over
// sms multiprocessors: the average work a multiprocessor does over the
// most one does (1 when even). It bounds a memory-bound launch, whose time
// is the busiest multiprocessor's: 592 one-shot blocks on 132
// multiprocessors leave some with 5 and others with 4, 0.90.
func Balance(items, grid, sms int) float64 {
	if items <= 0 || grid <= 0 || sms <= 0 {
		return 0
	}
	grid = min(grid, items)
	most := Blocks(grid, sms) * Blocks(items, grid)
	return float64(items) / float64(sms) / float64(most)
}

// Info describes a device.
type Info struct {
	Backend            string // CUDA or Metal
	Name               string // e.g. "NVIDIA H100 80GB HBM3", "Apple M2 Pro"
	Memory             int64  // bytes of device memory (Metal: recommended working set)
	ComputeCapability  string // CUDA "9.0"; "" on Metal
	Multiprocessors    int    // CUDA SMs; 0 where unknown
	MaxThreadsPerBlock int    // device limit; a kernel's own may be lower (Kernel.MaxThreadsPerBlock)
	MaxSharedMemory    int    // bytes of shared/threadgroup memory one block may use
	WarpSize           int    // CUDA warp size; Metal: 0 (see the kernel's SIMD width)
	Driver             string // driver and compiler versions, for reports
	// Overlap says whether a launch with LaunchConfig.Overlap inside a
	// captured graph may start before the launch ahead of it ends (CUDA
	// compute capability 9.0 and later, with cuLaunchKernelEx).
	Overlap bool
}

// Stats counts what a device holds live; a leak shows up here.
type Stats struct {
	Buffers     int
	BufferBytes int64
	Modules     int
	Events      int
	Graphs      int
}

// imageBuilder is what a backend implements when its compiler can run
// without the Device's lock: buildImage turns source into machine code and
// is safe to call from several goroutines at once (NVRTC compiles separate
// programs concurrently); loadImage, called with the lock held, loads it
// as a module. Device.Compile then uses these instead of compile.
type imageBuilder interface {
	buildImage(src string, opts []string) ([]byte, error)
	loadImage(image []byte) (uintptr, error)
}

// backend is what a platform implements. Every method is called with the
// Device's lock held.
type backend interface {
	info() Info
	alloc(bytes int) (uintptr, error)
	free(h uintptr) error
	write(dst uintptr, off int, src unsafe.Pointer, n int) error
	read(dst unsafe.Pointer, src uintptr, off int, n int) error
	copyDtoD(dst uintptr, dstOff int, src uintptr, srcOff int, n int) error
	memset(dst uintptr, off int, b byte, n int) error
	compile(src string, opts []string) (uintptr, error)
	unload(mod uintptr) error
	function(mod uintptr, name string) (fn uintptr, maxThreads int, err error)
	launch(fn uintptr, maxThreads int, cfg LaunchConfig, args []any) error
	sync() error
	newEvent() (uintptr, error)
	record(ev uintptr) error
	elapsed(start, end uintptr) (time.Duration, error)
	freeEvent(ev uintptr) error
	memInfo() (free, total int64, err error)
	// Graphs: beginCapture makes the launches that follow recorded, not
	// run, until endCapture, which returns the graph (or nothing, with
	// discard); graphLaunch queues a graph's launches as one unit.
	beginCapture() error
	endCapture(discard bool) (uintptr, error)
	graphLaunch(h uintptr) error
	graphFree(h uintptr) error
	close() error
}

// Open opens the best GPU of this machine: CUDA device 0 on Linux, the
// system default Metal device on macOS. The environment variable
// TINYLLM_DEVICE=cpu makes it report ErrNoDevice (to test the CPU path on a
// GPU machine); TINYLLM_CUDA_DEVICE=N picks another CUDA ordinal.
func Open() (*Device, error) {
	if v := strings.ToLower(os.Getenv("TINYLLM_DEVICE")); v == "cpu" || v == "none" {
		return nil, fmt.Errorf("%w: TINYLLM_DEVICE=%s", ErrNoDevice, v)
	}
	b, err := openPlatform()
	if err != nil {
		return nil, err
	}
	return newDevice(b), nil
}

// Backend returns the backend this platform would use ("cuda", "metal"), or
// "" where there is none. It opens nothing.
func PlatformBackend() string { return platformBackend }

// ValidateConfig checks the parts of a launch configuration that every
// backend rejects: non-positive dimensions and negative shared memory.
// Limits that depend on the device or kernel are left to the driver.
func validateConfig(cfg LaunchConfig) error {
	g, b := cfg.Grid.norm(), cfg.Block.norm()
	if g.X <= 0 || g.Y <= 0 || g.Z <= 0 {
		return fmt.Errorf("grid %dx%dx%d: every dimension must be at least 1", g.X, g.Y, g.Z)
	}
	if b.X <= 0 || b.Y <= 0 || b.Z <= 0 {
		return fmt.Errorf("block %dx%dx%d: every dimension must be at least 1", b.X, b.Y, b.Z)
	}
	if cfg.SharedMem < 0 {
		return fmt.Errorf("shared memory %d bytes: must not be negative", cfg.SharedMem)
	}
	return nil
}

// DriverError is a failing driver or compiler call: its name, the driver's
// code and message.
type DriverError struct {
	Call string
	Code int
	Msg  string
}

func (e *DriverError) Error() string { return e.Call + ": " + e.Msg }

// CompileError is a kernel that did not compile; Log is the compiler's output.
type CompileError struct {
	Backend string
	Msg     string
	Log     string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("%s compile failed: %s\n%s", e.Backend, e.Msg, strings.TrimRight(e.Log, "\n\x00 "))
}
