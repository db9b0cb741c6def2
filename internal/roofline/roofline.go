// Package roofline draws a roofline plot (Williams, Waterman and Patterson,
// 2009): the machine's two ceilings, a compute roof of FLOP/s and a memory
// slope of bytes/s times arithmetic intensity, with measured passes of a
// model placed under them. `tinyllm bench --roofline FILE` writes one; a
// learner can call WriteSVG with their own numbers too.
package roofline

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
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
func Plot(m Machine, points []Point) (*plot.Plot, error) {
	if err := m.validate(points); err != nil {
		return nil, err
	}
	// The x range spans the ridge and every point, with a decade to spare.
	lo, hi := m.Ridge(), m.Ridge()
	for _, p := range points {
		lo, hi = math.Min(lo, p.Intensity), math.Max(hi, p.Intensity)
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo))-1)
	hi = math.Pow(10, math.Ceil(math.Log10(hi))+1)

	p := plot.New()
	p.Title.Text = "Roofline: " + m.Name
	p.X.Label.Text = "arithmetic intensity (FLOP/byte)"
	p.Y.Label.Text = "GFLOP/s"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())

	// The roof bends at the ridge, so it is three points: start, ridge, end.
	roof := plotter.XYs{{X: lo, Y: m.Attainable(lo) / 1e9}, {X: m.Ridge(), Y: m.PeakFLOPS / 1e9}, {X: hi, Y: m.PeakFLOPS / 1e9}}
	line, err := plotter.NewLine(roof)
	if err != nil {
		return nil, err
	}
	line.Width = vg.Points(2)
	p.Add(line)
	p.Legend.Add(fmt.Sprintf("roof: %.1f GB/s x intensity, at most %.1f GFLOP/s (ridge %.1f FLOP/byte)",
		m.Bandwidth/1e9, m.PeakFLOPS/1e9, m.Ridge()), line)
	p.Legend.Top, p.Legend.Left = false, false // the empty corner under the flat roof

	if len(points) > 0 {
		xys := make(plotter.XYs, len(points))
		labels := make([]string, len(points))
		for i, pt := range points {
			xys[i] = plotter.XY{X: pt.Intensity, Y: pt.FLOPS / 1e9}
			labels[i] = fmt.Sprintf("%s: %.0f%% of the roof", pt.Label, 100*pt.FLOPS/m.Attainable(pt.Intensity))
		}
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle.Shape = draw.CircleGlyph{}
		sc.GlyphStyle.Radius = vg.Points(4)
		sc.GlyphStyle.Color = color.RGBA{R: 200, A: 255}
		p.Add(sc)
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return nil, err
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].XAlign, lb.TextStyle[i].YAlign = draw.XLeft, draw.YTop
		}
		lb.Offset = vg.Point{X: vg.Points(6), Y: -vg.Points(6)} // below right, clear of the roof
		p.Add(lb)
		p.Legend.Add("measured passes", sc)
	}
	// A decade above the roof and below the lowest point, for the labels.
	minY := m.Attainable(lo) / 1e9
	for _, pt := range points {
		minY = math.Min(minY, pt.FLOPS/1e9)
	}
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(minY))-1)
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(m.PeakFLOPS/1e9))+1)
	p.X.Min, p.X.Max = lo, hi
	return p, nil
}

// Size is the drawing's size in the written SVG.
const (
	Width  = 8 * vg.Inch
	Height = 5 * vg.Inch
)

// Write draws the roofline as SVG to w. Fonts are named, not embedded, so
// the file stays a few kilobytes.
func Write(w io.Writer, m Machine, points []Point) error {
	p, err := Plot(m, points)
	if err != nil {
		return err
	}
	c := vgsvg.NewWith(vgsvg.UseWH(Width, Height), vgsvg.EmbedFonts(false))
	p.Draw(draw.New(c))
	_, err = c.WriteTo(w)
	return err
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
