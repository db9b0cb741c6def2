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
