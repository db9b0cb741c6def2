package main

import (
	"fmt"
	"io"

	"github.com/tinyllm-go/tinyllm/internal/bench"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/roofline"
	"github.com/tinyllm-go/tinyllm/solutions/week2/day2"
)

// cacheValueBytes is the size of one cached key or value: the Week 2
// engine's cache holds float32.
const cacheValueBytes = 4

// weightValueBytes is the size of one stored weight of the checkpoint,
// which the engine keeps in its stored form.
func weightValueBytes(c checkpoint.Config) (int, error) {
	dt := c.DType
	if dt == "" {
		dt = c.TorchDType
	}
	switch dt {
	case "bfloat16", "float16", "":
		return 2, nil // an unnamed dtype: Qwen2 checkpoints are bf16
	case "float32":
		return 4, nil
	}
	return 0, fmt.Errorf("--roofline: no cost model for weights of dtype %q", dt)
}

// rooflinePoints places the run's prefill and its average decode step on
// the roofline, with FLOPs and bytes from the Week 2 Day 2 cost model and
// times from the run.
func rooflinePoints(c checkpoint.Config, r *bench.Result) ([]roofline.Point, error) {
	wb, err := weightValueBytes(c)
	if err != nil {
		return nil, err
	}
	prefill, err := day2.ForwardCost(c, wb, cacheValueBytes, r.PromptLen, 0)
	if err != nil {
		return nil, fmt.Errorf("--roofline: %w", err)
	}
	// The timed prefill computes the last position's logits only.
	prefill.HeadFLOPs /= int64(r.PromptLen)
	points := []roofline.Point{{
		Label:     fmt.Sprintf("prefill %d tokens", r.PromptLen),
		Intensity: prefill.Intensity(),
		FLOPS:     float64(prefill.FLOPs()) / r.TTFTSeconds,
	}}
	if r.GenLen > 1 && r.DecodeTokPerS > 0 {
		// Decode steps run at positions PromptLen+1 … PromptLen+GenLen-1:
		// the middle one stands for them all (the cost grows linearly).
		pos := r.PromptLen + r.GenLen/2
		step, err := day2.ForwardCost(c, wb, cacheValueBytes, 1, pos)
		if err != nil {
			return nil, fmt.Errorf("--roofline: %w", err)
		}
		points = append(points, roofline.Point{
			Label:     fmt.Sprintf("decode at %d", pos),
			Intensity: step.Intensity(),
			FLOPS:     float64(step.FLOPs()) * r.DecodeTokPerS,
		})
	}
	return points, nil
}

// writeRoofline measures the machine's ceilings and writes the roofline of
// the run in rep to path.
func writeRoofline(path string, rep *benchReport, c checkpoint.Config, repeats int, stdout, stderr io.Writer) error {
	points, err := rooflinePoints(c, rep.Result)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "measuring the machine's ceilings for the roofline (%d threads)…\n", rep.Machine.Threads)
	p := bench.Probes(rep.Machine.Threads, repeats)
	rep.Probes = &p
	// The memory ceiling is the fastest read this program measured: the
	// bf16 matrix-vector probes, which read weights as a decode step does,
	// can beat the plain streaming read on a busy machine.
	bw := p.StreamGBPerS
	for _, mv := range p.MatVec {
		bw = max(bw, mv.GBPerS)
	}
	m := roofline.Machine{
		Name:      fmt.Sprintf("%s/%s, %d threads, %s kernels", rep.Machine.GOOS, rep.Machine.GOARCH, rep.Machine.Threads, rep.Machine.Kernels),
		PeakFLOPS: p.MatmulGFLOPPerS * 1e9,
		Bandwidth: bw * 1e9,
	}
	if err := roofline.WriteSVG(path, m, points); err != nil {
		return fmt.Errorf("--roofline: %w", err)
	}
	fmt.Fprintf(stdout, "\nroofline (%s): fastest read %.1f GB/s (streaming %.1f), f32 matmul %.1f GFLOP/s, ridge at %.1f FLOP/byte\n",
		path, bw, p.StreamGBPerS, p.MatmulGFLOPPerS, m.Ridge())
	for _, pt := range points {
		fmt.Fprintf(stdout, "  %-18s %8.2f FLOP/byte %10.2f GFLOP/s  (%.0f%% of the roof there)\n",
			pt.Label, pt.Intensity, pt.FLOPS/1e9, 100*pt.FLOPS/m.Attainable(pt.Intensity))
	}
	return nil
}
