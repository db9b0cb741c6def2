// Package roofline draws a roofline plot (Williams, Waterman and Patterson,
// 2009): the machine's two ceilings, a compute roof of FLOP/s and a memory
// slope of bytes/s times arithmetic intensity, with measured passes of a
// model placed under them. `tinyllm bench --roofline FILE` writes one; a
// learner can call WriteSVG with their own numbers too.
package roofline

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
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

// The drawing's size in SVG pixels (8 by 5 inches at 96 per inch), and
// the margins around the axes' box, which hold the title, the tick labels
// and the axis labels.
const (
	Width, Height                            = 768, 480
	marginL, marginR, marginTop, marginBelow = 80, 24, 44, 64
)

// axis maps values on a log scale from [lo, hi] (whole decades) onto
// pixels [p0, p1].
type axis struct{ lo, hi, p0, p1 float64 }

func (a axis) at(v float64) float64 {
	f := (math.Log10(v) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
	return a.p0 + f*(a.p1-a.p0)
}

// decades are the powers of ten from lo to hi.
func (a axis) decades() []float64 {
	var out []float64
	for e := math.Round(math.Log10(a.lo)); e <= math.Round(math.Log10(a.hi)); e++ {
		out = append(out, math.Pow(10, e))
	}
	return out
}

// Write draws the roofline as SVG to w: log-log axes, FLOP/byte across and
// GFLOP/s up, a grid line at each power of ten, the roof (the memory slope
// up to the ridge, then flat), the measured passes as dots labelled with
// their share of the roof under them, a title and a legend. The drawing is
// plain SVG shapes and text, a few kilobytes; fonts are named, not
// embedded.
func Write(w io.Writer, m Machine, points []Point) error {
	if err := m.validate(points); err != nil {
		return err
	}
	// The x range spans the ridge and every point, with a decade to spare;
	// the y range a decade above the roof and below the lowest point, room
	// for the labels.
	lo, hi := m.Ridge(), m.Ridge()
	for _, p := range points {
		lo, hi = math.Min(lo, p.Intensity), math.Max(hi, p.Intensity)
	}
	lo = math.Pow(10, math.Floor(math.Log10(lo))-1)
	hi = math.Pow(10, math.Ceil(math.Log10(hi))+1)
	minY := m.Attainable(lo) / 1e9
	for _, p := range points {
		minY = math.Min(minY, p.FLOPS/1e9)
	}
	x := axis{lo, hi, marginL, Width - marginR}
	y := axis{math.Pow(10, math.Floor(math.Log10(minY))-1), math.Pow(10, math.Ceil(math.Log10(m.PeakFLOPS/1e9))+1),
		Height - marginBelow, marginTop}

	b := bufio.NewWriter(w)
	f := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	f(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Liberation Sans, Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		Width, Height, Width, Height)
	f(`<rect width="%d" height="%d" fill="white"/>`+"\n", Width, Height)
	text := func(px, py float64, anchor, extra, s string) {
		f(`<text x="%.1f" y="%.1f" text-anchor="%s"%s>%s</text>`+"\n", px, py, anchor, extra, esc(s))
	}
	text(Width/2, 24, "middle", ` font-size="16"`, "Roofline: "+m.Name)

	// The grid and the tick labels, a line at every power of ten.
	for _, v := range x.decades() {
		px := x.at(v)
		f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", px, y.p0, px, y.p1)
		text(px, y.p0+18, "middle", "", tick(v))
	}
	for _, v := range y.decades() {
		py := y.at(v)
		f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x.p0, py, x.p1, py)
		text(x.p0-8, py+4, "end", "", tick(v))
	}
	f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="black"/>`+"\n", x.p0, y.p1, x.p1-x.p0, y.p0-y.p1)
	text((x.p0+x.p1)/2, Height-20, "middle", "", "arithmetic intensity (FLOP/byte)")
	text(0, 0, "middle", fmt.Sprintf(` transform="translate(22 %.1f) rotate(-90)"`, (y.p0+y.p1)/2), "GFLOP/s")

	// The roof bends at the ridge, so it is three points: start, ridge, end.
	f(`<polyline points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="none" stroke="black" stroke-width="2.5"/>`+"\n",
		x.at(lo), y.at(m.Attainable(lo)/1e9), x.at(m.Ridge()), y.at(m.PeakFLOPS/1e9), x.at(hi), y.at(m.PeakFLOPS/1e9))
	for _, p := range points {
		px, py := x.at(p.Intensity), y.at(p.FLOPS/1e9)
		f(`<circle cx="%.1f" cy="%.1f" r="4" fill="#c80000"/>`+"\n", px, py)
		// below the dot, clear of the roof: to its right, or to its left
		// near the right edge
		label := fmt.Sprintf("%s: %.0f%% of the roof", p.Label, 100*p.FLOPS/m.Attainable(p.Intensity))
		if px < x.p1-220 {
			text(px+7, py+16, "start", "", label)
		} else {
			text(px-7, py+16, "end", "", label)
		}
	}

	// The legend, in the empty corner under the flat roof.
	lx, ly := x.p1-12, y.p0-(12+20*float64(min(len(points), 1)))
	f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" stroke-width="2.5"/>`+"\n", lx-24, ly, lx, ly)
	text(lx-30, ly+4, "end", "", fmt.Sprintf("roof: %.1f GB/s x intensity, at most %.1f GFLOP/s (ridge %.1f FLOP/byte)",
		m.Bandwidth/1e9, m.PeakFLOPS/1e9, m.Ridge()))
	if len(points) > 0 {
		f(`<circle cx="%.1f" cy="%.1f" r="4" fill="#c80000"/>`+"\n", lx-12, ly+20)
		text(lx-30, ly+24, "end", "", "measured passes")
	}
	f("</svg>\n")
	return b.Flush()
}

// tick is a tick's label: 0.01, 0.1, 1, 10, 100, 1000, then 1e+04 and on.
func tick(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// esc is s with XML's special characters escaped, for a text node.
func esc(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s)) // a strings.Builder does not fail
	return sb.String()
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
