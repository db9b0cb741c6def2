package tensor

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The worker pool is started once and shared by every operation. Starting a
// goroutine is cheap but not free, and a transformer layer issues hundreds of
// small operations; a fixed pool keeps the per-call overhead to a channel send.
var pool struct {
	once    sync.Once
	workers int
	jobs    chan *job
}

// numWorkers reports how many goroutines (the caller included) share a
// parallelFor. It is runtime.GOMAXPROCS at the time of the first call.
func numWorkers() int {
	pool.once.Do(func() {
		pool.workers = runtime.GOMAXPROCS(0)
		pool.jobs = make(chan *job, pool.workers)
		// The calling goroutine always takes part, so workers-1 helpers suffice.
		for range pool.workers - 1 {
			go func() {
				for j := range pool.jobs {
					j.work()
				}
			}()
		}
	})
	return pool.workers
}

// job is one parallelFor call: the range [0, n) cut into chunks that
// goroutines claim one at a time through an atomic counter.
type job struct {
	fn    func(lo, hi int)
	n     int
	chunk int
	next  atomic.Int64 // index of the next unclaimed chunk
	done  sync.WaitGroup
}

// work claims and runs chunks until none are left. Helpers that arrive after
// the caller has already finished everything simply find nothing to do.
func (j *job) work() {
	for {
		c := int(j.next.Add(1) - 1)
		lo := c * j.chunk
		if lo >= j.n {
			return
		}
		j.fn(lo, min(lo+j.chunk, j.n))
		j.done.Done()
	}
}

// parallelFor calls fn on disjoint sub-ranges [lo, hi) that together cover
// [0, n), spreading them over the worker pool, and returns when all are done.
// Ranges are never shorter than minChunk (except the last), so cheap per-item
// work should pass a large minChunk; when n <= minChunk, fn runs inline on the
// calling goroutine with no synchronisation at all.
//
// The caller works on the job too. That is what makes nested parallelFor calls
// safe: even if every helper is busy, the caller alone can finish its own job,
// so nothing ever waits on a chunk that nobody is running.
func parallelFor(n, minChunk int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	minChunk = max(minChunk, 1)
	w := numWorkers()
	if w == 1 || n <= minChunk {
		fn(0, n)
		return
	}
	// A few chunks per worker, so that one slow chunk (or a worker busy with
	// another job) does not leave the others idle at the end.
	chunk := max(minChunk, ceilDiv(n, 4*w))
	chunks := ceilDiv(n, chunk)
	if chunks == 1 {
		fn(0, n)
		return
	}
	j := &job{fn: fn, n: n, chunk: chunk}
	j.done.Add(chunks)
	for range min(w-1, chunks-1) {
		select {
		case pool.jobs <- j:
		default:
			// Every helper is busy (probably with an outer parallelFor);
			// the chunks will be run by whoever is free, the caller included.
		}
	}
	j.work()
	j.done.Wait()
}

// ceilDiv returns ⌈a/b⌉ for positive b.
func ceilDiv(a, b int) int {
	return (a + b - 1) / b
}
