package day6

import (
	"errors"
	"runtime"
	"sync"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d6"
)

// warmDecode compiles what each of atts launches for the head shapes of
// shapes, several sources at once, so that the checks which follow only
// run them: the check of every decode build compiles some 400 sources,
// which one after another took most of the test binary's time (over 5
// minutes on an H200 host; about 15 seconds at once on its 16 CPUs).
// Jobs go shape by shape, so that the workers mostly hold different
// Attentions (each compiles under its own lock). Decode's own Attention
// also builds the kernels its pick takes by cache length.
func warmDecode(t *testing.T, atts []*Attention, shapes []w2d6.RealShape) {
	type job struct {
		a     *Attention
		g, d  int
		byLen bool
	}
	var jobs []job
	seen := map[[2]int]bool{}
	for _, s := range shapes {
		key := [2]int{s.Hq / s.H, s.D}
		if seen[key] {
			continue
		}
		seen[key] = true
		for _, a := range atts {
			jobs = append(jobs, job{a: a, g: key[0], d: key[1], byLen: a.stream == (streamBuild{}) && a.perSM == 0})
		}
	}
	errs := make([]error, len(jobs))
	onCPUs(len(jobs), func(i int) { errs[i] = warmOne(jobs[i].a, jobs[i].g, jobs[i].d, jobs[i].byLen) })
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("compiling the decode kernels ahead of the checks: %v", err)
	}
}

// onCPUs hands f(0) … f(n-1), in that order, to one worker per CPU and returns
// when all have returned. NVRTC compiles different programs on several
// threads at once, so lists of compiles spread this way.
func onCPUs(n int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// warmOne compiles a's kernels for group g and head dimension d and, with
// byLen, the stream builds Decode picks among by cache length.
func warmOne(a *Attention, g, d int, byLen bool) error {
	ks, err := a.kernelsFor(g, d)
	if err != nil || !byLen || ks.stream == nil {
		return err
	}
	for _, sb := range []streamBuild{smallStream, tcStream, tcGroups} {
		if _, err := a.buildKernel(ks, sb, g, d); err != nil {
			return err
		}
	}
	return nil
}
