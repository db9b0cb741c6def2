package tensor

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The worker pool is started once and shared by every operation. Starting a
// goroutine is cheap but not free, and a transformer layer issues hundreds of
// small operations; a fixed pool keeps the per-call overhead small.
//
// A decode step is a chain of some 170 matrix-vector products, each split
// over the pool and each a fraction of a millisecond long. A helper that has
// gone to sleep on the channel takes tens of microseconds to be woken by the
// operating system, which adds up to several milliseconds per token. So a
// helper that has just finished a job first spins for a short while, watching
// pool.posted for the next one, and only then blocks on the channel.
var pool struct {
	once     sync.Once
	workers  int
	jobs     chan *job
	posted   atomic.Pointer[job] // the latest job, for helpers that spin
	spinning atomic.Int32        // helpers spinning right now
}

// spinFor is how long a helper watches for a new job before it blocks. It
// covers the gaps between the products of a decode step (norms, RoPE,
// attention of one token) with room to spare, yet is short enough that an
// idle engine stops burning a core at once.
const spinFor = 200 * time.Microsecond

// numWorkers reports how many goroutines (the caller included) share a
// parallelFor. It is runtime.GOMAXPROCS at the time of the first call.
func numWorkers() int {
	pool.once.Do(func() {
		pool.workers = runtime.GOMAXPROCS(0)
		pool.jobs = make(chan *job, pool.workers)
		// The calling goroutine always takes part, so workers-1 helpers suffice.
		for range pool.workers - 1 {
			go helper()
		}
	})
	return pool.workers
}

// helper runs jobs for the pool for ever: from the channel when it has been
// idle, from pool.posted while it spins after a job. Running a job twice is
// harmless (the second run finds every chunk claimed), so a job that reaches
// a helper both ways costs nothing but a look.
func helper() {
	var last *job
	for j := range pool.jobs {
		j.work()
		last = j
		pool.spinning.Add(1)
		deadline := time.Now().Add(spinFor)
		for i := 0; ; i++ {
			if p := pool.posted.Load(); p != last && p != nil {
				pool.spinning.Add(-1) // let the next call know before working
				p.work()
				last = p
				pool.spinning.Add(1)
				deadline = time.Now().Add(spinFor)
				continue
			}
			// Reading the clock costs more than a load; look at it rarely.
			if i%64 == 63 && time.Now().After(deadline) {
				break
			}
		}
		pool.spinning.Add(-1)
		// A job posted just as the spin ended may have counted this helper
		// as spinning and not sent on the channel; look once more.
		if p := pool.posted.Load(); p != last && p != nil {
			p.work()
		}
	}
}

// job is one parallelFor call: the range [0, n) cut into chunks that
// goroutines claim one at a time through an atomic counter.
type job struct {
	fn    func(lo, hi int)
	n     int
	chunk int
	next  atomic.Int64 // index of the next unclaimed chunk
	// left counts the chunks not finished yet; whoever finishes the last
	// one closes done, for a caller that got tired of spinning.
	left atomic.Int64
	done chan struct{}
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
		if j.left.Add(-1) == 0 {
			close(j.done)
		}
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
	runChunks(n, max(minChunk, ceilDiv(n, 4*w)), fn)
}

// parallelEach is parallelFor with chunks of exactly chunk items, for
// items that are each long enough to be worth a claim of their own (the
// blocks of a tiled matrix product: a tenth of a millisecond and more).
// parallelFor's few chunks per worker would leave one core idle for as
// long as a whole chunk when their number does not split evenly.
func parallelEach(n, chunk int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if numWorkers() == 1 || n <= chunk {
		fn(0, n)
		return
	}
	runChunks(n, max(chunk, 1), fn)
}

// runChunks runs fn over [0, n) in chunks of chunk on the pool and the
// caller, and returns when all are done.
func runChunks(n, chunk int, fn func(lo, hi int)) {
	w := numWorkers()
	chunks := ceilDiv(n, chunk)
	if chunks == 1 {
		fn(0, n)
		return
	}
	j := &job{fn: fn, n: n, chunk: chunk, done: make(chan struct{})}
	j.left.Store(int64(chunks))
	pool.posted.Store(j)
	for range min(w-1, chunks-1) - int(pool.spinning.Load()) {
		select {
		case pool.jobs <- j:
		default:
			// Every helper is busy (probably with an outer parallelFor);
			// the chunks will be run by whoever is free, the caller included.
		}
	}
	j.work()
	j.wait()
}

// wait returns when every chunk of j has run. The chunks still running
// belong to helpers and are about as short as the caller's own, so it first
// spins: a caller that went to sleep would have to be woken by the helper,
// and on a busy scheduler that wake-up can wait for as long as the helper
// keeps its core. Only a long wait (a helper descheduled by the operating
// system) blocks.
func (j *job) wait() {
	deadline := time.Now().Add(spinFor)
	for i := 0; j.left.Load() > 0; i++ {
		if i%64 == 63 {
			if time.Now().After(deadline) {
				<-j.done
				return
			}
			runtime.Gosched() // let a helper queued on this core run
		}
	}
}

// ParallelFor calls fn on disjoint sub-ranges [lo, hi) that together
// cover [0, n), at least minChunk long (but the last), spread over the same
// pool of goroutines as the tensor operations, and returns when all are
// done. Operations that fn calls may themselves run in parallel: a nested
// call never waits for a busy core, it runs its work on the caller.
func ParallelFor(n, minChunk int, fn func(lo, hi int)) { parallelFor(n, minChunk, fn) }

// ceilDiv returns ⌈a/b⌉ for positive b.
func ceilDiv(a, b int) int {
	return (a + b - 1) / b
}
