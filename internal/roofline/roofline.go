// Package roofline draws a roofline plot (Williams, Waterman and Patterson,
// 2009): the machine's two ceilings, a compute roof of FLOP/s and a memory
// slope of bytes/s times arithmetic intensity, with measured passes of a
// model placed under them. `tinyllm bench --roofline FILE` writes one; a
// learner can call WriteSVG with their own numbers too.
package roofline

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
)

// Machine is the two ceilings of a roofline.
type Machine struct {
	Name      string  // shown in the title, e.g. "linux/amd64, 2 threads"
	PeakFLOPS float64 // FLOP/s the machine can compute at most
	Bandwidth float64 // bytes/s it can read from memory at most
}

// Ridge is the arithmetic intensity (FLOP/byte) where the two ceilings
// meet: below it a pass is bound by memory, above it by compute.
func (m Machine) Ridge() float64 { return m.PeakFLOPS / m.Bandwidth }

// Attainable is the highest FLOP/s a pass of the given arithmetic
// intensity can reach on m: min(PeakFLOPS, Bandwidth * intensity).
func (m Machine) Attainable(intensity float64) float64 {
	return math.Min(m.PeakFLOPS, m.Bandwidth*intensity)
}

// Point is one measured pass: its arithmetic intensity, from a cost model,
// and the FLOP/s it achieved, its FLOPs over its measured time.
type Point struct {
	Label     string
	Intensity float64 // FLOP per byte
	FLOPS     float64 // achieved FLOP/s
}

func (m Machine) validate(points []Point) error {
	if !(m.PeakFLOPS > 0) || !(m.Bandwidth > 0) || math.IsInf(m.PeakFLOPS, 0) || math.IsInf(m.Bandwidth, 0) {
		return fmt.Errorf("roofline: the ceilings must be positive and finite, got %g FLOP/s and %g bytes/s", m.PeakFLOPS, m.Bandwidth)
	}
	for _, p := range points {
		if !(p.Intensity > 0) || !(p.FLOPS > 0) || math.IsInf(p.Intensity, 0) || math.IsInf(p.FLOPS, 0) {
			return fmt.Errorf("roofline: point %q needs a positive, finite intensity and FLOP/s (a log-log plot), got %g FLOP/byte and %g FLOP/s",
				p.Label, p.Intensity, p.FLOPS)
		}
	}
	return nil
}

// Plot builds the roofline on log-log axes: FLOP/byte across, GFLOP/s up.
// The chart's axes are linear, so it plots the logarithms of the values
// and labels each whole power of ten with the value itself (the library's
// own logarithmic axis handles no values below 1, and a decode step's
// intensity is about 1).
func Plot(m Machine, points []Point) (*chart.Chart, error) {
	if err := m.validate(points); err != nil {
		return nil, err
	}
	// The x range spans the ridge and every point, with a decade to spare;
	// the y range a decade above the roof and below the lowest point, for
	// the labels.
	lo, hi := m.Ridge(), m.Ridge()
	for _, p := range points {
		lo, hi = math.Min(lo, p.Intensity), math.Max(hi, p.Intensity)
	}
	lo = math.Floor(math.Log10(lo)) - 1
	hi = math.Ceil(math.Log10(hi)) + 1
	minY := m.Attainable(math.Pow(10, lo)) / 1e9
	for _, p := range points {
		minY = math.Min(minY, p.FLOPS/1e9)
	}
	ylo, yhi := math.Floor(math.Log10(minY))-1, math.Ceil(math.Log10(m.PeakFLOPS/1e9))+1

	grid := chart.Style{StrokeColor: drawing.ColorFromHex("dddddd"), StrokeWidth: 1}
	c := &chart.Chart{
		Title:      "Roofline: " + m.Name,
		TitleStyle: chart.Style{FontSize: 13},
		Width:      Width,
		Height:     Height,
		Background: chart.Style{Padding: chart.Box{Top: 50, Left: 20, Right: 30, Bottom: 20}},
		XAxis: chart.XAxis{
			Name: "arithmetic intensity (FLOP/byte)", Range: &chart.ContinuousRange{Min: lo, Max: hi},
			Ticks: decades(lo, hi), GridMajorStyle: grid, GridLines: gridLines(lo, hi),
		},
		YAxis: chart.YAxis{
			Name: "GFLOP/s", Range: &chart.ContinuousRange{Min: ylo, Max: yhi}, AxisType: chart.YAxisSecondary,
			Ticks: decades(ylo, yhi), GridMajorStyle: grid, GridLines: gridLines(ylo, yhi),
		},
	}
	// The roof bends at the ridge, so it is three points: start, ridge, end.
	ridge := math.Log10(m.Ridge())
	roof := chart.ContinuousSeries{
		Name: fmt.Sprintf("roof: %.1f GB/s x intensity, at most %.1f GFLOP/s (ridge %.1f FLOP/byte)",
			m.Bandwidth/1e9, m.PeakFLOPS/1e9, m.Ridge()),
		XValues: []float64{lo, ridge, hi},
		YValues: []float64{math.Log10(m.Attainable(math.Pow(10, lo)) / 1e9), math.Log10(m.PeakFLOPS / 1e9), math.Log10(m.PeakFLOPS / 1e9)},
		Style:   chart.Style{StrokeColor: drawing.ColorBlack, StrokeWidth: 2.5},
	}
	c.Series = append(c.Series, roof)
	if len(points) > 0 {
		dots := chart.ContinuousSeries{
			Name:  "measured passes",
			Style: chart.Style{StrokeWidth: chart.Disabled, StrokeColor: red, DotWidth: 4, DotColor: red},
		}
		labels := chart.AnnotationSeries{Style: chart.Style{FontSize: 9, StrokeColor: drawing.ColorFromHex("999999")}}
		for _, pt := range points {
			x, y := math.Log10(pt.Intensity), math.Log10(pt.FLOPS/1e9)
			dots.XValues, dots.YValues = append(dots.XValues, x), append(dots.YValues, y)
			labels.Annotations = append(labels.Annotations, chart.Value2{XValue: x, YValue: y,
				Label: fmt.Sprintf("%s: %.0f%% of the roof", pt.Label, 100*pt.FLOPS/m.Attainable(pt.Intensity))})
		}
		c.Series = append(c.Series, dots, labels)
	}
	// The legend goes in the empty corner above the memory slope.
	c.Elements = []chart.Renderable{chart.Legend(c)}
	return c, nil
}

// red is the color of the measured passes' dots.
var red = drawing.Color{R: 200, A: 255}

// decades are ticks at the whole powers of ten from 10^lo to 10^hi, on an
// axis of their logarithms, labelled with the values: 0.01, 0.1, 1, 10 …
func decades(lo, hi float64) []chart.Tick {
	var ticks []chart.Tick
	for e := lo; e <= hi+1e-9; e++ {
		ticks = append(ticks, chart.Tick{Value: e, Label: strconv.FormatFloat(math.Pow(10, e), 'g', 4, 64)})
	}
	return ticks
}

// gridLines are lines at the same powers of ten as decades' ticks.
func gridLines(lo, hi float64) []chart.GridLine {
	var lines []chart.GridLine
	for _, t := range decades(lo, hi) {
		lines = append(lines, chart.GridLine{Value: t.Value})
	}
	return lines
}

// Size is the drawing's size in the written SVG, in pixels.
const (
	Width  = 768
	Height = 480
)

// Write draws the roofline as SVG to w. The font is named, not embedded,
// so the file stays a few kilobytes.
func Write(w io.Writer, m Machine, points []Point) error {
	c, err := Plot(m, points)
	if err != nil {
		return err
	}
	return c.Render(chart.SVG, w)
}

// WriteSVG writes the roofline to the file path.
func WriteSVG(path string, m Machine, points []Point) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("roofline: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("roofline: %w", cerr)
		}
	}()
	if err := Write(f, m, points); err != nil {
		return errors.Join(err, os.Remove(path))
	}
	return nil
}
