package day6

// A step of decode attention laid out block by block: a TRACE build of the
// tensor-core stream kernel stamps, for each block, when it started, when
// the wait for the launch ahead returned, when q was in its registers,
// when its first tiles landed, when its products were done and when it
// ended. Where the benchmarks' anatomy says how much each part adds, the
// timeline says when each part happens, and so which ones sit on the chain
// from one step to the next.

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// The stamps a block leaves (decode.cu's TRACE): global timer at
// evStart … evEnd, the multiprocessor at evSM, group 1's first landing at
// evLand1, and the cycle counter at the same points plus cycleOff (at
// evIssued too, when warp 0 has issued its copies ahead of the wait); and
// at slots evScores … evPV, by the cycle counter alone, the steps of the
// first thread's first tile.
const (
	evStart, evWait, evQ, evLand, evMath, evEnd, evSM, evLand1 = 0, 1, 2, 3, 4, 5, 6, 7
	cycleOff                                                   = 8
	evIssued                                                   = 6 // by the cycle counter only
	evScores, evSynced, evSoftmax, evPV                        = 16, 17, 18, 19
	traceN                                                     = 24 // decode.cu's TRN
)

// stepTimeline lays out steps first … last-1 of the stream kernel's trace
// tr (blocks blocks a step) and the merge launch's mtr (mblocks a step):
// times in ns after each step's first released wait (W), the stream
// kernel's blocks split into those that started before any block of the
// step ahead had ended (beside it, copying ahead of the wait) and the
// others. It returns the table and the median step time (W to the next
// step's W), in ns.
func stepTimeline(tr, mtr []uint64, blocks, mblocks, first, last int) (string, float64, error) {
	if blocks <= 0 || mblocks <= 0 || first < 1 || last <= first+1 || len(tr) < (last+1)*blocks*traceN || len(mtr) < (last+1)*mblocks*traceN {
		return "", 0, fmt.Errorf("traces of %d and %d stamps have no steps %d to %d of %d and %d blocks (each needs the step before and after it)",
			len(tr), len(mtr), first, last, blocks, mblocks)
	}
	at := func(s, b, e int) float64 { return float64(tr[(s*blocks+b)*traceN+e]) }
	minOf := func(s, e int) float64 { lo, _ := span(tr, blocks, s, e); return lo }
	maxOf := func(s, e int) float64 { _, hi := span(tr, blocks, s, e); return hi }
	for _, k := range []struct {
		name   string
		t      []uint64
		n      int
		events []int
	}{{"block", tr, blocks, []int{evStart, evWait, evQ, evLand, evMath, evEnd}}, {"merge block", mtr, mblocks, []int{evStart, evWait, evEnd}}} {
		for s := first - 1; s <= last; s++ {
			for b := range k.n {
				for _, e := range k.events {
					if k.t[(s*k.n+b)*traceN+e] == 0 {
						return "", 0, fmt.Errorf("step %d, %s %d: event %d was not stamped", s, k.name, b, e)
					}
				}
			}
		}
	}
	// The merge's events, first and last block, after W.
	mergeEvents := []struct {
		name string
		e    int
	}{{"merge: start", evStart}, {"merge: wait returns", evWait}, {"merge: end", evEnd}}
	mcols := make([][2][]float64, len(mergeEvents))
	events := []struct {
		name string
		e    int
	}{{"start", evStart}, {"wait returns", evWait}, {"q in registers", evQ}, {"first tile landed", evLand},
		{"second group's tile landed", evLand1}, {"products done", evMath}, {"end", evEnd}}
	var besideN, afterN []float64
	cols := make([][4][]float64, len(events)) // [event][beside mid, beside last, after mid, after last] over steps
	var stepNs, lastEnd, mergeGap, startGap []float64
	for s := first; s < last; s++ {
		w := minOf(s, evWait)
		prevEnd := minOf(s-1, evEnd)
		var beside, after []int
		for b := range blocks {
			if at(s, b, evStart) < prevEnd {
				beside = append(beside, b)
			} else {
				after = append(after, b)
			}
		}
		besideN, afterN = append(besideN, float64(len(beside))), append(afterN, float64(len(after)))
		for i, ev := range events {
			for c, set := range [][]int{beside, after} {
				var xs []float64
				for _, b := range set {
					if v := at(s, b, ev.e); v != 0 {
						xs = append(xs, v-w)
					}
				}
				if len(xs) == 0 {
					continue
				}
				cols[i][2*c] = append(cols[i][2*c], median(xs)) // sorts xs
				cols[i][2*c+1] = append(cols[i][2*c+1], xs[len(xs)-1])
			}
		}
		for i, ev := range mergeEvents {
			lo, hi := span(mtr, mblocks, s, ev.e)
			mcols[i][0], mcols[i][1] = append(mcols[i][0], lo-w), append(mcols[i][1], hi-w)
		}
		stepNs = append(stepNs, minOf(s+1, evWait)-w)
		lastEnd = append(lastEnd, maxOf(s, evEnd)-w)
		mergeGap = append(mergeGap, minOf(s+1, evWait)-maxOf(s, evEnd))
		startGap = append(startGap, minOf(s, evStart)-w)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "steps %d to %d, %d blocks a step; ns after the step's first released wait (medians over the steps)\n", first, last-1, blocks)
	fmt.Fprintf(&sb, "blocks started beside the step ahead: %.0f, after it: %.0f\n", median(besideN), median(afterN))
	fmt.Fprintf(&sb, "%-28s %12s %12s %12s %12s\n", "event", "beside, mid", "beside, last", "after, mid", "after, last")
	for i, ev := range events {
		fmt.Fprintf(&sb, "%-28s", ev.name)
		for c := range 4 {
			if len(cols[i][c]) == 0 {
				fmt.Fprintf(&sb, " %12s", "-")
				continue
			}
			fmt.Fprintf(&sb, " %12.0f", median(cols[i][c]))
		}
		sb.WriteString("\n")
	}
	fmt.Fprintf(&sb, "%-28s %12s %12s\n", "the merge launch", "first block", "last block")
	for i, ev := range mergeEvents {
		fmt.Fprintf(&sb, "%-28s %12.0f %12.0f\n", ev.name, median(mcols[i][0]), median(mcols[i][1]))
	}
	fmt.Fprintf(&sb, "first block's start: %.0f; last block's end: %.0f; from it to the next step's first released wait: %.0f; the step: %.0f\n",
		median(startGap), median(lastEnd), median(mergeGap), median(stepNs))
	fmt.Fprintf(&sb, "global timer's finest step seen: %s\n", timerStep(tr, blocks, first, last))
	fmt.Fprintf(&sb, "by the cycle counter, median block (cycles): %s\n", cyclePhases(tr, blocks, first, last))
	return sb.String(), median(stepNs), nil
}

// span is the earliest and the latest of stamp e among step s's n blocks
// in trace t.
func span(t []uint64, n, s, e int) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for b := range n {
		v := float64(t[(s*n+b)*traceN+e])
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// median is xs's middle value (the upper one of an even count); xs is
// sorted in place.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// timerStep is the smallest nonzero gap between two of a block's stamps:
// where the global timer ticks coarsely, the table's finer differences are
// the cycle counter's to tell.
func timerStep(tr []uint64, blocks, first, last int) string {
	step := uint64(math.MaxUint64)
	for s := first; s < last; s++ {
		for b := range blocks {
			base := (s*blocks + b) * traceN
			for e := evWait; e <= evEnd; e++ {
				if d := tr[base+e] - tr[base+e-1]; tr[base+e] > tr[base+e-1] && d < step {
					step = d
				}
			}
		}
	}
	if step == math.MaxUint64 {
		return "none"
	}
	return fmt.Sprintf("%d ns", step)
}

// cyclePhases is the median block's phases by its multiprocessor's cycle
// counter: start to the wait's return, the wait to q, the first tile's
// landing to the products, the products to the end; then the first tile's
// products step by step (its scores, the group's barrier, the softmax,
// p·V).
func cyclePhases(tr []uint64, blocks, first, last int) string {
	const c = cycleOff
	phases := []struct {
		name     string
		from, to int // slots
	}{{"start to copies issued", c + evStart, c + evIssued}, {"start to wait", c + evStart, c + evWait},
		{"wait to q", c + evWait, c + evQ}, {"landed to products done", c + evLand, c + evMath},
		{"products to end", c + evMath, c + evEnd},
		{"first tile: landed to scores", c + evLand, evScores}, {"scores to the group's barrier passed", evScores, evSynced},
		{"barrier to softmax", evSynced, evSoftmax}, {"softmax to p·V", evSoftmax, evPV}}
	var parts []string
	for _, p := range phases {
		var xs []float64
		for s := first; s < last; s++ {
			for b := range blocks {
				base := (s*blocks + b) * traceN
				if tr[base+p.to] >= tr[base+p.from] {
					xs = append(xs, float64(tr[base+p.to]-tr[base+p.from]))
				}
			}
		}
		parts = append(parts, fmt.Sprintf("%s %.0f", p.name, median(xs)))
	}
	return strings.Join(parts, ", ")
}

// BenchmarkW2D6DecodeTimeline replays Decode's tensor-core build (tcStream
// or tcGroups, as Decode picks it) built with TRACE from a graph with
// programmatic dependent launch, at the lengths where Decode takes it (4k
// positions unless TINYLLM_DECODE_LENGTHS says; TINYLLM_TIMELINE_DEFINES
// adds defines, separated by semicolons, such as the anatomy's "#define
// ANAT 1"; TINYLLM_TIMELINE_BUILD=tcStream or tcGroups takes that build
// at every length), and logs the timeline of
// the graph's middle steps. The stamps cost a little: the same build
// without them is timed after it (S=…/untraced).
func BenchmarkW2D6DecodeTimeline(b *testing.B) {
	d, q, out, lengths, cs := streamSetup(b)
	extra := strings.ReplaceAll(os.Getenv("TINYLLM_TIMELINE_DEFINES"), ";", "\n")
	if extra != "" {
		extra += "\n"
	}
	for _, s := range lengths {
		if s < tcFrom || s > tcTo {
			continue
		}
		chunk := streamChunk(s, h7B, d.Info().Multiprocessors*2)
		sb := tcStream
		if chunk >= 2*sb.tile {
			sb = tcGroups
		}
		switch os.Getenv("TINYLLM_TIMELINE_BUILD") {
		case "":
		case "tcStream":
			sb = tcStream
		case "tcGroups":
			sb = tcGroups
		default:
			b.Fatalf("TINYLLM_TIMELINE_BUILD=%q: want tcStream or tcGroups", os.Getenv("TINYLLM_TIMELINE_BUILD"))
		}
		blocks := kernels.Blocks(s, chunk) * h7B
		n := len(cs[s])
		if n < 8 {
			b.Fatalf("S=%d: %d caches are too few steps for a timeline", s, n)
		}
		a, err := NewAttention(d)
		if err != nil {
			b.Fatal(err)
		}
		trace, err := d.Alloc(n * blocks * traceN * 8)
		if err != nil {
			b.Fatal(err)
		}
		traceMerge, err := d.Alloc(n * hq7B * traceN * 8)
		if err != nil {
			b.Fatal(err)
		}
		a.path, a.stream, a.perSM, a.mergeApart, a.defines = pathStream, sb, 2, 1, "#define TRACE 1\n"+extra
		a.trace, a.traceMerge = trace, traceMerge
		b.Run(fmt.Sprintf("S=%d", s), func(b *testing.B) {
			for _, t := range []*kernels.Buffer{trace, traceMerge} {
				if err := t.Fill(0); err != nil {
					b.Fatal(err)
				}
			}
			per := kerneltest.GraphTime(b, d, n, func(i int) error {
				a.traceStep = i
				return a.Decode(out, q, cs[s][i%n], 0, nil, true)
			})
			reportDecode(b, per, s)
			tr, err := kernels.Download[uint64](trace, n*blocks*traceN)
			if err != nil {
				b.Fatal(err)
			}
			mtr, err := kernels.Download[uint64](traceMerge, n*hq7B*traceN)
			if err != nil {
				b.Fatal(err)
			}
			table, step, err := stepTimeline(tr, mtr, blocks, hq7B, n/4, 3*n/4)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(step/1e3, "us/step-traced")
			b.Logf("S=%d, %+v %q, graph with programmatic dependent launch:\n%s", s, sb, extra, table)
		})
		a.Close()
		trace.Free()
		traceMerge.Free()
		// The same build without the stamps, for what they cost.
		if a, err = NewAttention(d); err != nil {
			b.Fatal(err)
		}
		a.path, a.stream, a.perSM, a.mergeApart, a.defines = pathStream, sb, 2, 1, extra
		b.Run(fmt.Sprintf("S=%d/untraced", s), func(b *testing.B) {
			per := kerneltest.GraphTime(b, d, n, func(i int) error { return a.Decode(out, q, cs[s][i%n], 0, nil, true) })
			reportDecode(b, per, s)
		})
		a.Close()
	}
}

// TestW2D6StepTimeline lays out a made-up trace whose times are known: 6
// steps of 4 blocks, a step every 5,000 ns, two blocks of each step
// started beside the step ahead (before its first block ended) and two
// after it, and a merge launch of 3 blocks; then traces with a stamp
// missing, which must be refused.
func TestW2D6StepTimeline(t *testing.T) {
	const blocks, steps, period = 4, 6, 5000
	tr := make([]uint64, steps*blocks*traceN)
	for s := range steps {
		w := uint64(10000 + s*period) // the step's first released wait
		for b := range blocks {
			at := tr[(s*blocks+b)*traceN:]
			start := w - 3000 // beside: before the step ahead's first end (w - 5000 + 3000)
			if b >= 2 {
				start = w - 1000 // after it
			}
			at[evStart], at[evWait], at[evQ], at[evLand], at[evMath], at[evEnd] = start, w+uint64(10*b), w+400, w+600+uint64(100*b), w+2000, w+2500+uint64(100*b)
			for e := range 6 {
				at[cycleOff+e] = 2 * at[e]
			}
			// decode.cu's slots 16 … 19: scores, barrier, softmax, p·V.
			for i, e := range []int{16, 17, 18, 19} {
				at[e] = at[cycleOff+evLand] + uint64(100*(i+1)*(i+1))
			}
		}
	}
	const mblocks = 3
	mtr := make([]uint64, steps*mblocks*traceN)
	for s := range steps {
		w := uint64(10000 + s*period)
		for b := range mblocks {
			at := mtr[(s*mblocks+b)*traceN:]
			at[evStart], at[evWait], at[evEnd] = w+2000+uint64(100*b), w+3500+uint64(100*b), w+4000+uint64(200*b)
		}
	}
	table, step, err := stepTimeline(tr, mtr, blocks, mblocks, 1, steps-1)
	if err != nil {
		t.Fatal(err)
	}
	if step != period {
		t.Errorf("step: got %v ns, want %d", step, period)
	}
	for _, want := range []string{
		"blocks started beside the step ahead: 2, after it: 2",
		fmt.Sprintf("%-28s %12d %12d %12d %12d", "start", -3000, -3000, -1000, -1000),
		fmt.Sprintf("%-28s %12d %12d %12d %12d", "first tile landed", 700, 700, 900, 900),
		"last block's end: 2800; from it to the next step's first released wait: 2200; the step: 5000",
		fmt.Sprintf("%-28s %12d %12d", "merge: wait returns", 3500, 3700),
		fmt.Sprintf("%-28s %12d %12d", "merge: end", 4000, 4400),
		"wait to q 780",
		"first tile: landed to scores 100, scores to the group's barrier passed 300, barrier to softmax 500, softmax to p·V 700",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("the table has no line with %q:\n%s", want, table)
		}
	}
	mtr[(3*mblocks+2)*traceN+evWait] = 0
	if _, _, err := stepTimeline(tr, mtr, blocks, mblocks, 1, steps-1); err == nil || !strings.Contains(err.Error(), "step 3, merge block 2") {
		t.Errorf("a missing merge stamp: got error %v, want one naming step 3, merge block 2", err)
	}
	tr[(2*blocks+1)*traceN+evMath] = 0
	if _, _, err := stepTimeline(tr, mtr, blocks, mblocks, 1, steps-1); err == nil || !strings.Contains(err.Error(), "step 2, block 1") {
		t.Errorf("a missing stamp: got error %v, want one naming step 2, block 1", err)
	}
}
