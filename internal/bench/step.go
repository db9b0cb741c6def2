package bench

import (
	"time"

	"github.com/tinyllm-go/tinyllm/internal/llm"
)

// RunStepModel is RunModel for a model that keeps its own cache and makes
// its greedy choice itself (Week 2 Day 7's model on a GPU): each run resets
// the model, times the prefill of the prompt up to the first token (the
// prompt in the pieces the model was built for), then GenLen-1 decode
// steps, each fed the token the last one chose; a model that is an
// llm.AheadDecoder takes them o.Ahead (by default llm.AheadWindow) at a
// time, as the reference's generation loop does, so the device does not wait for the host between
// steps. The warm-up passes run the
// same generation untimed, so that kernels are compiled and the decode step
// captured before anything is timed. The first error of the model ends
// the benchmark.
func RunStepModel(m llm.StepModel, o Options) (Result, error) {
	var failed error
	generate := func(prompt []int, n int) Run {
		if failed != nil {
			return Run{TTFTSeconds: 1, DecodeSeconds: 1}
		}
		m.Reset()
		start := time.Now()
		next, err := m.Prefill(prompt)
		ttft := time.Since(start)
		start = time.Now()
		ahead, _ := m.(llm.AheadDecoder)
		for done := 1; done < n && err == nil; {
			k := 1
			if ahead != nil {
				window := o.Ahead
				if window == 0 {
					window = llm.AheadWindow
				}
				k = min(window, n-done)
			}
			if k > 1 {
				var ids []int
				if ids, err = ahead.DecodeAhead(next, k); err == nil {
					next = ids[len(ids)-1]
				}
			} else {
				next, err = m.Decode(next)
			}
			done += k
		}
		if err != nil {
			failed = err
		}
		return Run{TTFTSeconds: ttft.Seconds(), DecodeSeconds: time.Since(start).Seconds()}
	}
	res, err := run(o, func(prompt []int) { generate(prompt, o.GenLen) }, generate, func([]int) {})
	if failed != nil {
		return Result{}, failed
	}
	return res, err
}
