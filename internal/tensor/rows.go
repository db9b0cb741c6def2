package tensor

// Building blocks for fused row kernels (Week 2 Day 5), which walk their own
// rows instead of composing whole-tensor operations.

// SigmoidSlice sets dst[i] = 1/(1+e^-src[i]) with the same kernel Sigmoid
// uses (vectorised where the CPU allows), so that a fused loop gives the
// values Sigmoid would. dst must be at least as long as src.
func SigmoidSlice(dst, src []float32) { active.sigmoid(dst[:len(src)], src) }

// ParallelRows calls fn on ranges [lo, hi) of rows rows of rowLen elements
// each, spread over the worker pool the tensor operations use; a job too
// small to be worth splitting runs on the calling goroutine. fn must only
// touch its own rows.
func ParallelRows(rows, rowLen int, fn func(lo, hi int)) {
	parallelFor(rows, max(1, elementwiseGrain/max(rowLen, 1)), fn)
}

// ExpSlice sets dst[i] = e^src[i] with the kernel Exp uses, so that a fused
// loop (a softmax over one row of scores, say) gives the values Exp would.
// dst must be at least as long as src; it may be src itself.
func ExpSlice(dst, src []float32) { active.exp(dst[:len(src)], src) }
