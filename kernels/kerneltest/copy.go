package kerneltest

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/kernels"
)

// The copy a benchmark compares a kernel with when it reads few bytes. A
// large copy (1 GiB) measures the memory's bandwidth; a copy of a few
// megabytes measures much less, since a launch's start, its first trip to
// memory and its last blocks cost a microsecond or two whatever it moves.
// No kernel can read n bytes faster than a copy moves n bytes launched the
// same way, so that copy is the ceiling for a product of that size.
//
// Each thread loads its first pieces, then waits for the launch ahead
// (griddepcontrol.wait, which returns at once in a plain launch), then
// stores: the same order as the day kernels that ask for their weights
// before that wait, so that with programmatic dependent launch the copy
// overlaps the launch ahead as much as they do.
const copyCUDA = `
#define CU 4  // 16-byte pieces a thread has in flight
extern "C" __global__ void __launch_bounds__(256) bench_copy(uint4* __restrict__ dst, const uint4* __restrict__ src,
                                                             long long n) {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
    const long long step = (long long)gridDim.x * blockDim.x;
    bool waited = false;
    for (long long base = (long long)blockIdx.x * blockDim.x + threadIdx.x; base < n; base += CU * step) {
        uint4 v[CU];
#pragma unroll
        for (int u = 0; u < CU; u++)
            if (base + u * step < n) v[u] = src[base + u * step];
        if (!waited) {
#if __CUDA_ARCH__ >= 900
            asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
            waited = true;
        }
#pragma unroll
        for (int u = 0; u < CU; u++)
            if (base + u * step < n) dst[base + u * step] = v[u];
    }
}
`

const copyMetal = `
#include <metal_stdlib>
using namespace metal;
kernel void bench_copy(device uint4* dst [[buffer(0)]], const device uint4* src [[buffer(1)]],
                       constant long& n [[buffer(2)]], uint i [[thread_position_in_grid]],
                       uint step [[threads_per_grid]]) {
    for (long j = i; j < n; j += step) dst[j] = src[j];
}
`

// CopyTime returns the device time of a copy that moves bytes in all
// (bytes/2 read and bytes/2 written, rounded up to 16-byte pieces), from a
// graph of launches that cycle through pairs of buffers filling at least
// rotate bytes, as GraphTime times a kernel: the ceiling for a kernel that
// reads bytes, launched the same way. With overlap each launch may start
// while the one ahead drains (programmatic dependent launch, where the GPU
// has it).
func CopyTime(b *testing.B, d *kernels.Device, bytes, rotate int64, overlap bool) time.Duration {
	b.Helper()
	m, err := d.Compile(Source(b, d, copyCUDA, copyMetal))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	k, err := m.Kernel("bench_copy")
	if err != nil {
		b.Fatal(err)
	}
	pieces := (bytes/2 + 15) / 16
	pairs := int(max(1, min(64, rotate/(32*pieces))))
	src, dst := make([]*kernels.Buffer, pairs), make([]*kernels.Buffer, pairs)
	defer func() {
		for i := range pairs {
			for _, buf := range []*kernels.Buffer{src[i], dst[i]} {
				if buf != nil {
					buf.Free()
				}
			}
		}
	}()
	for i := range pairs {
		if src[i], err = d.Alloc(int(16 * pieces)); err != nil {
			b.Fatal(err)
		}
		if err := src[i].Fill(0x3E); err != nil {
			b.Fatal(err)
		}
		if dst[i], err = d.Alloc(int(16 * pieces)); err != nil {
			b.Fatal(err)
		}
	}
	// The first pair's source holds a pattern the copy must reproduce: a
	// copy that skipped pieces would time fast and set the ceiling too high.
	pattern := make([]uint32, 4*pieces)
	for i := range pattern {
		pattern[i] = uint32(i)*2654435761 + 1
	}
	if err := kernels.Write(src[0], 0, pattern); err != nil {
		b.Fatal(err)
	}
	// A thread a piece while that fills the GPU, then CU pieces a thread a
	// round on 8 blocks of 256 a multiprocessor (all of them resident).
	const block = 256
	grid := kernels.Blocks(int(pieces), block)
	if sms := d.Info().Multiprocessors; sms > 0 {
		grid = min(grid, 8*sms)
	}
	cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: grid}, Block: kernels.Dim3{X: block}, Overlap: overlap}
	per := GraphTime(b, d, pairs, func(i int) error { return d.Launch(k, cfg, dst[i], src[i], pieces) })
	got, err := kernels.Download[uint32](dst[0], len(pattern))
	if err != nil {
		b.Fatal(err)
	}
	if !slices.Equal(got, pattern) {
		b.Fatalf("the copy of %d bytes did not reproduce its source", 16*pieces)
	}
	return per
}

// ReportCopy reports a copy's device time per, the bytes it moved (read
// plus written) a second, and, where scripts/gpu-check.sh measured it,
// that rate's share of PyTorch's copy of 1 GiB (TINYLLM_TORCH_COPY_GBPS).
func ReportCopy(b *testing.B, per time.Duration, bytes int64) {
	gbps := float64(bytes) / per.Seconds() / 1e9
	b.ReportMetric(float64(per.Nanoseconds())/1e3, "us/gpu")
	b.ReportMetric(gbps, "GB/s")
	if big, err := strconv.ParseFloat(os.Getenv("TINYLLM_TORCH_COPY_GBPS"), 64); err == nil && big > 0 {
		b.ReportMetric(100*gbps/big, "%copy")
	}
}
