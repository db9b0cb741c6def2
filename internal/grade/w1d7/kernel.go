package w1d7

// Task 2: the first GPU kernel, y = a·x + b·y. The check runs the day's
// kernel on this machine's GPU and compares with the CPU; with no GPU it
// says by name that it did not run (kernels/kerneltest).

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// AxpbyKernel is what the day's NewAxpby returns.
type AxpbyKernel interface {
	Run(a float32, x *kernels.Buffer, b float32, y *kernels.Buffer, n int) error
	Close() error
}

// AxpbyTol is the tolerance of Task 2, relative to the size of the two
// terms: |got - want| <= AxpbyTol·(|a·x| + |b·y|). Float32 arithmetic with
// or without a fused multiply-add lands within 2e-7 of that; 4e-7 leaves
// room, and still catches a wrong formula or a half-precision shortcut.
const AxpbyTol = 4e-7

// guard is how many elements past n the check plants a sentinel in y: a
// kernel that forgets `if (i < n)` overwrites them.
const guard = 300

const sentinel = float32(-12345.5)

// AxpbySources checks that the day's folder embeds a kernel named axpby for
// both backends. It needs no GPU.
func AxpbySources(t *testing.T, source func(backend string) string) {
	const task = "W1D7 Task 2 AxpbySource"
	grade.PointToChapter(t, task)
	for backend, decl := range map[string]string{kernels.CUDA: "void axpby(", kernels.Metal: "kernel void axpby("} {
		src := source(backend)
		if !strings.Contains(src, decl) {
			t.Errorf("%s(%q): the source does not declare `%s...`; keep the kernel's name and signature as given", task, backend, decl)
		}
	}
}

// Axpby checks Task 2 on the GPU: the day's NewAxpby compiles the kernel,
// Run computes y = a·x + b·y for sizes that are and are not multiples of
// the block, and elements past n are left alone.
//
// The kernel sources are checked first, on any machine: a renamed kernel fails
// here even where there is no GPU to run it.
func Axpby[K AxpbyKernel](t *testing.T, source func(backend string) string, newAxpby func(*kernels.Device) (K, error)) {
	const task = "W1D7 Task 2 Axpby"
	grade.PointToChapter(t, task)
	AxpbySources(t, source)
	d := kerneltest.Open(t)
	t.Logf("%s: on %s", task, d)
	var k K
	var err error
	if grade.Run(t, task+" (NewAxpby)", func() { k, err = newAxpby(d) }) {
		return
	}
	if err != nil {
		t.Fatalf("%s: NewAxpby: %v", task, err)
	}
	defer k.Close()
	cases := []struct {
		name string
		n    int
		a, b float32
	}{
		{"n=1", 1, 2, 3},
		{"n=255", 255, 1.5, -0.5},
		{"n=256", 256, -2, 0.25},
		{"n=257", 257, 0.5, 2},
		{"a=0,b=1 leaves y", 1000, 0, 1},
		{"b=0 overwrites y", 1000, 3, 0},
		{"n=1000003", 1_000_003, 1.25, -0.75},
	}
	r := rand.New(rand.NewPCG(7, 1))
	for _, c := range cases {
		stub := false
		t.Run(c.name, func(t *testing.T) {
			x := make([]float32, c.n)
			y := make([]float32, c.n+guard)
			for i := range x {
				x[i] = float32(r.NormFloat64())
				y[i] = float32(r.NormFloat64())
			}
			for i := c.n; i < len(y); i++ {
				y[i] = sentinel
			}
			xb, err := kernels.Upload(d, x)
			if err != nil {
				t.Fatal(err)
			}
			defer xb.Free()
			yb, err := kernels.Upload(d, y)
			if err != nil {
				t.Fatal(err)
			}
			defer yb.Free()
			var runErr error
			if stub = grade.Run(t, task+", case "+c.name, func() { runErr = k.Run(c.a, xb, c.b, yb, c.n) }); stub {
				return
			}
			if runErr != nil {
				t.Fatalf("%s, case %s: Run: %v", task, c.name, runErr)
			}
			got, err := kernels.Download[float32](yb, len(y))
			if err != nil {
				t.Fatalf("%s, case %s: reading y back: %v", task, c.name, err)
			}
			if report := compareAxpby(got, x, y, c.a, c.b, c.n); report != "" {
				t.Fatalf("%s, case %s (a=%g, b=%g): output does not match the CPU\n%s", task, c.name, c.a, c.b, report)
			}
		})
		if stub {
			return
		}
	}
}

// compareAxpby returns "" if got is a·x + b·y on [0, n) and untouched past n,
// or a report of what is wrong.
func compareAxpby(got, x, y []float32, a, b float32, n int) string {
	var (
		bad, unchanged, written int
		maxErr                  float64
		maxAt                   = -1
		listed                  []string
	)
	for i := range n {
		ax, by := float64(a)*float64(x[i]), float64(b)*float64(y[i])
		want := ax + by
		diff := math.Abs(float64(got[i]) - want)
		if math.IsNaN(float64(got[i])) {
			diff = math.Inf(1)
		}
		if diff > maxErr || maxAt < 0 {
			maxErr, maxAt = diff, i
		}
		if got[i] == y[i] {
			unchanged++
		}
		if diff > AxpbyTol*(math.Abs(ax)+math.Abs(by))+1e-30 {
			bad++
			if len(listed) < 5 {
				listed = append(listed, fmt.Sprintf("      [%d]  got %.7g  want %.7g  (x %.7g, y before %.7g)", i, got[i], want, x[i], y[i]))
			}
		}
	}
	for i := n; i < len(got); i++ {
		if got[i] != sentinel {
			written++
		}
	}
	if bad == 0 && written == 0 {
		return ""
	}
	var s strings.Builder
	if bad > 0 {
		fmt.Fprintf(&s, "    shape      got [%d], want [%d]\n", n, n)
		fmt.Fprintf(&s, "    tolerance  |got-want| <= %.0e*(|a*x|+|b*y|)\n", AxpbyTol)
		fmt.Fprintf(&s, "    max abs error %.2e at [%d]\n", maxErr, maxAt)
		fmt.Fprintf(&s, "    %d of %d elements out of tolerance; first mismatches:\n%s\n", bad, n, strings.Join(listed, "\n"))
		if unchanged == n && !(a == 0 && b == 1) {
			s.WriteString("    y came back unchanged: the kernel wrote nothing (is its body still the stub?)\n")
		}
	}
	if written > 0 {
		fmt.Fprintf(&s, "    %d of the %d elements just past n were overwritten: threads with i >= n must not write\n", written, len(got)-n)
	}
	return s.String()
}
