// Package kerneltest opens the GPU for a test: it skips the test, saying by
// name that it did not run, on a machine with no GPU, and fails it when the
// GPU is required (TINYLLM_REQUIRE_GPU=1, as scripts/gpu-check.sh sets when it
// runs the checks) so that a GPU run can never pass by skipping.
package kerneltest

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/kernels"
)

// RequireEnv is the environment variable that turns a missing GPU from a
// skip into a failure.
const RequireEnv = "TINYLLM_REQUIRE_GPU"

// Open opens the machine's GPU and closes it when the test ends, checking
// that the test freed everything it allocated.
func Open(t testing.TB) *kernels.Device {
	t.Helper()
	d, err := kernels.Open()
	if err != nil {
		if errors.Is(err, kernels.ErrNoDevice) && os.Getenv(RequireEnv) == "" {
			why := strings.TrimPrefix(err.Error(), kernels.ErrNoDevice.Error()+": ")
			t.Skipf("not run: no GPU device (%s)", why)
		}
		t.Fatalf("opening the GPU: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("closing %s: %v", d, err)
		}
	})
	return d
}

// Source picks the kernel source for the device's backend.
func Source(t testing.TB, d *kernels.Device, cuda, metal string) string {
	t.Helper()
	switch d.Backend() {
	case kernels.CUDA:
		return cuda
	case kernels.Metal:
		return metal
	}
	t.Fatalf("unknown backend %q", d.Backend())
	return ""
}

// TimeGPU reports the device time of one run of a benchmark ("us/gpu") and
// the GB/s of bytes moved in that time: b.N runs between two events, after
// 100 ms of untimed runs, since a GPU that has been idle runs at a fraction
// of its clocks until the driver raises them, which takes milliseconds of
// steady work.
func TimeGPU(b *testing.B, d *kernels.Device, bytes int64, run func() error) {
	b.Helper()
	for warm := time.Now().Add(100 * time.Millisecond); time.Now().Before(warm); {
		if err := run(); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Synchronize(); err != nil {
		b.Fatal(err)
	}
	per, _ := DeviceTime(b, d, b.N, func(int) error { return run() })
	b.ReportMetric(float64(per.Nanoseconds())/1e3, "us/gpu")
	b.ReportMetric(float64(bytes)/per.Seconds()/1e9, "GB/s")
}

// DeviceTime runs run(0) … run(n-1) between two events and returns the
// device time of one run (the whole when n < 1) and the host's time to
// issue one (the loop's wall time, before waiting for the device). The
// benchmark's timer is
// reset before the first run and stopped after the last, so that b's own
// time covers the same runs. Warming up is the caller's: the runs before
// it, and a Synchronize after them.
func DeviceTime(b *testing.B, d *kernels.Device, n int, run func(i int) error) (device, host time.Duration) {
	b.Helper()
	start, err := d.NewEvent()
	if err != nil {
		b.Fatal(err)
	}
	defer start.Free()
	end, err := d.NewEvent()
	if err != nil {
		b.Fatal(err)
	}
	defer end.Free()
	b.ResetTimer()
	if err := start.Record(); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	for i := range n {
		if err := run(i); err != nil {
			b.Fatal(err)
		}
	}
	host = time.Since(t0)
	if err := end.Record(); err != nil {
		b.Fatal(err)
	}
	el, err := kernels.Elapsed(start, end)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	runs := time.Duration(max(n, 1))
	return el / runs, host / runs
}

// GraphTime captures launch(0) … launch(rounds-1) into one graph and
// returns the device time of one launch over b.N replays of it: a launch
// as a captured decode step runs it, without the host's few microseconds
// per launch (which bound a small kernel launched eagerly). Kernels that
// may start while the one before them drains (programmatic dependent
// launch) do so inside the graph. One eager round and three replays come
// first: buffers the launches grow are allocated outside the capture,
// where allocating is not allowed.
func GraphTime(b *testing.B, d *kernels.Device, rounds int, launch func(i int) error) time.Duration {
	b.Helper()
	for i := range rounds {
		if err := launch(i); err != nil {
			b.Fatal(err)
		}
	}
	g, err := d.Capture(func() error {
		for i := range rounds {
			if err := launch(i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Free()
	for range 3 {
		if err := g.Launch(); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Synchronize(); err != nil {
		b.Fatal(err)
	}
	per, _ := DeviceTime(b, d, b.N, func(int) error { return g.Launch() })
	return per / time.Duration(rounds)
}
