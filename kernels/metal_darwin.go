//go:build darwin

package kernels

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"
)

// The Metal backend, written from Apple's Metal API reference and kept
// parallel to the CUDA one (cuda_linux.go):
//
//	CUDA                         Metal
//	primary context              MTLDevice + one MTLCommandQueue
//	cuMemAlloc                   newBufferWithLength:options: (shared storage)
//	cuMemcpyHtoD / DtoH          memcpy to/from [buffer contents] after waiting
//	NVRTC + cuModuleLoadData     newLibraryWithSource:options:error:
//	cuModuleGetFunction          newFunctionWithName: + newComputePipelineStateWithFunction:error:
//	cuLaunchKernel               a compute encoder: setComputePipelineState:,
//	                             setBuffer:/setBytes:, dispatchThreadgroups:threadsPerThreadgroup:
//	cuCtxSynchronize             commit + waitUntilCompleted
//	cuEventRecord/ElapsedTime    the GPUEndTime of command buffers
//
// Launches are encoded into one open command buffer (dispatches of a compute
// encoder run in order) that is committed when the host needs a result, an
// event is recorded, or after maxPending launches. Every call that creates
// autoreleased objects runs inside its own autorelease pool; objects kept
// beyond the call are retained and released explicitly.

const platformBackend = Metal

func openPlatform() (backend, error) { return openMetal() }

const (
	mtlResourceStorageModeShared = 0
	mtlCommandBufferStatusError  = 5
	maxPending                   = 256
)

// mtlSize is MTLSize: three NSUIntegers.
type mtlSize struct{ Width, Height, Depth uint64 }

var (
	metalOnce    sync.Once
	metalLoadErr error

	mtlCreateSystemDefaultDevice uintptr
	mtlCopyAllDevices            uintptr
	autoreleasePoolPush          uintptr
	autoreleasePoolPop           uintptr

	sel struct {
		name, utf8String, localizedDescription, release, retain, alloc, init, new, count, objectAtIndex,
		stringWithUTF8String, newCommandQueue, newBufferWithLength, contents, newLibraryWithSource,
		newFunctionWithName, newComputePipelineState, maxTotalThreadsPerThreadgroup, threadExecutionWidth,
		commandBuffer, computeCommandEncoder, blitCommandEncoder, setComputePipelineState, setBuffer,
		setBytes, setThreadgroupMemoryLength, dispatchThreadgroups, endEncoding, commit,
		waitUntilCompleted, status, error_, copyFromBuffer, gpuEndTime, recommendedMaxWorkingSetSize,
		currentAllocatedSize, maxThreadgroupMemoryLength objc.SEL
	}
	classNSString, classMTLCompileOptions objc.Class
)

func loadMetal() error {
	// MTLCreateSystemDefaultDevice needs Core Graphics loaded in a process
	// that is not an app (Apple's documentation of the function says so).
	if _, err := purego.Dlopen("/System/Library/Frameworks/CoreGraphics.framework/CoreGraphics", purego.RTLD_NOW|purego.RTLD_GLOBAL); err != nil {
		return fmt.Errorf("%w: cannot load CoreGraphics.framework: %v", ErrNoDevice, err)
	}
	mtl, err := purego.Dlopen("/System/Library/Frameworks/Metal.framework/Metal", purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("%w: cannot load Metal.framework: %v", ErrNoDevice, err)
	}
	if mtlCreateSystemDefaultDevice, err = purego.Dlsym(mtl, "MTLCreateSystemDefaultDevice"); err != nil {
		return fmt.Errorf("%w: %v", ErrNoDevice, err)
	}
	mtlCopyAllDevices, _ = purego.Dlsym(mtl, "MTLCopyAllDevices")
	libobjc, err := purego.Dlopen("/usr/lib/libobjc.A.dylib", purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("%w: cannot load libobjc: %v", ErrNoDevice, err)
	}
	if autoreleasePoolPush, err = purego.Dlsym(libobjc, "objc_autoreleasePoolPush"); err != nil {
		return err
	}
	if autoreleasePoolPop, err = purego.Dlsym(libobjc, "objc_autoreleasePoolPop"); err != nil {
		return err
	}
	s := &sel
	for p, name := range map[*objc.SEL]string{
		&s.name: "name", &s.utf8String: "UTF8String", &s.localizedDescription: "localizedDescription",
		&s.release: "release", &s.retain: "retain", &s.alloc: "alloc", &s.init: "init", &s.new: "new",
		&s.count: "count", &s.objectAtIndex: "objectAtIndex:",
		&s.stringWithUTF8String: "stringWithUTF8String:", &s.newCommandQueue: "newCommandQueue",
		&s.newBufferWithLength: "newBufferWithLength:options:", &s.contents: "contents",
		&s.newLibraryWithSource:          "newLibraryWithSource:options:error:",
		&s.newFunctionWithName:           "newFunctionWithName:",
		&s.newComputePipelineState:       "newComputePipelineStateWithFunction:error:",
		&s.maxTotalThreadsPerThreadgroup: "maxTotalThreadsPerThreadgroup",
		&s.threadExecutionWidth:          "threadExecutionWidth",
		&s.commandBuffer:                 "commandBuffer", &s.computeCommandEncoder: "computeCommandEncoder",
		&s.blitCommandEncoder: "blitCommandEncoder", &s.setComputePipelineState: "setComputePipelineState:",
		&s.setBuffer: "setBuffer:offset:atIndex:", &s.setBytes: "setBytes:length:atIndex:",
		&s.setThreadgroupMemoryLength: "setThreadgroupMemoryLength:atIndex:",
		&s.dispatchThreadgroups:       "dispatchThreadgroups:threadsPerThreadgroup:",
		&s.endEncoding:                "endEncoding", &s.commit: "commit", &s.waitUntilCompleted: "waitUntilCompleted",
		&s.status: "status", &s.error_: "error",
		&s.copyFromBuffer:               "copyFromBuffer:sourceOffset:toBuffer:destinationOffset:size:",
		&s.gpuEndTime:                   "GPUEndTime",
		&s.recommendedMaxWorkingSetSize: "recommendedMaxWorkingSetSize",
		&s.currentAllocatedSize:         "currentAllocatedSize",
		&s.maxThreadgroupMemoryLength:   "maxThreadgroupMemoryLength",
	} {
		*p = objc.RegisterName(name)
	}
	classNSString = objc.GetClass("NSString")
	classMTLCompileOptions = objc.GetClass("MTLCompileOptions")
	if classNSString == 0 || classMTLCompileOptions == 0 {
		return fmt.Errorf("%w: Objective-C classes NSString/MTLCompileOptions not found", ErrNoDevice)
	}
	return nil
}

// pool runs fn inside an autorelease pool. The caller has locked its
// goroutine to the OS thread (Device.lock), as pools are per thread.
func pool[T any](fn func() (T, error)) (T, error) {
	p := callPtr(autoreleasePoolPush)
	defer callPtr(autoreleasePoolPop, p)
	return fn()
}

func nsString(s string) objc.ID {
	return objc.ID(classNSString).Send(sel.stringWithUTF8String, s) // autoreleased
}

func fromNSString(id objc.ID) string {
	if id == 0 {
		return ""
	}
	return goString(uintptr(id.Send(sel.utf8String)))
}

// nsErrorText is [error localizedDescription], which for a Metal compile
// error holds the compiler's log.
func nsErrorText(e objc.ID) string {
	if e == 0 {
		return "(no NSError)"
	}
	return fromNSString(e.Send(sel.localizedDescription))
}

type metalEvent struct{ cb objc.ID }

type metalBackend struct {
	dev, queue objc.ID
	inf        Info
	// The open command buffer and compute encoder (retained), with the
	// number of dispatches encoded in them.
	cb, enc objc.ID
	pending int
	last    objc.ID // the last committed command buffer (retained), or 0
	// pipelines per library, released with it.
	pipelines map[uintptr][]objc.ID
	events    map[uintptr]*metalEvent
	nextEvent uintptr
	scratch   *[8]byte // heap bytes for setBytes:length:atIndex:
	// Metal has no stream capture: a graph is the list of launches made
	// while recording, replayed into one command buffer (see graphLaunch).
	recording *[]metalLaunch
	graphs    map[uintptr][]metalLaunch
	nextGraph uintptr
}

// metalLaunch is one recorded dispatch of a graph.
type metalLaunch struct {
	pipeline uintptr
	cfg      LaunchConfig
	args     []any
}

func openMetal() (backend, error) {
	metalOnce.Do(func() { metalLoadErr = loadMetal() })
	if metalLoadErr != nil {
		return nil, metalLoadErr
	}
	dev := objc.ID(callPtr(mtlCreateSystemDefaultDevice))
	if dev == 0 && mtlCopyAllDevices != 0 {
		if all := objc.ID(callPtr(mtlCopyAllDevices)); all != 0 {
			if objc.Send[uint64](all, sel.count) > 0 {
				dev = all.Send(sel.objectAtIndex, uint64(0)).Send(sel.retain)
			}
			all.Send(sel.release)
		}
	}
	if dev == 0 {
		return nil, fmt.Errorf("%w: MTLCreateSystemDefaultDevice returned nil (no Metal GPU)", ErrNoDevice)
	}
	queue := dev.Send(sel.newCommandQueue)
	if queue == 0 {
		dev.Send(sel.release)
		return nil, &DriverError{Call: "newCommandQueue", Msg: "returned nil"}
	}
	b := &metalBackend{dev: dev, queue: queue, pipelines: map[uintptr][]objc.ID{},
		events: map[uintptr]*metalEvent{}, scratch: new([8]byte)}
	name, _ := pool(func() (string, error) { return fromNSString(dev.Send(sel.name)), nil })
	b.inf = Info{
		Backend:            Metal,
		Name:               name,
		Memory:             int64(objc.Send[uint64](dev, sel.recommendedMaxWorkingSetSize)),
		MaxThreadsPerBlock: 1024, // every Apple GPU family; a kernel's own limit is Kernel.MaxThreadsPerBlock
		MaxSharedMemory:    int(objc.Send[uint64](dev, sel.maxThreadgroupMemoryLength)),
		Driver:             "Metal.framework",
	}
	return b, nil
}

func (b *metalBackend) info() Info { return b.inf }

func (b *metalBackend) alloc(n int) (uintptr, error) {
	buf := b.dev.Send(sel.newBufferWithLength, uint64(n), uint64(mtlResourceStorageModeShared))
	if buf == 0 {
		return 0, &DriverError{Call: "newBufferWithLength:options:", Msg: fmt.Sprintf("returned nil for %d bytes (out of memory?)", n)}
	}
	return uintptr(buf), nil
}

// free releases the buffer. A command buffer that still uses it holds its
// own reference, so this is safe while work is in flight.
func (b *metalBackend) free(h uintptr) error {
	objc.ID(h).Send(sel.release)
	return nil
}

// contents is the CPU address of a shared-storage buffer.
func contents(h uintptr) unsafe.Pointer {
	p := uintptr(objc.ID(h).Send(sel.contents))
	return *(*unsafe.Pointer)(unsafe.Pointer(&p))
}

func (b *metalBackend) write(dst uintptr, off int, src unsafe.Pointer, n int) error {
	if err := b.sync(); err != nil {
		return err
	}
	copy(unsafe.Slice((*byte)(unsafe.Add(contents(dst), off)), n), unsafe.Slice((*byte)(src), n))
	return nil
}

func (b *metalBackend) read(dst unsafe.Pointer, src uintptr, off int, n int) error {
	if err := b.sync(); err != nil {
		return err
	}
	copy(unsafe.Slice((*byte)(dst), n), unsafe.Slice((*byte)(unsafe.Add(contents(src), off)), n))
	return nil
}

func (b *metalBackend) memset(dst uintptr, off int, v byte, n int) error {
	if err := b.sync(); err != nil {
		return err
	}
	s := unsafe.Slice((*byte)(unsafe.Add(contents(dst), off)), n)
	for i := range s {
		s[i] = v
	}
	return nil
}

func (b *metalBackend) copyDtoD(dst uintptr, dstOff int, src uintptr, srcOff int, n int) error {
	b.flush()
	_, err := pool(func() (struct{}, error) {
		cb := b.queue.Send(sel.commandBuffer)
		enc := cb.Send(sel.blitCommandEncoder)
		enc.Send(sel.copyFromBuffer, objc.ID(src), uint64(srcOff), objc.ID(dst), uint64(dstOff), uint64(n))
		enc.Send(sel.endEncoding)
		cb.Send(sel.commit)
		b.setLast(cb.Send(sel.retain))
		return struct{}{}, nil
	})
	return err
}

func (b *metalBackend) compile(src string, _ []string) (uintptr, error) {
	return pool(func() (uintptr, error) {
		opts := objc.ID(classMTLCompileOptions).Send(sel.new)
		defer opts.Send(sel.release)
		errID := new(objc.ID)
		lib := b.dev.Send(sel.newLibraryWithSource, nsString(src), opts, unsafe.Pointer(errID))
		if lib == 0 {
			return 0, &CompileError{Backend: "Metal", Msg: "newLibraryWithSource:options:error: failed", Log: nsErrorText(*errID)}
		}
		return uintptr(lib), nil
	})
}

func (b *metalBackend) unload(lib uintptr) error {
	for _, p := range b.pipelines[lib] {
		p.Send(sel.release)
	}
	delete(b.pipelines, lib)
	objc.ID(lib).Send(sel.release)
	return nil
}

func (b *metalBackend) function(lib uintptr, name string) (uintptr, int, error) {
	type res struct {
		p   objc.ID
		max int
	}
	r, err := pool(func() (res, error) {
		fn := objc.ID(lib).Send(sel.newFunctionWithName, nsString(name))
		if fn == 0 {
			return res{}, &DriverError{Call: "newFunctionWithName:", Msg: fmt.Sprintf("no kernel %q in the module (is it declared `kernel void %s(...)`?)", name, name)}
		}
		defer fn.Send(sel.release)
		errID := new(objc.ID)
		p := b.dev.Send(sel.newComputePipelineState, fn, unsafe.Pointer(errID))
		if p == 0 {
			return res{}, &DriverError{Call: "newComputePipelineStateWithFunction:error:", Msg: nsErrorText(*errID)}
		}
		return res{p, int(objc.Send[uint64](p, sel.maxTotalThreadsPerThreadgroup))}, nil
	})
	if err != nil {
		return 0, 0, err
	}
	b.pipelines[lib] = append(b.pipelines[lib], r.p)
	return uintptr(r.p), r.max, nil
}

func (b *metalBackend) launch(pipeline uintptr, maxThreads int, cfg LaunchConfig, args []any) error {
	bl := cfg.Block.norm()
	if bl.Count() > maxThreads {
		return &DriverError{Call: "dispatchThreadgroups:threadsPerThreadgroup:",
			Msg: fmt.Sprintf("a threadgroup of %d threads exceeds this pipeline's maxTotalThreadsPerThreadgroup %d", bl.Count(), maxThreads)}
	}
	if cfg.SharedMem > b.inf.MaxSharedMemory {
		return &DriverError{Call: "setThreadgroupMemoryLength:atIndex:",
			Msg: fmt.Sprintf("%d bytes of threadgroup memory exceed the device's maxThreadgroupMemoryLength %d", cfg.SharedMem, b.inf.MaxSharedMemory)}
	}
	if b.recording != nil {
		*b.recording = append(*b.recording, metalLaunch{pipeline: pipeline, cfg: cfg, args: slices.Clone(args)})
		return nil
	}
	if err := b.encode(pipeline, cfg, args); err != nil {
		return err
	}
	b.pending++
	if b.pending >= maxPending {
		b.flush()
	}
	return nil
}

// encode adds one dispatch to the open command buffer, opening one if
// there is none.
func (b *metalBackend) encode(pipeline uintptr, cfg LaunchConfig, args []any) error {
	g, bl := cfg.Grid.norm(), cfg.Block.norm()
	_, err := pool(func() (struct{}, error) {
		if b.cb == 0 {
			b.cb = b.queue.Send(sel.commandBuffer).Send(sel.retain)
			b.enc = b.cb.Send(sel.computeCommandEncoder).Send(sel.retain)
		}
		enc := b.enc
		enc.Send(sel.setComputePipelineState, objc.ID(pipeline))
		for i, a := range args {
			var n int
			switch x := a.(type) {
			case *Buffer:
				enc.Send(sel.setBuffer, objc.ID(x.h), uint64(0), uint64(i))
				continue
			case int32:
				*(*int32)(unsafe.Pointer(b.scratch)) = x
				n = 4
			case uint32:
				*(*uint32)(unsafe.Pointer(b.scratch)) = x
				n = 4
			case float32:
				*(*float32)(unsafe.Pointer(b.scratch)) = x
				n = 4
			case int64:
				*(*int64)(unsafe.Pointer(b.scratch)) = x
				n = 8
			case uint64:
				*(*uint64)(unsafe.Pointer(b.scratch)) = x
				n = 8
			case float64:
				*(*float64)(unsafe.Pointer(b.scratch)) = x
				n = 8
			}
			// setBytes copies the bytes now, so the scratch can be reused.
			enc.Send(sel.setBytes, unsafe.Pointer(b.scratch), uint64(n), uint64(i))
		}
		if cfg.SharedMem > 0 {
			enc.Send(sel.setThreadgroupMemoryLength, uint64((cfg.SharedMem+15)&^15), uint64(0))
		}
		enc.Send(sel.dispatchThreadgroups,
			mtlSize{uint64(g.X), uint64(g.Y), uint64(g.Z)}, mtlSize{uint64(bl.X), uint64(bl.Y), uint64(bl.Z)})
		return struct{}{}, nil
	})
	return err
}

// beginCapture starts recording launches instead of encoding them.
func (b *metalBackend) beginCapture() error {
	b.recording = &[]metalLaunch{}
	return nil
}

// endCapture stops recording and keeps the list as a graph.
func (b *metalBackend) endCapture(discard bool) (uintptr, error) {
	rec := b.recording
	b.recording = nil
	if discard {
		return 0, nil
	}
	if b.graphs == nil {
		b.graphs = map[uintptr][]metalLaunch{}
	}
	b.nextGraph++
	b.graphs[b.nextGraph] = *rec
	return b.nextGraph, nil
}

// graphLaunch encodes every recorded dispatch into one command buffer
// (whatever was open before is committed first, so the step is a buffer of
// its own) and commits it without waiting.
func (b *metalBackend) graphLaunch(h uintptr) error {
	g, ok := b.graphs[h]
	if !ok {
		return ErrClosed
	}
	b.flush()
	for _, l := range g {
		if err := b.encode(l.pipeline, l.cfg, l.args); err != nil {
			return err
		}
		b.pending++
	}
	b.flush()
	return nil
}

func (b *metalBackend) graphFree(h uintptr) error {
	delete(b.graphs, h)
	return nil
}

// flush commits the open command buffer, if any.
func (b *metalBackend) flush() {
	if b.cb == 0 {
		return
	}
	b.enc.Send(sel.endEncoding)
	b.enc.Send(sel.release)
	b.cb.Send(sel.commit)
	b.setLast(b.cb) // keeps our retain
	b.cb, b.enc, b.pending = 0, 0, 0
}

func (b *metalBackend) setLast(cb objc.ID) {
	if b.last != 0 {
		b.last.Send(sel.release)
	}
	b.last = cb
}

// wait blocks until cb has run and returns its error, if it failed.
func wait(cb objc.ID) error {
	_, err := pool(func() (struct{}, error) {
		cb.Send(sel.waitUntilCompleted)
		if objc.Send[uint64](cb, sel.status) == mtlCommandBufferStatusError {
			return struct{}{}, &DriverError{Call: "MTLCommandBuffer", Msg: nsErrorText(cb.Send(sel.error_))}
		}
		return struct{}{}, nil
	})
	return err
}

func (b *metalBackend) sync() error {
	b.flush()
	if b.last == 0 {
		return nil
	}
	// The queue runs its command buffers in commit order, so the last one
	// finishing means all have.
	err := wait(b.last)
	b.setLast(0)
	return err
}

func (b *metalBackend) newEvent() (uintptr, error) {
	b.nextEvent++
	b.events[b.nextEvent] = &metalEvent{}
	return b.nextEvent, nil
}

// record marks the end of the work committed so far: the event keeps the
// last command buffer, whose GPUEndTime is the event's time. With nothing in
// flight it commits an empty command buffer.
func (b *metalBackend) record(ev uintptr) error {
	e := b.events[ev]
	if e == nil {
		return ErrClosed
	}
	b.flush()
	if b.last == 0 {
		_, _ = pool(func() (struct{}, error) {
			cb := b.queue.Send(sel.commandBuffer)
			cb.Send(sel.commit)
			b.setLast(cb.Send(sel.retain))
			return struct{}{}, nil
		})
	}
	if e.cb != 0 {
		e.cb.Send(sel.release)
	}
	e.cb = b.last.Send(sel.retain)
	return nil
}

func (b *metalBackend) elapsed(start, end uintptr) (time.Duration, error) {
	s, e := b.events[start], b.events[end]
	if s == nil || e == nil || s.cb == 0 || e.cb == 0 {
		return 0, errors.New("kernels: Elapsed of an event that was not recorded")
	}
	if err := wait(s.cb); err != nil {
		return 0, err
	}
	if err := wait(e.cb); err != nil {
		return 0, err
	}
	sec := objc.Send[float64](e.cb, sel.gpuEndTime) - objc.Send[float64](s.cb, sel.gpuEndTime)
	return time.Duration(sec * float64(time.Second)), nil
}

func (b *metalBackend) freeEvent(ev uintptr) error {
	if e := b.events[ev]; e != nil && e.cb != 0 {
		e.cb.Send(sel.release)
	}
	delete(b.events, ev)
	return nil
}

func (b *metalBackend) memInfo() (int64, int64, error) {
	total := int64(objc.Send[uint64](b.dev, sel.recommendedMaxWorkingSetSize))
	used := int64(objc.Send[uint64](b.dev, sel.currentAllocatedSize))
	return total - used, total, nil
}

func (b *metalBackend) close() error {
	err := b.sync()
	b.queue.Send(sel.release)
	b.dev.Send(sel.release)
	b.queue, b.dev = 0, 0
	return err
}

// CheckCUDASource needs NVRTC, which the CUDA backend loads on Linux only.
func CheckCUDASource(src, arch string, opts ...string) error {
	return fmt.Errorf("%w: CUDA sources are compiled on Linux only", ErrNoCompiler)
}
