//go:build linux && (amd64 || arm64)

package kernels

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

const platformBackend = CUDA

func openPlatform() (backend, error) { return openCUDA() }

// The driver API entry points this backend uses, by symbol name. The _v2
// names are the ones cuda.h's macros select for 64-bit code.
type cudaAPI struct {
	cuInit, cuDriverGetVersion, cuDeviceGetCount, cuDeviceGet, cuDeviceGetName,
	cuDeviceGetAttribute, cuDeviceTotalMem, cuDevicePrimaryCtxRetain,
	cuDevicePrimaryCtxRelease, cuCtxSetCurrent, cuCtxSynchronize,
	cuMemAlloc, cuMemFree, cuMemcpyHtoD, cuMemcpyDtoH, cuMemcpyDtoD, cuMemsetD8,
	cuMemGetInfo, cuModuleLoadData, cuModuleUnload, cuModuleGetFunction,
	cuFuncGetAttribute, cuFuncSetAttribute, cuLaunchKernel,
	cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventElapsedTime,
	cuEventDestroy, cuGetErrorName, cuGetErrorString uintptr
}

// graphAPI is stream capture and CUDA graphs (CUDA 11.4 and later). It is
// loaded apart from cudaAPI so that an older driver still runs everything
// else; Capture then says why it cannot.
type graphAPI struct {
	cuStreamCreate, cuStreamDestroy, cuStreamBeginCapture, cuStreamEndCapture,
	cuGraphInstantiateWithFlags, cuGraphLaunch, cuGraphExecDestroy, cuGraphDestroy uintptr
}

type nvrtcAPI struct {
	nvrtcVersion, nvrtcCreateProgram, nvrtcCompileProgram, nvrtcGetProgramLogSize,
	nvrtcGetProgramLog, nvrtcGetCUBINSize, nvrtcGetCUBIN, nvrtcDestroyProgram,
	nvrtcGetErrorString uintptr
}

var (
	cudaOnce     sync.Once
	cudaLib      cudaAPI
	graphLib     graphAPI
	graphLoadErr error
	// cuLaunchKernelEx (CUDA 12), for launches that may overlap the one
	// before them; 0 where the driver has none (they run as plain launches).
	launchKernelEx uintptr
	nvrtcLib       nvrtcAPI
	cudaLoadErr    error
	cudaLibPath    string
	nvrtcLibPath   string
	nvrtcVer       string
	driverVer      int
)

// Driver constants from cuda.h.
const (
	cudaSuccess                        = 0
	cudaErrorNoDevice                  = 100
	attrMaxThreadsPerBlock             = 1
	attrMaxSharedPerBlock              = 8
	attrWarpSize                       = 10
	attrMultiprocessorCount            = 16
	attrCCMajor                        = 75
	attrCCMinor                        = 76
	attrMaxSharedPerBlockOptin         = 97
	funcAttrMaxThreadsPerBlock         = 0
	funcAttrSharedSize                 = 1
	funcAttrMaxDynamicShared           = 8
	defaultDynamicSharedLimit          = 48 * 1024
	maxKernelArgs                      = 64
	nvrtcSuccess                       = 0
	nvrtcErrorCompilation              = 6
	cudaEventDefault                   = 0
	cudaStreamLegacy           uintptr = 0 // the NULL stream: ordered with every synchronous copy
	cuStreamDefault                    = 0 // a blocking stream: ordered with the NULL stream both ways
	cuStreamCaptureModeRelaxed         = 2
)

// libcudaCandidates lists where the driver library may live, after the
// dynamic loader's own search for the plain soname.
func libcudaCandidates() []string {
	c := []string{}
	if p := os.Getenv("TINYLLM_LIBCUDA"); p != "" {
		c = append(c, p)
	}
	c = append(c, "libcuda.so.1")
	for _, dir := range []string{
		"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
		"/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/wsl/lib",
	} {
		c = append(c, filepath.Join(dir, "libcuda.so.1"))
	}
	return c
}

// nvrtcCandidates globs the standard places for libnvrtc.so.*: the CUDA
// toolkit, the distribution's library folders, and the nvidia-cuda-nvrtc
// Python wheels (which PyTorch installs). Newest major version first, but
// none newer than the driver when the driver's version is known.
func nvrtcCandidates(driverMajor int) []string {
	var globs []string
	for _, env := range []string{"CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"} {
		if d := os.Getenv(env); d != "" {
			globs = append(globs, filepath.Join(d, "lib64", "libnvrtc.so*"), filepath.Join(d, "lib", "libnvrtc.so*"))
		}
	}
	if v := os.Getenv("VIRTUAL_ENV"); v != "" {
		globs = append(globs, filepath.Join(v, "lib", "python3*", "site-packages", "nvidia", "*", "lib", "libnvrtc.so*"))
	}
	home, _ := os.UserHomeDir()
	globs = append(globs,
		"/usr/local/cuda/lib64/libnvrtc.so*",
		"/usr/local/cuda-*/lib64/libnvrtc.so*",
		"/usr/local/cuda*/targets/*/lib/libnvrtc.so*",
		"/opt/cuda/lib64/libnvrtc.so*",
		"/usr/lib/x86_64-linux-gnu/libnvrtc.so*",
		"/usr/lib/aarch64-linux-gnu/libnvrtc.so*",
		"/usr/lib64/libnvrtc.so*",
		"/usr/lib/python3*/site-packages/nvidia/*/lib/libnvrtc.so*",
		"/usr/local/lib/python3*/dist-packages/nvidia/*/lib/libnvrtc.so*",
		"/usr/local/lib/python3*/site-packages/nvidia/*/lib/libnvrtc.so*",
		"/opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib/libnvrtc.so*",
		"/opt/conda/lib/libnvrtc.so*",
		filepath.Join(home, ".local/lib/python3*/site-packages/nvidia/*/lib/libnvrtc.so*"),
	)
	seen := map[string]bool{}
	type cand struct {
		path  string
		major int
	}
	var cs []cand
	verRe := regexp.MustCompile(`libnvrtc\.so\.(\d+)`)
	for _, g := range globs {
		matches, _ := filepath.Glob(g)
		for _, m := range matches {
			base := filepath.Base(m)
			if strings.Contains(base, "builtins") || strings.Contains(base, "alt") {
				continue
			}
			real, err := filepath.EvalSymlinks(m)
			if err != nil || seen[real] {
				continue
			}
			seen[real] = true
			major := 0
			if v := verRe.FindStringSubmatch(base); v != nil {
				major, _ = strconv.Atoi(v[1])
			}
			cs = append(cs, cand{m, major})
		}
	}
	rank := func(c cand) int {
		if driverMajor > 0 && c.major > driverMajor {
			return -1000 + c.major // newer than the driver: last resort
		}
		return c.major
	}
	slices.SortStableFunc(cs, func(a, b cand) int { return rank(b) - rank(a) })
	var out []string
	if p := os.Getenv("TINYLLM_NVRTC"); p != "" {
		out = append(out, p)
	}
	for _, c := range cs {
		out = append(out, c.path)
	}
	return append(out, "libnvrtc.so")
}

func dlopenFirst(cands []string) (uintptr, string, error) {
	var errs []string
	for _, c := range cands {
		if strings.Contains(c, "/") {
			if _, err := os.Stat(c); err != nil {
				continue
			}
		}
		h, err := purego.Dlopen(c, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			return h, c, nil
		}
		errs = append(errs, err.Error())
	}
	if len(errs) == 0 {
		return 0, "", errors.New("not found")
	}
	return 0, "", errors.New(strings.Join(errs, "; "))
}

func loadSyms(h uintptr, lib string, syms map[string]*uintptr) error {
	for name, p := range syms {
		addr, err := purego.Dlsym(h, name)
		if err != nil || addr == 0 {
			return fmt.Errorf("%s has no symbol %s", lib, name)
		}
		*p = addr
	}
	return nil
}

func loadCUDA() error {
	h, path, err := dlopenFirst(libcudaCandidates())
	if err != nil {
		if strings.Contains(err.Error(), "cannot open shared object file") || err.Error() == "not found" {
			return fmt.Errorf("%w: the CUDA driver libcuda.so.1 is not installed", ErrNoDevice)
		}
		return fmt.Errorf("%w: cannot load the CUDA driver libcuda.so.1 (%v)", ErrNoDevice, err)
	}
	cudaLibPath = path
	a := &cudaLib
	if err := loadSyms(h, path, map[string]*uintptr{
		"cuInit": &a.cuInit, "cuDriverGetVersion": &a.cuDriverGetVersion,
		"cuDeviceGetCount": &a.cuDeviceGetCount, "cuDeviceGet": &a.cuDeviceGet,
		"cuDeviceGetName": &a.cuDeviceGetName, "cuDeviceGetAttribute": &a.cuDeviceGetAttribute,
		"cuDeviceTotalMem_v2": &a.cuDeviceTotalMem, "cuDevicePrimaryCtxRetain": &a.cuDevicePrimaryCtxRetain,
		"cuDevicePrimaryCtxRelease_v2": &a.cuDevicePrimaryCtxRelease, "cuCtxSetCurrent": &a.cuCtxSetCurrent,
		"cuCtxSynchronize": &a.cuCtxSynchronize, "cuMemAlloc_v2": &a.cuMemAlloc, "cuMemFree_v2": &a.cuMemFree,
		"cuMemcpyHtoD_v2": &a.cuMemcpyHtoD, "cuMemcpyDtoH_v2": &a.cuMemcpyDtoH, "cuMemcpyDtoD_v2": &a.cuMemcpyDtoD,
		"cuMemsetD8_v2": &a.cuMemsetD8, "cuMemGetInfo_v2": &a.cuMemGetInfo,
		"cuModuleLoadData": &a.cuModuleLoadData, "cuModuleUnload": &a.cuModuleUnload,
		"cuModuleGetFunction": &a.cuModuleGetFunction, "cuFuncGetAttribute": &a.cuFuncGetAttribute,
		"cuFuncSetAttribute": &a.cuFuncSetAttribute, "cuLaunchKernel": &a.cuLaunchKernel,
		"cuEventCreate": &a.cuEventCreate, "cuEventRecord": &a.cuEventRecord,
		"cuEventSynchronize": &a.cuEventSynchronize, "cuEventElapsedTime": &a.cuEventElapsedTime,
		"cuEventDestroy_v2": &a.cuEventDestroy, "cuGetErrorName": &a.cuGetErrorName,
		"cuGetErrorString": &a.cuGetErrorString,
	}); err != nil {
		return err
	}
	if r := call(a.cuInit, 0); r != cudaSuccess {
		if r == cudaErrorNoDevice {
			return fmt.Errorf("%w: the CUDA driver is installed but sees no GPU (cuInit: %s)", ErrNoDevice, cuErrText(r))
		}
		return fmt.Errorf("%w: cuInit: %s", ErrNoDevice, cuErrText(r))
	}
	g := &graphLib
	graphLoadErr = loadSyms(h, path, map[string]*uintptr{
		"cuStreamCreate": &g.cuStreamCreate, "cuStreamDestroy_v2": &g.cuStreamDestroy,
		"cuStreamBeginCapture_v2": &g.cuStreamBeginCapture, "cuStreamEndCapture": &g.cuStreamEndCapture,
		"cuGraphInstantiateWithFlags": &g.cuGraphInstantiateWithFlags, "cuGraphLaunch": &g.cuGraphLaunch,
		"cuGraphExecDestroy": &g.cuGraphExecDestroy, "cuGraphDestroy": &g.cuGraphDestroy,
	})
	if loadSyms(h, path, map[string]*uintptr{"cuLaunchKernelEx": &launchKernelEx}) != nil {
		launchKernelEx = 0
	}
	var v int32
	call(a.cuDriverGetVersion, uintptr(unsafe.Pointer(&v)))
	driverVer = int(v)

	npath, ver, err := loadNVRTC(&nvrtcLib, driverVer/1000)
	if err != nil {
		return fmt.Errorf("%w: the CUDA driver is here but NVRTC (libnvrtc.so.*) is not: install the CUDA toolkit or `pip install nvidia-cuda-nvrtc`, or set TINYLLM_NVRTC to its path (%v)", ErrNoDevice, err)
	}
	nvrtcLibPath, nvrtcVer = npath, ver
	return nil
}

// loadNVRTC finds NVRTC (none newer than driverMajor, when it is not 0) and
// fills n with its entry points; it returns the library's path and version.
func loadNVRTC(n *nvrtcAPI, driverMajor int) (path, version string, err error) {
	nh, npath, err := dlopenFirst(nvrtcCandidates(driverMajor))
	if err != nil {
		return "", "", err
	}
	if err := loadSyms(nh, npath, map[string]*uintptr{
		"nvrtcVersion": &n.nvrtcVersion, "nvrtcCreateProgram": &n.nvrtcCreateProgram,
		"nvrtcCompileProgram": &n.nvrtcCompileProgram, "nvrtcGetProgramLogSize": &n.nvrtcGetProgramLogSize,
		"nvrtcGetProgramLog": &n.nvrtcGetProgramLog, "nvrtcGetCUBINSize": &n.nvrtcGetCUBINSize,
		"nvrtcGetCUBIN": &n.nvrtcGetCUBIN, "nvrtcDestroyProgram": &n.nvrtcDestroyProgram,
		"nvrtcGetErrorString": &n.nvrtcGetErrorString,
	}); err != nil {
		return "", "", err
	}
	var maj, mnr int32
	call(n.nvrtcVersion, uintptr(unsafe.Pointer(&maj)), uintptr(unsafe.Pointer(&mnr)))
	return npath, fmt.Sprintf("%d.%d", maj, mnr), nil
}

// NVRTC for CheckCUDASource, loaded apart from the device's so that a
// check never decides which NVRTC a device uses.
var (
	checkOnce sync.Once
	checkLib  nvrtcAPI
	checkVer  string
	checkErr  error
)

// CheckCUDASource compiles CUDA source with NVRTC for arch (such as
// "sm_90") and throws the machine code away: it needs NVRTC but neither a
// GPU nor its driver, so a machine without a GPU can still find compile
// errors. Without NVRTC the error wraps ErrNoCompiler.
func CheckCUDASource(src, arch string, opts ...string) error {
	checkOnce.Do(func() {
		_, checkVer, checkErr = loadNVRTC(&checkLib, 0)
	})
	if checkErr != nil {
		return fmt.Errorf("%w: NVRTC (libnvrtc.so.*) not found; TINYLLM_NVRTC may name it (%v)", ErrNoCompiler, checkErr)
	}
	_, err := nvrtcCubin(&checkLib, checkVer, arch, src, opts)
	return err
}

// cuErrText is "CUDA_ERROR_X (description)" for a CUresult.
func cuErrText(r int32) string {
	var name, desc uintptr
	if cudaLib.cuGetErrorName != 0 {
		call(cudaLib.cuGetErrorName, uintptr(r), uintptr(unsafe.Pointer(&name)))
		call(cudaLib.cuGetErrorString, uintptr(r), uintptr(unsafe.Pointer(&desc)))
	}
	if name == 0 {
		return fmt.Sprintf("CUresult %d", r)
	}
	return fmt.Sprintf("%s (%s)", goString(name), goString(desc))
}

// cuErr turns a CUresult into an error naming the call.
func cuErr(fn string, r int32) error {
	if r == cudaSuccess {
		return nil
	}
	return &DriverError{Call: fn, Code: int(r), Msg: cuErrText(r)}
}

type cudaBackend struct {
	dev  int32
	ctx  uintptr
	arch string
	inf  Info
	// Launch arguments live in heap arrays owned by the backend (the device
	// lock serialises their use): argv holds the values, argp the pointers
	// to them that cuLaunchKernel reads.
	argv *[maxKernelArgs]uint64
	argp *[maxKernelArgs]uintptr
	// dynShared remembers the dynamic shared memory limit set per function,
	// staticShared each function's static shared memory (which counts
	// against the same 48 KB default);
	// modFuncs the functions taken from each module, whose entries unload
	// drops: the driver may hand a later module's function the same handle.
	dynShared, staticShared map[uintptr]int
	modFuncs                map[uintptr][]uintptr
	// stream is the blocking stream that graphs are captured on and
	// launched on (the NULL stream cannot be captured), created on first
	// use; launches go to it while capturing is set, to the NULL stream
	// otherwise. Being blocking, it is ordered with the NULL stream's
	// copies and launches, so a graph needs no extra synchronisation.
	stream    uintptr
	capturing bool
	// overlap: the device can run programmatic dependent launches
	// (compute capability 9.0 or later, and a driver with cuLaunchKernelEx).
	overlap bool
}

func openCUDA() (backend, error) {
	cudaOnce.Do(func() { cudaLoadErr = loadCUDA() })
	if cudaLoadErr != nil {
		return nil, cudaLoadErr
	}
	a := &cudaLib
	var count int32
	if r := call(a.cuDeviceGetCount, uintptr(unsafe.Pointer(&count))); r != cudaSuccess {
		return nil, cuErr("cuDeviceGetCount", r)
	}
	ordinal := 0
	if s := os.Getenv("TINYLLM_CUDA_DEVICE"); s != "" {
		ordinal, _ = strconv.Atoi(s)
	}
	if count == 0 {
		return nil, fmt.Errorf("%w: the CUDA driver reports 0 devices", ErrNoDevice)
	}
	if ordinal < 0 || ordinal >= int(count) {
		return nil, fmt.Errorf("kernels: TINYLLM_CUDA_DEVICE=%d but there are %d CUDA devices", ordinal, count)
	}
	b := &cudaBackend{argv: new([maxKernelArgs]uint64), argp: new([maxKernelArgs]uintptr), dynShared: map[uintptr]int{}, staticShared: map[uintptr]int{}, modFuncs: map[uintptr][]uintptr{}}
	for i := range b.argp {
		b.argp[i] = uintptr(unsafe.Pointer(&b.argv[i]))
	}
	if r := call(a.cuDeviceGet, uintptr(unsafe.Pointer(&b.dev)), uintptr(ordinal)); r != cudaSuccess {
		return nil, cuErr("cuDeviceGet", r)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The primary context is the one the CUDA runtime (and so PyTorch) uses:
	// sharing it keeps one context per device per process.
	if r := call(a.cuDevicePrimaryCtxRetain, uintptr(unsafe.Pointer(&b.ctx)), uintptr(b.dev)); r != cudaSuccess {
		return nil, cuErr("cuDevicePrimaryCtxRetain", r)
	}
	if err := b.bind(); err != nil {
		call(a.cuDevicePrimaryCtxRelease, uintptr(b.dev))
		return nil, err
	}
	attr := func(a int) int {
		var v int32
		call(cudaLib.cuDeviceGetAttribute, uintptr(unsafe.Pointer(&v)), uintptr(a), uintptr(b.dev))
		return int(v)
	}
	name := make([]byte, 256)
	call(a.cuDeviceGetName, uintptr(unsafe.Pointer(&name[0])), uintptr(len(name)), uintptr(b.dev))
	var total uint64
	call(a.cuDeviceTotalMem, uintptr(unsafe.Pointer(&total)), uintptr(b.dev))
	major, minor := attr(attrCCMajor), attr(attrCCMinor)
	b.arch = fmt.Sprintf("sm_%d%d", major, minor)
	b.overlap = major >= 9 && launchKernelEx != 0
	shared := attr(attrMaxSharedPerBlockOptin)
	if shared == 0 {
		shared = attr(attrMaxSharedPerBlock)
	}
	b.inf = Info{
		Backend:            CUDA,
		Name:               strings.TrimRight(string(name), "\x00"),
		Memory:             int64(total),
		ComputeCapability:  fmt.Sprintf("%d.%d", major, minor),
		Multiprocessors:    attr(attrMultiprocessorCount),
		MaxThreadsPerBlock: attr(attrMaxThreadsPerBlock),
		MaxSharedMemory:    shared,
		WarpSize:           attr(attrWarpSize),
		Driver: fmt.Sprintf("CUDA driver %d.%d (%s), NVRTC %s (%s)", driverVer/1000, driverVer%1000/10,
			cudaLibPath, nvrtcVer, nvrtcLibPath),
		Overlap: b.overlap,
	}
	return b, nil
}

// bind makes the device's context current on this OS thread. Every backend
// method starts with it: the caller holds the device lock and has locked
// the goroutine to its thread, so the binding holds for the whole call.
func (b *cudaBackend) bind() error {
	return cuErr("cuCtxSetCurrent", call(cudaLib.cuCtxSetCurrent, b.ctx))
}

func (b *cudaBackend) info() Info { return b.inf }

func (b *cudaBackend) alloc(n int) (uintptr, error) {
	if err := b.bind(); err != nil {
		return 0, err
	}
	var p uint64
	if r := call(cudaLib.cuMemAlloc, uintptr(unsafe.Pointer(&p)), uintptr(n)); r != cudaSuccess {
		return 0, fmt.Errorf("%w (asked for %d bytes)", cuErr("cuMemAlloc", r), n)
	}
	return uintptr(p), nil
}

func (b *cudaBackend) free(h uintptr) error {
	if err := b.bind(); err != nil {
		return err
	}
	return cuErr("cuMemFree", call(cudaLib.cuMemFree, h))
}

func (b *cudaBackend) write(dst uintptr, off int, src unsafe.Pointer, n int) error {
	if err := b.bind(); err != nil {
		return err
	}
	return cuErr("cuMemcpyHtoD", call(cudaLib.cuMemcpyHtoD, dst+uintptr(off), uintptr(src), uintptr(n)))
}

func (b *cudaBackend) read(dst unsafe.Pointer, src uintptr, off int, n int) error {
	if err := b.bind(); err != nil {
		return err
	}
	return cuErr("cuMemcpyDtoH", call(cudaLib.cuMemcpyDtoH, uintptr(dst), src+uintptr(off), uintptr(n)))
}

func (b *cudaBackend) copyDtoD(dst uintptr, dstOff int, src uintptr, srcOff int, n int) error {
	if err := b.bind(); err != nil {
		return err
	}
	return cuErr("cuMemcpyDtoD", call(cudaLib.cuMemcpyDtoD, dst+uintptr(dstOff), src+uintptr(srcOff), uintptr(n)))
}

func (b *cudaBackend) memset(dst uintptr, off int, v byte, n int) error {
	if err := b.bind(); err != nil {
		return err
	}
	return cuErr("cuMemsetD8", call(cudaLib.cuMemsetD8, dst+uintptr(off), uintptr(v), uintptr(n)))
}

func nvrtcErr(fn string, r int32) error {
	if r == nvrtcSuccess {
		return nil
	}
	get := nvrtcLib.nvrtcGetErrorString
	if get == 0 {
		get = checkLib.nvrtcGetErrorString // only CheckCUDASource loaded NVRTC
	}
	return &DriverError{Call: fn, Code: int(r), Msg: goString(callPtr(get, uintptr(r)))}
}

// nvrtcCubin compiles src with the NVRTC library n (version ver) into
// machine code (a CUBIN) for arch, such as sm_90.
func nvrtcCubin(n *nvrtcAPI, ver, arch, src string, opts []string) ([]byte, error) {
	var prog uintptr
	csrc, cname := cString(src), cString("kernel.cu")
	if r := call(n.nvrtcCreateProgram, uintptr(unsafe.Pointer(&prog)), uintptr(unsafe.Pointer(&csrc[0])),
		uintptr(unsafe.Pointer(&cname[0])), 0, 0, 0); r != nvrtcSuccess {
		return nil, nvrtcErr("nvrtcCreateProgram", r)
	}
	defer call(n.nvrtcDestroyProgram, uintptr(unsafe.Pointer(&prog)))

	// An explicit architecture among opts replaces arch: Hopper's
	// warpgroup instructions (wgmma) need sm_90a, the architecture-specific
	// variant of sm_90, whose machine code loads only on compute capability
	// 9.0 itself.
	rest := make([]string, 0, len(opts))
	for _, o := range opts {
		if a, ok := strings.CutPrefix(o, "--gpu-architecture="); ok {
			arch = a
			continue
		}
		rest = append(rest, o)
	}
	all := append([]string{"--gpu-architecture=" + arch, "--std=c++17"}, rest...)
	var pin runtime.Pinner
	defer pin.Unpin()
	ptrs := make([]uintptr, len(all))
	for i, o := range all {
		c := cString(o)
		pin.Pin(&c[0])
		ptrs[i] = uintptr(unsafe.Pointer(&c[0]))
	}
	r := call(n.nvrtcCompileProgram, prog, uintptr(len(all)), uintptr(unsafe.Pointer(&ptrs[0])))
	if r != nvrtcSuccess {
		var logSize uint64
		call(n.nvrtcGetProgramLogSize, prog, uintptr(unsafe.Pointer(&logSize)))
		log := make([]byte, logSize+1)
		call(n.nvrtcGetProgramLog, prog, uintptr(unsafe.Pointer(&log[0])))
		return nil, &CompileError{Backend: "NVRTC " + ver + " (" + arch + ")",
			Msg: nvrtcErr("nvrtcCompileProgram", r).Error(), Log: strings.TrimRight(string(log), "\x00")}
	}
	var size uint64
	if r := call(n.nvrtcGetCUBINSize, prog, uintptr(unsafe.Pointer(&size))); r != nvrtcSuccess {
		return nil, nvrtcErr("nvrtcGetCUBINSize", r)
	}
	image := make([]byte, size)
	if r := call(n.nvrtcGetCUBIN, prog, uintptr(unsafe.Pointer(&image[0]))); r != nvrtcSuccess {
		return nil, nvrtcErr("nvrtcGetCUBIN", r)
	}
	return image, nil
}

// compile runs NVRTC on src for this GPU's architecture (sm_XY, a CUBIN the
// driver loads without a JIT step) and loads the result as a module.
func (b *cudaBackend) compile(src string, opts []string) (uintptr, error) {
	image, err := b.buildImage(src, opts)
	if err != nil {
		return 0, err
	}
	return b.loadImage(image)
}

// buildImage is compile's NVRTC half: it touches no CUDA context and no
// state of b but the architecture, fixed when the device opened.
func (b *cudaBackend) buildImage(src string, opts []string) ([]byte, error) {
	return nvrtcCubin(&nvrtcLib, nvrtcVer, b.arch, src, opts)
}

// loadImage is compile's driver half: it loads a CUBIN as a module.
func (b *cudaBackend) loadImage(image []byte) (uintptr, error) {
	if err := b.bind(); err != nil {
		return 0, err
	}
	var mod uintptr
	if r := call(cudaLib.cuModuleLoadData, uintptr(unsafe.Pointer(&mod)), uintptr(unsafe.Pointer(&image[0]))); r != cudaSuccess {
		return 0, cuErr("cuModuleLoadData", r)
	}
	return mod, nil
}

func (b *cudaBackend) unload(mod uintptr) error {
	if err := b.bind(); err != nil {
		return err
	}
	for _, fn := range b.modFuncs[mod] {
		delete(b.dynShared, fn)
		delete(b.staticShared, fn)
	}
	delete(b.modFuncs, mod)
	return cuErr("cuModuleUnload", call(cudaLib.cuModuleUnload, mod))
}

func (b *cudaBackend) function(mod uintptr, name string) (uintptr, int, error) {
	if err := b.bind(); err != nil {
		return 0, 0, err
	}
	var fn uintptr
	cname := cString(name)
	if r := call(cudaLib.cuModuleGetFunction, uintptr(unsafe.Pointer(&fn)), mod, uintptr(unsafe.Pointer(&cname[0]))); r != cudaSuccess {
		err := cuErr("cuModuleGetFunction", r)
		return 0, 0, fmt.Errorf("kernel %q: %w (is it declared extern \"C\" __global__?)", name, err)
	}
	var maxThreads int32
	if r := call(cudaLib.cuFuncGetAttribute, uintptr(unsafe.Pointer(&maxThreads)), funcAttrMaxThreadsPerBlock, fn); r != cudaSuccess {
		return 0, 0, cuErr("cuFuncGetAttribute", r)
	}
	var static int32
	if r := call(cudaLib.cuFuncGetAttribute, uintptr(unsafe.Pointer(&static)), funcAttrSharedSize, fn); r != cudaSuccess {
		return 0, 0, cuErr("cuFuncGetAttribute", r)
	}
	b.staticShared[fn] = int(static)
	b.modFuncs[mod] = append(b.modFuncs[mod], fn)
	return fn, int(maxThreads), nil
}

func (b *cudaBackend) launch(fn uintptr, _ int, cfg LaunchConfig, args []any) error {
	if len(args) > maxKernelArgs {
		return fmt.Errorf("%d arguments; at most %d", len(args), maxKernelArgs)
	}
	if err := b.bind(); err != nil {
		return err
	}
	for i, a := range args {
		var v uint64
		switch x := a.(type) {
		case *Buffer:
			v = uint64(x.h)
		case int32:
			v = uint64(uint32(x))
		case uint32:
			v = uint64(x)
		case int64:
			v = uint64(x)
		case uint64:
			v = x
		case float32:
			v = uint64(math.Float32bits(x))
		case float64:
			v = math.Float64bits(x)
		}
		b.argv[i] = v
	}
	if cfg.SharedMem+b.staticShared[fn] > defaultDynamicSharedLimit && b.dynShared[fn] < cfg.SharedMem {
		if r := call(cudaLib.cuFuncSetAttribute, fn, funcAttrMaxDynamicShared, uintptr(cfg.SharedMem)); r != cudaSuccess {
			return cuErr("cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)", r)
		}
		b.dynShared[fn] = cfg.SharedMem
	}
	g, bl := cfg.Grid.norm(), cfg.Block.norm()
	var params uintptr
	if len(args) > 0 {
		params = uintptr(unsafe.Pointer(&b.argp[0]))
	}
	stream := cudaStreamLegacy
	if b.capturing {
		stream = b.stream
	}
	if cfg.Overlap && b.capturing && b.overlap {
		// Programmatic dependent launch: the kernel may start while the
		// one before it finishes, and waits for it with
		// griddepcontrol.wait before it reads what that one wrote.
		attr := cuLaunchAttribute{id: cuLaunchAttributeProgrammaticStreamSerialization}
		attr.val[0] = 1 // programmaticStreamSerializationAllowed
		lc := cuLaunchConfig{gridX: uint32(g.X), gridY: uint32(g.Y), gridZ: uint32(g.Z),
			blockX: uint32(bl.X), blockY: uint32(bl.Y), blockZ: uint32(bl.Z), sharedMem: uint32(cfg.SharedMem),
			stream: stream, attrs: uintptr(unsafe.Pointer(&attr)), numAttrs: 1}
		r := call(launchKernelEx, uintptr(unsafe.Pointer(&lc)), fn, params, 0)
		runtime.KeepAlive(&attr)
		runtime.KeepAlive(&lc)
		return cuErr("cuLaunchKernelEx", r)
	}
	r := call(cudaLib.cuLaunchKernel, fn, uintptr(g.X), uintptr(g.Y), uintptr(g.Z),
		uintptr(bl.X), uintptr(bl.Y), uintptr(bl.Z), uintptr(cfg.SharedMem), stream, params, 0)
	return cuErr("cuLaunchKernel", r)
}

// cuLaunchAttributeProgrammaticStreamSerialization is
// CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION.
const cuLaunchAttributeProgrammaticStreamSerialization = 6

// cuLaunchAttribute is CUlaunchAttribute: an id, padding to 8 bytes, and a
// 64-byte union of values.
type cuLaunchAttribute struct {
	id  uint32
	_   uint32
	val [16]uint32
}

// cuLaunchConfig is CUlaunchConfig.
type cuLaunchConfig struct {
	gridX, gridY, gridZ    uint32
	blockX, blockY, blockZ uint32
	sharedMem              uint32
	_                      uint32
	stream                 uintptr
	attrs                  uintptr
	numAttrs               uint32
	_                      uint32
}

func (b *cudaBackend) sync() error {
	if err := b.bind(); err != nil {
		return err
	}
	return cuErr("cuCtxSynchronize", call(cudaLib.cuCtxSynchronize))
}

func (b *cudaBackend) newEvent() (uintptr, error) {
	if err := b.bind(); err != nil {
		return 0, err
	}
	var ev uintptr
	if r := call(cudaLib.cuEventCreate, uintptr(unsafe.Pointer(&ev)), cudaEventDefault); r != cudaSuccess {
		return 0, cuErr("cuEventCreate", r)
	}
	return ev, nil
}

func (b *cudaBackend) record(ev uintptr) error {
	if err := b.bind(); err != nil {
		return err
	}
	return cuErr("cuEventRecord", call(cudaLib.cuEventRecord, ev, cudaStreamLegacy))
}

func (b *cudaBackend) elapsed(start, end uintptr) (time.Duration, error) {
	if err := b.bind(); err != nil {
		return 0, err
	}
	if r := call(cudaLib.cuEventSynchronize, end); r != cudaSuccess {
		return 0, cuErr("cuEventSynchronize", r)
	}
	var ms float32
	if r := call(cudaLib.cuEventElapsedTime, uintptr(unsafe.Pointer(&ms)), start, end); r != cudaSuccess {
		return 0, cuErr("cuEventElapsedTime", r)
	}
	return time.Duration(float64(ms) * float64(time.Millisecond)), nil
}

func (b *cudaBackend) freeEvent(ev uintptr) error {
	if err := b.bind(); err != nil {
		return err
	}
	return cuErr("cuEventDestroy", call(cudaLib.cuEventDestroy, ev))
}

func (b *cudaBackend) memInfo() (int64, int64, error) {
	if err := b.bind(); err != nil {
		return 0, 0, err
	}
	var free, total uint64
	if r := call(cudaLib.cuMemGetInfo, uintptr(unsafe.Pointer(&free)), uintptr(unsafe.Pointer(&total))); r != cudaSuccess {
		return 0, 0, cuErr("cuMemGetInfo", r)
	}
	return int64(free), int64(total), nil
}

// beginCapture starts capturing the launches that follow into a graph, on
// the backend's own stream. Relaxed mode: the launches of one capture come
// from whichever OS thread the calling goroutine runs on at the time, and
// nothing else may use the device meanwhile (Device enforces it).
func (b *cudaBackend) beginCapture() error {
	if graphLoadErr != nil {
		return fmt.Errorf("this CUDA driver has no graph capture: %w", graphLoadErr)
	}
	if err := b.bind(); err != nil {
		return err
	}
	if b.stream == 0 {
		if r := call(graphLib.cuStreamCreate, uintptr(unsafe.Pointer(&b.stream)), cuStreamDefault); r != cudaSuccess {
			return cuErr("cuStreamCreate", r)
		}
	}
	if r := call(graphLib.cuStreamBeginCapture, b.stream, cuStreamCaptureModeRelaxed); r != cudaSuccess {
		return cuErr("cuStreamBeginCapture", r)
	}
	b.capturing = true
	return nil
}

// endCapture ends the capture and instantiates the graph (an executable
// graph, CUgraphExec), unless discard says the capture failed half way.
func (b *cudaBackend) endCapture(discard bool) (uintptr, error) {
	b.capturing = false
	if err := b.bind(); err != nil {
		return 0, err
	}
	var graph uintptr
	r := call(graphLib.cuStreamEndCapture, b.stream, uintptr(unsafe.Pointer(&graph)))
	if graph != 0 {
		defer call(graphLib.cuGraphDestroy, graph) // the executable graph keeps what it needs
	}
	if r != cudaSuccess {
		return 0, cuErr("cuStreamEndCapture", r)
	}
	if discard {
		return 0, nil
	}
	if graph == 0 {
		return 0, errors.New("cuStreamEndCapture: no graph (nothing was launched while capturing)")
	}
	var exec uintptr
	if r := call(graphLib.cuGraphInstantiateWithFlags, uintptr(unsafe.Pointer(&exec)), graph, 0); r != cudaSuccess {
		return 0, cuErr("cuGraphInstantiateWithFlags", r)
	}
	return exec, nil
}

// graphLaunch queues the whole graph on the backend's stream: one call,
// however many kernels it holds.
func (b *cudaBackend) graphLaunch(h uintptr) error {
	if err := b.bind(); err != nil {
		return err
	}
	return cuErr("cuGraphLaunch", call(graphLib.cuGraphLaunch, h, b.stream))
}

func (b *cudaBackend) graphFree(h uintptr) error {
	if err := b.bind(); err != nil {
		return err
	}
	return cuErr("cuGraphExecDestroy", call(graphLib.cuGraphExecDestroy, h))
}

func (b *cudaBackend) close() error {
	if b.stream != 0 {
		b.bind()
		call(graphLib.cuStreamDestroy, b.stream)
		b.stream = 0
	}
	err := cuErr("cuDevicePrimaryCtxRelease", call(cudaLib.cuDevicePrimaryCtxRelease, uintptr(b.dev)))
	call(cudaLib.cuCtxSetCurrent, 0)
	return err
}
