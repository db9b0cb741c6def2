package roofline

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAttainable(t *testing.T) {
	m := Machine{PeakFLOPS: 100e9, Bandwidth: 10e9}
	for _, tc := range []struct{ intensity, want float64 }{
		{0.5, 5e9},    // memory-bound: bandwidth times intensity
		{10, 100e9},   // the ridge
		{1000, 100e9}, // compute-bound: the flat roof
	} {
		if got := m.Attainable(tc.intensity); math.Abs(got-tc.want) > 1e-6*tc.want {
			t.Errorf("Attainable(%g) = %g, want %g", tc.intensity, got, tc.want)
		}
	}
	if got := m.Ridge(); got != 10 {
		t.Errorf("Ridge() = %g, want 10", got)
	}
}

func TestWriteIsSVGWithThePoints(t *testing.T) {
	var buf bytes.Buffer
	m := Machine{Name: "test machine", PeakFLOPS: 50e9, Bandwidth: 8e9}
	pts := []Point{{"decode", 1, 2e9}, {"prefill", 120, 20e9}}
	if err := Write(&buf, m, pts); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	var texts []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		if cd, ok := tok.(xml.CharData); ok {
			texts = append(texts, string(cd))
		}
	}
	all := strings.Join(texts, "\n")
	// decode reaches 2 of the 8 GFLOP/s its intensity allows; prefill 20 of 50.
	for _, want := range []string{"Roofline: test machine", "decode: 25% of the roof", "prefill: 40% of the roof", "ridge 6.2 FLOP/byte"} {
		if !strings.Contains(all, want) {
			t.Errorf("the SVG's text has no %q; it has:\n%s", want, all)
		}
	}
}

func TestRefusesWhatALogPlotCannotShow(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		m    Machine
		pts  []Point
	}{
		{"no bandwidth", Machine{PeakFLOPS: 1e9}, nil},
		{"infinite peak", Machine{PeakFLOPS: math.Inf(1), Bandwidth: 1e9}, nil},
		{"zero intensity", Machine{PeakFLOPS: 1e9, Bandwidth: 1e9}, []Point{{"p", 0, 1e9}}},
		{"NaN FLOP/s", Machine{PeakFLOPS: 1e9, Bandwidth: 1e9}, []Point{{"p", 1, math.NaN()}}},
	} {
		path := filepath.Join(dir, "out.svg")
		err := WriteSVG(path, tc.m, tc.pts)
		if err == nil || !strings.HasPrefix(err.Error(), "roofline: ") {
			t.Errorf("%s: WriteSVG returned %v, want a roofline: error", tc.name, err)
		}
		if _, serr := os.Stat(path); serr == nil {
			t.Errorf("%s: a refused plot left %s behind", tc.name, path)
		}
	}
}
