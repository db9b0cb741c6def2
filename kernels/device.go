package kernels

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// ErrClosed is returned for a call on a closed device or a freed object.
var ErrClosed = errors.New("kernels: device closed or object freed")

// Device is an open GPU. Its methods are safe for concurrent use.
type Device struct {
	mu      sync.Mutex
	b       backend
	inf     Info
	closed  bool
	buffers map[*Buffer]struct{}
	modules map[*Module]struct{}
	events  map[*Event]struct{}
	graphs  map[*Graph]struct{}
	bytes   int64
	// launches counts the kernel launches queued (or recorded) so far.
	launches int64
	// capturing is set between the two halves of Capture: launches are
	// recorded, not run, and whatever would wait for the device or order
	// a copy with the launches is refused.
	capturing bool
}

func newDevice(b backend) *Device {
	return &Device{
		b: b, inf: b.info(),
		buffers: map[*Buffer]struct{}{},
		modules: map[*Module]struct{}{},
		events:  map[*Event]struct{}{},
		graphs:  map[*Graph]struct{}{},
	}
}

// lock takes the device's lock and pins the goroutine to its OS thread, so
// that a backend which binds a context per thread (CUDA) sees one thread for
// the whole call. The returned function undoes both.
func (d *Device) lock() (func(), error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, ErrClosed
	}
	runtime.LockOSThread()
	return func() {
		runtime.UnlockOSThread()
		d.mu.Unlock()
	}, nil
}

// ErrCapturing is returned for a copy, a synchronisation or an event
// between the start and the end of Capture: on CUDA such a call on the
// NULL stream would break the capture, and none of them can be part of a
// graph.
var ErrCapturing = errors.New("kernels: not allowed while a graph is being captured (only launches are)")

// lockIdle is lock for the calls that are refused while capturing.
func (d *Device) lockIdle() (func(), error) {
	unlock, err := d.lock()
	if err != nil {
		return nil, err
	}
	if d.capturing {
		unlock()
		return nil, ErrCapturing
	}
	return unlock, nil
}

// Info describes the device.
func (d *Device) Info() Info { return d.inf }

// Backend is "cuda" or "metal".
func (d *Device) Backend() string { return d.inf.Backend }

// String is the device's name and backend.
func (d *Device) String() string { return fmt.Sprintf("%s (%s)", d.inf.Name, d.inf.Backend) }

// Stats counts the live buffers, modules and events.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Stats{Buffers: len(d.buffers), BufferBytes: d.bytes, Modules: len(d.modules), Events: len(d.events), Graphs: len(d.graphs)}
}

// MemInfo returns the free and total device memory in bytes, as the driver
// reports them (Metal: the current allocation against the recommended
// working set).
func (d *Device) MemInfo() (free, total int64, err error) {
	unlock, err := d.lock()
	if err != nil {
		return 0, 0, err
	}
	defer unlock()
	return d.b.memInfo()
}

// Close frees every live buffer, module and event, then releases the device.
// It is safe to call twice.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	runtime.LockOSThread()
	defer func() {
		runtime.UnlockOSThread()
		d.mu.Unlock()
	}()
	var errs []error
	if d.capturing {
		_, err := d.b.endCapture(true)
		errs = append(errs, err)
		d.capturing = false
	}
	errs = append(errs, d.b.sync())
	for g := range d.graphs {
		errs = append(errs, d.b.graphFree(g.h))
		g.h = 0
	}
	clear(d.graphs)
	for e := range d.events {
		errs = append(errs, d.b.freeEvent(e.h))
		e.h = 0
	}
	for m := range d.modules {
		errs = append(errs, d.b.unload(m.h))
		m.h = 0
	}
	for b := range d.buffers {
		errs = append(errs, d.b.free(b.h))
		b.h = 0
	}
	clear(d.events)
	clear(d.modules)
	clear(d.buffers)
	d.bytes = 0
	errs = append(errs, d.b.close())
	d.closed = true
	return errors.Join(errs...)
}

// Synchronize waits until all work launched on the device has finished and
// returns the first error a kernel raised while running.
func (d *Device) Synchronize() error {
	unlock, err := d.lockIdle()
	if err != nil {
		return err
	}
	defer unlock()
	return d.b.sync()
}

// Buffer is device memory. Free it with Free (or let Device.Close do it).
type Buffer struct {
	d    *Device
	h    uintptr // CUdeviceptr or id<MTLBuffer>
	size int
}

// Size is the buffer's length in bytes.
func (b *Buffer) Size() int { return b.size }

// Device is the device the buffer lives on.
func (b *Buffer) Device() *Device { return b.d }

// Alloc allocates bytes of device memory. Its content is undefined.
func (d *Device) Alloc(bytes int) (*Buffer, error) {
	if bytes <= 0 {
		return nil, fmt.Errorf("kernels: Alloc(%d): size must be positive", bytes)
	}
	unlock, err := d.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	h, err := d.b.alloc(bytes)
	if err != nil {
		return nil, err
	}
	buf := &Buffer{d: d, h: h, size: bytes}
	d.buffers[buf] = struct{}{}
	d.bytes += int64(bytes)
	return buf, nil
}

// Free releases the buffer's memory now. Freeing twice is an error-free no-op.
func (b *Buffer) Free() error {
	d := b.d
	unlock, err := d.lock()
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil // Close freed it
		}
		return err
	}
	defer unlock()
	if b.h == 0 {
		return nil
	}
	err = d.b.free(b.h)
	delete(d.buffers, b)
	d.bytes -= int64(b.size)
	b.h = 0
	return err
}

func (b *Buffer) check(off, n int) error {
	if b == nil || b.h == 0 {
		return ErrClosed
	}
	if off < 0 || n < 0 || off+n > b.size {
		return fmt.Errorf("kernels: bytes [%d, %d) are outside a buffer of %d bytes", off, off+n, b.size)
	}
	return nil
}

// Fill sets every byte of the buffer to v (0xFF makes NaN float32s, a good
// poison for outputs).
func (b *Buffer) Fill(v byte) error {
	unlock, err := b.d.lockIdle()
	if err != nil {
		return err
	}
	defer unlock()
	if err := b.check(0, b.size); err != nil {
		return err
	}
	return b.d.b.memset(b.h, 0, v, b.size)
}

// Copy copies n bytes from src to dst on the device (both on the same device).
func Copy(dst *Buffer, dstOff int, src *Buffer, srcOff int, n int) error {
	if dst.d != src.d {
		return errors.New("kernels: Copy between buffers of different devices")
	}
	unlock, err := dst.d.lockIdle()
	if err != nil {
		return err
	}
	defer unlock()
	if err := dst.check(dstOff, n); err != nil {
		return err
	}
	if err := src.check(srcOff, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return dst.d.b.copyDtoD(dst.h, dstOff, src.h, srcOff, n)
}

// Elem is an element type the typed copies accept. bf16 and f16 travel as
// uint16 bit patterns.
type Elem interface {
	~float32 | ~uint16 | ~uint32 | ~int32 | ~float64 | ~uint8 | ~int64 | ~uint64
}

// Write copies src into the buffer, starting at element offset off. It waits
// for earlier work on the device first, so a kernel still reading the buffer
// sees the old values.
func Write[T Elem](b *Buffer, off int, src []T) error {
	var z T
	sz := int(unsafe.Sizeof(z))
	unlock, err := b.d.lockIdle()
	if err != nil {
		return err
	}
	defer unlock()
	if err := b.check(off*sz, len(src)*sz); err != nil {
		return err
	}
	if len(src) == 0 {
		return nil
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(&src[0])
	return b.d.b.write(b.h, off*sz, unsafe.Pointer(&src[0]), len(src)*sz)
}

// Read copies len(dst) elements out of the buffer, starting at element
// offset off, after all work launched before it has finished.
func Read[T Elem](dst []T, b *Buffer, off int) error {
	var z T
	sz := int(unsafe.Sizeof(z))
	unlock, err := b.d.lockIdle()
	if err != nil {
		return err
	}
	defer unlock()
	if err := b.check(off*sz, len(dst)*sz); err != nil {
		return err
	}
	if len(dst) == 0 {
		return nil
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	pin.Pin(&dst[0])
	return b.d.b.read(unsafe.Pointer(&dst[0]), b.h, off*sz, len(dst)*sz)
}

// Upload allocates a buffer holding a copy of src.
func Upload[T Elem](d *Device, src []T) (*Buffer, error) {
	var z T
	n := len(src) * int(unsafe.Sizeof(z))
	if n == 0 {
		n = 1 // a valid, empty-ish buffer
	}
	b, err := d.Alloc(n)
	if err != nil {
		return nil, err
	}
	if err := Write(b, 0, src); err != nil {
		b.Free()
		return nil, err
	}
	return b, nil
}

// Download returns the buffer's first n elements.
func Download[T Elem](b *Buffer, n int) ([]T, error) {
	out := make([]T, n)
	if err := Read(out, b, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// Module is compiled kernel source. Close it to unload it.
type Module struct {
	d *Device
	h uintptr // CUmodule or id<MTLLibrary>
}

// Kernel is one function of a module, ready to launch.
type Kernel struct {
	m          *Module
	name       string
	h          uintptr // CUfunction or id<MTLComputePipelineState>
	maxThreads int
	// Metal keeps the pipeline per kernel; it is released with the module.
}

// Name is the kernel's name in its source.
func (k *Kernel) Name() string { return k.name }

// MaxThreadsPerBlock is the largest block this kernel can be launched with
// on this device (it can be lower than the device's limit when the kernel
// uses many registers).
func (k *Kernel) MaxThreadsPerBlock() int { return k.maxThreads }

// Compile compiles kernel source for this device: CUDA C++ with NVRTC, or
// Metal Shading Language. opts are passed to the compiler (NVRTC options such
// as "-use_fast_math"; ignored by Metal); "--gpu-architecture=sm_90a"
// replaces the device's own architecture, for instructions that only an
// architecture-specific target has. A compile error carries the compiler's
// log.
//
// On CUDA the compiler runs without the device's lock (only loading the
// machine code takes it), so goroutines that compile different sources
// at once keep as many CPUs busy: a test that warms a few hundred builds
// does so in a fraction of the time.
func (d *Device) Compile(source string, opts ...string) (*Module, error) {
	var image []byte
	ib, prebuild := d.b.(imageBuilder)
	if prebuild {
		d.mu.Lock()
		closed := d.closed
		d.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		var err error
		if image, err = ib.buildImage(source, opts); err != nil {
			return nil, err
		}
	}
	unlock, err := d.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	var h uintptr
	if prebuild {
		h, err = ib.loadImage(image)
	} else {
		h, err = d.b.compile(source, opts)
	}
	if err != nil {
		return nil, err
	}
	m := &Module{d: d, h: h}
	d.modules[m] = struct{}{}
	return m, nil
}

// Kernel looks a kernel up by name.
func (m *Module) Kernel(name string) (*Kernel, error) {
	unlock, err := m.d.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if m.h == 0 {
		return nil, ErrClosed
	}
	h, maxThreads, err := m.d.b.function(m.h, name)
	if err != nil {
		return nil, err
	}
	return &Kernel{m: m, name: name, h: h, maxThreads: maxThreads}, nil
}

// Close unloads the module; its kernels can no longer be launched.
func (m *Module) Close() error {
	unlock, err := m.d.lock()
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil
		}
		return err
	}
	defer unlock()
	if m.h == 0 {
		return nil
	}
	err = m.d.b.unload(m.h)
	delete(m.d.modules, m)
	m.h = 0
	return err
}

// Launch queues kernel k with the given shape and arguments and returns
// without waiting for it. Arguments are *Buffer, int32, uint32, int64,
// uint64, float32 or float64 (a plain int is rejected: say which width the
// kernel takes). A configuration the device cannot run (a block larger than
// the kernel's limit, too much shared memory, a grid too large) is an error
// here; a fault while the kernel runs is reported by the next Synchronize or
// Read.
func (d *Device) Launch(k *Kernel, cfg LaunchConfig, args ...any) error {
	if err := validateConfig(cfg); err != nil {
		return fmt.Errorf("kernels: launch %s: %w", k.name, err)
	}
	for i, a := range args {
		switch v := a.(type) {
		case *Buffer:
			if v == nil || v.h == 0 {
				return fmt.Errorf("kernels: launch %s: argument %d is a nil or freed buffer", k.name, i)
			}
			if v.d != d {
				return fmt.Errorf("kernels: launch %s: argument %d is a buffer of another device", k.name, i)
			}
		case int32, uint32, int64, uint64, float32, float64:
		default:
			return fmt.Errorf("kernels: launch %s: argument %d has type %T; use *Buffer, int32, uint32, int64, uint64, float32 or float64", k.name, i, a)
		}
	}
	unlock, err := d.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if k.m.h == 0 {
		return fmt.Errorf("kernels: launch %s: %w", k.name, ErrClosed)
	}
	if err := d.b.launch(k.h, k.maxThreads, cfg, args); err != nil {
		return fmt.Errorf("kernels: launch %s (grid %v, block %v, shared %d B): %w", k.name, cfg.Grid.norm(), cfg.Block.norm(), cfg.SharedMem, err)
	}
	d.launches++
	return nil
}

// LaunchCount is the number of kernel launches made on the device so far,
// recorded ones included (a graph's replays are not counted again): the
// difference over a piece of work is how many launches it takes.
func (d *Device) LaunchCount() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.launches
}

// Event is a point in the device's stream of work, for timing.
type Event struct {
	d *Device
	h uintptr
}

// NewEvent makes an event. Free it with Free.
func (d *Device) NewEvent() (*Event, error) {
	unlock, err := d.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	h, err := d.b.newEvent()
	if err != nil {
		return nil, err
	}
	e := &Event{d: d, h: h}
	d.events[e] = struct{}{}
	return e, nil
}

// Record marks the point after all work launched so far.
func (e *Event) Record() error {
	unlock, err := e.d.lockIdle()
	if err != nil {
		return err
	}
	defer unlock()
	if e.h == 0 {
		return ErrClosed
	}
	return e.d.b.record(e.h)
}

// Elapsed waits for end and returns the device time between start and end.
func Elapsed(start, end *Event) (time.Duration, error) {
	if start.d != end.d {
		return 0, errors.New("kernels: Elapsed between events of different devices")
	}
	unlock, err := start.d.lockIdle()
	if err != nil {
		return 0, err
	}
	defer unlock()
	if start.h == 0 || end.h == 0 {
		return 0, ErrClosed
	}
	return start.d.b.elapsed(start.h, end.h)
}

// Free destroys the event.
func (e *Event) Free() error {
	unlock, err := e.d.lock()
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil
		}
		return err
	}
	defer unlock()
	if e.h == 0 {
		return nil
	}
	err = e.d.b.freeEvent(e.h)
	delete(e.d.events, e)
	e.h = 0
	return err
}

// Graph is a recorded sequence of kernel launches that the device replays
// as one unit: on CUDA an executable CUDA graph (stream capture, then
// cuGraphInstantiate; cuGraphLaunch replays it), on Metal the recorded
// dispatches encoded into one command buffer. A launch's arguments are
// fixed when it is recorded, buffers and scalars alike: what must change
// from one replay to the next has to be read by the kernels from device
// memory. Free it with Free (or let Device.Close do it).
type Graph struct {
	d *Device
	h uintptr
}

// Capture records the kernel launches fn makes on this device into a
// Graph, without running them. Between its start and its end only
// launches are allowed: a copy, a read, a fill, an event or a
// synchronisation returns ErrCapturing (fn should return that error). Any
// error of fn discards the capture and is returned. The buffers the
// launches use must stay allocated for as long as the graph is used.
func (d *Device) Capture(fn func() error) (*Graph, error) {
	unlock, err := d.lockIdle()
	if err != nil {
		return nil, err
	}
	err = d.b.beginCapture()
	if err == nil {
		d.capturing = true
	}
	unlock()
	if err != nil {
		return nil, fmt.Errorf("kernels: Capture: %w", err)
	}
	ended := false
	defer func() {
		if !ended { // fn panicked: end the capture, so the device stays usable
			if unlock, err := d.lock(); err == nil {
				if d.capturing {
					d.b.endCapture(true)
					d.capturing = false
				}
				unlock()
			}
		}
	}()
	ferr := fn()
	ended = true
	unlock, err = d.lock()
	if err != nil {
		return nil, err // closed meanwhile: Close ended the capture
	}
	defer unlock()
	d.capturing = false
	h, err := d.b.endCapture(ferr != nil)
	if ferr != nil {
		return nil, fmt.Errorf("kernels: Capture: %w", ferr)
	}
	if err != nil {
		return nil, fmt.Errorf("kernels: Capture: %w", err)
	}
	g := &Graph{d: d, h: h}
	d.graphs[g] = struct{}{}
	return g, nil
}

// Launch queues every launch of the graph, in the order they were
// recorded, behind the work queued before, and returns without waiting.
func (g *Graph) Launch() error {
	unlock, err := g.d.lockIdle()
	if err != nil {
		return err
	}
	defer unlock()
	if g.h == 0 {
		return ErrClosed
	}
	return g.d.b.graphLaunch(g.h)
}

// Free destroys the graph. Freeing twice is an error-free no-op.
func (g *Graph) Free() error {
	unlock, err := g.d.lock()
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil
		}
		return err
	}
	defer unlock()
	if g.h == 0 {
		return nil
	}
	err = g.d.b.graphFree(g.h)
	delete(g.d.graphs, g)
	g.h = 0
	return err
}
