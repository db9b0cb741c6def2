package kernels_test

import (
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/kernels"
)

// benchResult is what the GPU measurements write to $TINYLLM_BENCH_OUT
// (scripts/gpu-check.sh collects it), beside the test log.
type benchResult struct {
	Device         string  `json:"device"`
	CopyBytes      int64   `json:"copy_bytes_per_buffer"`
	KernelCopyGBps float64 `json:"kernel_copy_gbps"`
	DriverCopyGBps float64 `json:"driver_copy_gbps"`
	TorchCopyGBps  float64 `json:"torch_copy_gbps,omitempty"`
}

func writeBench(t *testing.T, key string, v any) {
	path := os.Getenv("TINYLLM_BENCH_OUT")
	if path == "" {
		return
	}
	all := map[string]any{}
	if data, err := os.ReadFile(path); err == nil {
		json.Unmarshal(data, &all)
	}
	all[key] = v
	data, _ := json.MarshalIndent(all, "", "  ")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Error(err)
	}
}

// timeMedian runs fn warm times, then reps times between two events each,
// and returns the median device time.
func timeMedian(t *testing.T, d *kernels.Device, warm, reps int, fn func() error) time.Duration {
	t.Helper()
	start, err := d.NewEvent()
	must(t, err)
	defer start.Free()
	end, err := d.NewEvent()
	must(t, err)
	defer end.Free()
	for range warm {
		must(t, fn())
	}
	var ts []time.Duration
	for range reps {
		must(t, start.Record())
		must(t, fn())
		must(t, end.Record())
		el, err := kernels.Elapsed(start, end)
		must(t, err)
		ts = append(ts, el)
	}
	slices.Sort(ts)
	return ts[len(ts)/2]
}

// TestGPUCopyBandwidth times a large device-to-device copy by a kernel
// (float4 loads and stores) and by the driver, counting bytes read plus
// bytes written. When scripts/gpu-check.sh passes PyTorch's figure for the
// same copy on the same machine (TINYLLM_TORCH_COPY_GBPS), the kernel must
// reach 80% of it.
func TestGPUCopyBandwidth(t *testing.T) {
	d, m := open(t)
	size := int64(1 << 30)
	for size > 64<<20 && size*3 > d.Info().Memory {
		size /= 2
	}
	src, err := d.Alloc(int(size))
	must(t, err)
	defer src.Free()
	dst, err := d.Alloc(int(size))
	must(t, err)
	defer dst.Free()
	must(t, src.Fill(0x3F)) // not zeros: every float is 0.747
	must(t, dst.Fill(0xFF))
	k := kernel(t, m, "copy_f4")
	n4 := uint64(size / 16)
	cfg := kernels.LaunchConfig{Grid: kernels.D1(kernels.Blocks(int(n4), 256)), Block: kernels.D1(256)}
	kt := timeMedian(t, d, 3, 20, func() error { return d.Launch(k, cfg, dst, src, n4) })
	got, err := kernels.Download[float32](dst, 4)
	must(t, err)
	if last := make([]float32, 1); kernels.Read(last, dst, int(size/4)-1) != nil || got[0] == 0 || got[0] != last[0] {
		t.Fatalf("the copy kernel did not copy: first %v, last %v", got[0], last[0])
	}
	dt := timeMedian(t, d, 3, 20, func() error { return kernels.Copy(dst, 0, src, 0, int(size)) })
	gbps := func(el time.Duration) float64 { return 2 * float64(size) / el.Seconds() / 1e9 }
	res := benchResult{Device: d.String(), CopyBytes: size, KernelCopyGBps: gbps(kt), DriverCopyGBps: gbps(dt)}
	t.Logf("%s: copy of %d MiB: kernel %.0f GB/s (%v), driver %.0f GB/s (%v), read+write bytes, median of 20",
		d, size>>20, res.KernelCopyGBps, kt, res.DriverCopyGBps, dt)
	if s := os.Getenv("TINYLLM_TORCH_COPY_GBPS"); s != "" {
		torch, err := strconv.ParseFloat(s, 64)
		must(t, err)
		res.TorchCopyGBps = torch
		ratio := res.KernelCopyGBps / torch
		t.Logf("PyTorch on the same machine: %.0f GB/s; the kernel reaches %.1f%%", torch, 100*ratio)
		if ratio < 0.8 {
			t.Errorf("the copy kernel reaches %.1f%% of PyTorch's copy bandwidth, want at least 80%%", 100*ratio)
		}
	}
	writeBench(t, "copy", res)
}

// TestGPULaunchOverhead measures what one empty kernel launch costs: the
// host time to submit one (back to back), the device time per launch in a
// stream of them, and a launch followed by a wait for it.
func TestGPULaunchOverhead(t *testing.T) {
	d, m := open(t)
	k := kernel(t, m, "empty_kernel")
	cfg := kernels.LaunchConfig{Grid: kernels.D1(1), Block: kernels.D1(1)}
	for range 100 {
		must(t, d.Launch(k, cfg))
	}
	must(t, d.Synchronize())
	const n = 20000
	t0 := time.Now()
	for range n {
		must(t, d.Launch(k, cfg))
	}
	submit := time.Since(t0)
	must(t, d.Synchronize())
	total := time.Since(t0)
	gpu := timeMedian(t, d, 1, 5, func() error {
		for range 1000 {
			if err := d.Launch(k, cfg); err != nil {
				return err
			}
		}
		return nil
	})
	const rt = 2000
	t1 := time.Now()
	for range rt {
		must(t, d.Launch(k, cfg))
		must(t, d.Synchronize())
	}
	roundTrip := time.Since(t1)
	us := func(dur time.Duration, n int) float64 { return dur.Seconds() * 1e6 / float64(n) }
	res := map[string]any{
		"device": d.String(), "submit_us": us(submit, n), "throughput_us": us(total, n),
		"gpu_us": us(gpu, 1000), "round_trip_us": us(roundTrip, rt),
	}
	t.Logf("%s: empty launch: %.2f µs to submit, %.2f µs each back to back (incl. sync), %.2f µs device time each, %.2f µs launch+wait",
		d, res["submit_us"], res["throughput_us"], res["gpu_us"], res["round_trip_us"])
	writeBench(t, "launch", res)
}
