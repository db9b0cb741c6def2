package kernels_test

import (
	_ "embed"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

//go:embed testdata/runtime.cu
var runtimeCU string

//go:embed testdata/runtime.metal
var runtimeMetal string

// open opens the GPU (or skips by name) and compiles the test kernels.
func open(t *testing.T) (*kernels.Device, *kernels.Module) {
	t.Helper()
	d := kerneltest.Open(t)
	m, err := d.Compile(kerneltest.Source(t, d, runtimeCU, runtimeMetal))
	if err != nil {
		t.Fatalf("compiling the test kernels: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return d, m
}

func kernel(t *testing.T, m *kernels.Module, name string) *kernels.Kernel {
	t.Helper()
	k, err := m.Kernel(name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenWithoutGPUIsClean runs everywhere: with no GPU (or when told to
// pretend there is none) Open returns an error that wraps ErrNoDevice, and
// nothing panics.
func TestOpenWithoutGPUIsClean(t *testing.T) {
	t.Setenv("TINYLLM_DEVICE", "cpu")
	d, err := kernels.Open()
	if d != nil || !errors.Is(err, kernels.ErrNoDevice) {
		t.Fatalf("Open with TINYLLM_DEVICE=cpu = %v, %v; want nil and ErrNoDevice", d, err)
	}
	os.Unsetenv("TINYLLM_DEVICE")
	d, err = kernels.Open()
	switch {
	case err == nil:
		t.Logf("this machine has a GPU: %s; %s", d, d.Info().Driver)
		must(t, d.Close())
		must(t, d.Close()) // twice is fine
		if _, err := d.Alloc(16); !errors.Is(err, kernels.ErrClosed) {
			t.Errorf("Alloc on a closed device: %v, want ErrClosed", err)
		}
	case errors.Is(err, kernels.ErrNoDevice):
		t.Logf("no GPU here, as Open says cleanly: %v", err)
		if !strings.HasPrefix(err.Error(), "no GPU device") {
			t.Errorf("error %q does not start with \"no GPU device\"", err)
		}
	default:
		t.Fatalf("Open failed with an error that is not ErrNoDevice: %v", err)
	}
}

func TestGPUInfo(t *testing.T) {
	d := kerneltest.Open(t)
	inf := d.Info()
	t.Logf("%+v", inf)
	if inf.Name == "" || inf.Memory <= 0 || inf.MaxThreadsPerBlock < 256 || inf.MaxSharedMemory < 16<<10 {
		t.Errorf("implausible device info: %+v", inf)
	}
	free, total, err := d.MemInfo()
	must(t, err)
	if free <= 0 || free > total {
		t.Errorf("MemInfo: free %d, total %d", free, total)
	}
}

func TestGPUTypedCopiesRoundTrip(t *testing.T) {
	d := kerneltest.Open(t)
	r := rand.New(rand.NewPCG(1, 2))
	f32 := make([]float32, 1000)
	bf16 := make([]uint16, 777)
	u32 := make([]uint32, 333)
	i32 := make([]int32, 333)
	for i := range f32 {
		f32[i] = float32(r.NormFloat64())
	}
	for i := range bf16 {
		bf16[i] = uint16(r.Uint32())
	}
	for i := range u32 {
		u32[i], i32[i] = r.Uint32(), int32(r.Uint32())
	}
	roundTrip(t, d, f32)
	roundTrip(t, d, bf16)
	roundTrip(t, d, u32)
	roundTrip(t, d, i32)

	// Offsets, device-to-device copies, Fill and bounds.
	a, err := kernels.Upload(d, f32)
	must(t, err)
	defer a.Free()
	b, err := d.Alloc(a.Size())
	must(t, err)
	defer b.Free()
	must(t, b.Fill(0xFF))
	must(t, kernels.Copy(b, 40, a, 0, 400)) // elements 10..109 of b = 0..99 of a
	got, err := kernels.Download[float32](b, 120)
	must(t, err)
	for i, v := range got {
		switch {
		case i < 10 || i >= 110:
			if !math.IsNaN(float64(v)) {
				t.Fatalf("element %d = %v, want the NaN poison (Fill 0xFF)", i, v)
			}
		case v != f32[i-10]:
			t.Fatalf("element %d = %v after Copy, want %v", i, v, f32[i-10])
		}
	}
	part := make([]float32, 5)
	must(t, kernels.Read(part, a, 995))
	if part[4] != f32[999] {
		t.Errorf("Read at an offset: %v, want %v", part[4], f32[999])
	}
	if err := kernels.Read(make([]float32, 6), a, 995); err == nil {
		t.Error("reading past the end of a buffer gave no error")
	}
	if err := kernels.Write(a, -1, f32[:1]); err == nil {
		t.Error("writing at offset -1 gave no error")
	}
	if _, err := d.Alloc(0); err == nil {
		t.Error("Alloc(0) gave no error")
	}
}

func roundTrip[T kernels.Elem](t *testing.T, d *kernels.Device, src []T) {
	t.Helper()
	b, err := kernels.Upload(d, src)
	must(t, err)
	defer b.Free()
	got, err := kernels.Download[T](b, len(src))
	must(t, err)
	for i := range src {
		if got[i] != src[i] {
			t.Fatalf("%T round trip: element %d = %v, want %v", src, i, got[i], src[i])
		}
	}
}

// TestGPUCompileErrorCarriesLog: a kernel with a syntax error yields the
// compiler's log, which names the line and the problem.
func TestGPUCompileErrorCarriesLog(t *testing.T) {
	d := kerneltest.Open(t)
	bad := kerneltest.Source(t, d,
		"extern \"C\" __global__ void broken(float* x) {\n  x[0] = 1.0f;\n  undeclared_thing += 2;\n  x[1] = ;\n}\n",
		"#include <metal_stdlib>\nkernel void broken(device float* x [[buffer(0)]]) {\n  x[0] = 1.0f;\n  undeclared_thing += 2;\n  x[1] = ;\n}\n")
	m, err := d.Compile(bad)
	if err == nil {
		m.Close()
		t.Fatal("a kernel with a syntax error compiled")
	}
	var ce *kernels.CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("error is %T, want *kernels.CompileError: %v", err, err)
	}
	t.Logf("the compiler said:\n%v", err)
	if !strings.Contains(ce.Log, "undeclared_thing") || !strings.Contains(strings.ToLower(ce.Log), "error") {
		t.Errorf("the log does not name the problem:\n%s", ce.Log)
	}
	if !strings.Contains(err.Error(), ce.Log[:min(len(ce.Log), 40)]) {
		t.Errorf("Error() does not carry the log: %v", err)
	}
	if s := d.Stats(); s.Modules != 0 {
		t.Errorf("a failed compile left %d modules live", s.Modules)
	}
}

func TestGPUMissingKernelIsAnError(t *testing.T) {
	_, m := open(t)
	if _, err := m.Kernel("no_such_kernel"); err == nil {
		t.Fatal("looking up a missing kernel gave no error")
	} else {
		t.Log(err)
	}
}

func TestGPULaunchArguments(t *testing.T) {
	d, m := open(t)
	out, err := d.Alloc(16 * 4)
	must(t, err)
	defer out.Free()
	a, b, c := int32(-123456), uint32(0xDEADBEEF), float32(-3.25)
	dd, e := int64(-0x123456789AB), uint64(0xFEDCBA9876543210)
	must(t, d.Launch(kernel(t, m, "echo_args"), kernels.LaunchConfig{Grid: kernels.D1(1), Block: kernels.D1(32)}, out, a, b, c, dd, e))
	got, err := kernels.Download[uint32](out, 7)
	must(t, err)
	want := []uint32{uint32(a), b, math.Float32bits(c), uint32(uint64(dd)), uint32(uint64(dd) >> 32), uint32(e), uint32(e >> 32)}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("argument word %d: got %#x, want %#x", i, got[i], want[i])
		}
	}
	if d.Backend() == kernels.CUDA { // Metal has no double
		x := math.Pi
		must(t, d.Launch(kernel(t, m, "echo_f64"), kernels.LaunchConfig{Grid: kernels.D1(1), Block: kernels.D1(1)}, out, x))
		g, err := kernels.Download[uint64](out, 1)
		must(t, err)
		if g[0] != math.Float64bits(x) {
			t.Errorf("float64 argument: got %#x, want %#x", g[0], math.Float64bits(x))
		}
	}
	if err := d.Launch(kernel(t, m, "echo_args"), kernels.LaunchConfig{Grid: kernels.D1(1), Block: kernels.D1(1)}, out, 1, b, c, dd, e); err == nil {
		t.Error("a plain Go int argument was accepted")
	}
}

// TestGPUGridAndSharedMemory runs a 2-D grid and a kernel using dynamic
// shared memory, above CUDA's 48 KiB default where the device allows it,
// and on CUDA one whose static and dynamic shared memory are above it
// only together.
func TestGPUGridAndSharedMemory(t *testing.T) {
	d, m := open(t)
	const n = 100_003
	out, err := d.Alloc(n * 4)
	must(t, err)
	defer out.Free()
	must(t, out.Fill(0xFF))
	blocks := kernels.Blocks(n, 128)
	gx := 64
	gy := kernels.Blocks(blocks, gx)
	must(t, d.Launch(kernel(t, m, "iota2d"), kernels.LaunchConfig{Grid: kernels.Dim3{X: gx, Y: gy, Z: 1}, Block: kernels.D1(128)}, out, uint32(n)))
	got, err := kernels.Download[float32](out, n)
	must(t, err)
	for i, v := range got {
		if v != float32(i) {
			t.Fatalf("iota2d: element %d = %v", i, v)
		}
	}

	block := 1024
	if d.Info().MaxThreadsPerBlock < block {
		block = d.Info().MaxThreadsPerBlock
	}
	tiles := 64
	in := make([]float32, tiles*block)
	for i := range in {
		in[i] = float32(i)
	}
	src, err := kernels.Upload(d, in)
	must(t, err)
	defer src.Free()
	dst, err := d.Alloc(src.Size())
	must(t, err)
	defer dst.Free()
	shared := block * 4
	if big := 64 << 10; big <= d.Info().MaxSharedMemory {
		shared = big // over 48 KiB: CUDA needs the function attribute set
	}
	// reverse launches name with shared bytes of dynamic shared memory and
	// checks that each tile of in came back reversed.
	reverse := func(name string, shared int) {
		t.Helper()
		must(t, dst.Fill(0))
		must(t, d.Launch(kernel(t, m, name), kernels.LaunchConfig{Grid: kernels.D1(tiles), Block: kernels.D1(block), SharedMem: shared}, dst, src))
		got, err := kernels.Download[float32](dst, len(in))
		must(t, err)
		for i, v := range got {
			tile, j := i/block, i%block
			if want := in[tile*block+block-1-j]; v != want {
				t.Fatalf("%s: element %d = %v, want %v", name, i, v, want)
			}
		}
	}
	reverse("reverse_tiles", shared)
	if d.Backend() == kernels.CUDA {
		// 8 KB of static shared memory and 44 KB of dynamic: only the
		// sum is over 48 KiB.
		reverse("reverse_tiles_static", 44<<10)
	}
}

// TestGPUBadLaunchConfigIsAnError: shapes the device cannot run fail at
// launch with the driver's message, and the device keeps working after.
func TestGPUBadLaunchConfigIsAnError(t *testing.T) {
	d, m := open(t)
	k := kernel(t, m, "add_one")
	buf, err := kernels.Upload(d, make([]float32, 256))
	must(t, err)
	defer buf.Free()
	bad := map[string]kernels.LaunchConfig{
		"block larger than the kernel's limit": {Grid: kernels.D1(1), Block: kernels.D1(k.MaxThreadsPerBlock() * 2)},
		"block of 0 threads":                   {Grid: kernels.D1(1), Block: kernels.D1(0)},
		"negative grid":                        {Grid: kernels.D1(-1), Block: kernels.D1(32)},
		"more shared memory than the device":   {Grid: kernels.D1(1), Block: kernels.D1(32), SharedMem: d.Info().MaxSharedMemory + 1},
	}
	if d.Backend() == kernels.CUDA {
		bad["grid.y over 65535"] = kernels.LaunchConfig{Grid: kernels.Dim3{X: 1, Y: 70000, Z: 1}, Block: kernels.D1(32)}
		bad["block.z over 64"] = kernels.LaunchConfig{Grid: kernels.D1(1), Block: kernels.Dim3{X: 1, Y: 1, Z: 128}}
	}
	for name, cfg := range bad {
		err := d.Launch(k, cfg, buf, uint32(256))
		if err == nil {
			t.Errorf("%s: launch gave no error", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	must(t, d.Synchronize())
	must(t, d.Launch(k, kernels.LaunchConfig{Grid: kernels.D1(1), Block: kernels.D1(256)}, buf, uint32(256)))
	got, err := kernels.Download[float32](buf, 256)
	must(t, err)
	if got[0] != 1 || got[255] != 1 {
		t.Errorf("after the failed launches a good one gave %v, %v; want 1, 1", got[0], got[255])
	}
}

func TestGPUEventsTime(t *testing.T) {
	d, m := open(t)
	const n = 1 << 24
	buf, err := d.Alloc(n * 4)
	must(t, err)
	defer buf.Free()
	must(t, buf.Fill(0))
	start, err := d.NewEvent()
	must(t, err)
	defer start.Free()
	end, err := d.NewEvent()
	must(t, err)
	defer end.Free()
	k := kernel(t, m, "add_one")
	must(t, start.Record())
	for range 10 {
		must(t, d.Launch(k, kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(n, 256)), Block: kernels.D1(256)}, buf, uint32(n)))
	}
	must(t, end.Record())
	el, err := kernels.Elapsed(start, end)
	must(t, err)
	t.Logf("10 passes over %d MiB: %v (%.0f GB/s read+write)", n*4>>20, el, 10*2*float64(n*4)/el.Seconds()/1e9)
	if el <= 0 {
		t.Errorf("elapsed %v, want > 0", el)
	}
	got, err := kernels.Download[float32](buf, n)
	must(t, err)
	if got[0] != 10 || got[n-1] != 10 {
		t.Errorf("after 10 add_one: %v, %v", got[0], got[n-1])
	}
}

// TestGPUNoLeaks allocates, launches and frees thousands of times; the
// device's live counts and its free memory must come back to where they
// started.
func TestGPUNoLeaks(t *testing.T) {
	d, m := open(t)
	k := kernel(t, m, "add_one")
	must(t, d.Synchronize())
	base := d.Stats()
	free0, _, err := d.MemInfo()
	must(t, err)
	const iters = 5000
	for i := range iters {
		n := 1024 + i%4096
		b, err := d.Alloc(n * 4)
		must(t, err)
		must(t, d.Launch(k, kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(n, 256)), Block: kernels.D1(256)}, b, uint32(n)))
		if i%500 == 0 {
			ev, err := d.NewEvent()
			must(t, err)
			must(t, ev.Record())
			must(t, ev.Free())
			mod, err := d.Compile(kerneltest.Source(t, d, runtimeCU, runtimeMetal))
			must(t, err)
			_, err = mod.Kernel("empty_kernel")
			must(t, err)
			must(t, mod.Close())
		}
		must(t, b.Free())
		must(t, b.Free()) // a second Free is a no-op
	}
	must(t, d.Synchronize())
	if s := d.Stats(); s != base {
		t.Errorf("after %d alloc/launch/free rounds the device holds %+v, it held %+v before", iters, s, base)
	}
	free1, _, err := d.MemInfo()
	must(t, err)
	t.Logf("free device memory before %d MiB, after %d MiB", free0>>20, free1>>20)
	if free1 < free0-(16<<20) {
		t.Errorf("free device memory fell by %d MiB over %d rounds", (free0-free1)>>20, iters)
	}
}

// TestGPUConcurrentGoroutines drives one device from many goroutines (and so
// many OS threads): each call must find the device's context bound.
func TestGPUConcurrentGoroutines(t *testing.T) {
	d, m := open(t)
	k := kernel(t, m, "add_one")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 1000 + g
			b, err := kernels.Upload(d, make([]float32, n))
			if err != nil {
				errs <- err
				return
			}
			defer b.Free()
			for range 50 {
				if err := d.Launch(k, kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(n, 128)), Block: kernels.D1(128)}, b, uint32(n)); err != nil {
					errs <- err
					return
				}
			}
			got, err := kernels.Download[float32](b, n)
			if err != nil {
				errs <- err
				return
			}
			if got[0] != 50 || got[n-1] != 50 {
				errs <- errors.New("wrong sum from a goroutine")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
