package main

import (
	"runtime/debug"
	"testing"
)

// TestPacedDecodeHeadroom checks the collector's target around a pass:
// a decode step of a bf16 Qwen2-0.5B (988 MB of weights) gets at least
// decodeHeadroom's half a percent of them over a small live heap; a
// prompt, and a decode step over a large live heap, get a quarter of it.
func TestPacedDecodeHeadroom(t *testing.T) {
	if gogcSet {
		t.Skip("not run: GOGC is set in the environment, and the program then leaves the collector alone")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer func() { gcPercent = 0 }()
	least := decodeHeadroom(988 << 20)
	if least < 4<<20 || least > 5<<20 {
		t.Fatalf("decodeHeadroom(988 MB) = %d bytes, want about 4.9 MB", least)
	}
	p := pacedModel{least: least}
	for _, tc := range []struct {
		name   string
		tokens [][]int
		live   uint64
		want   int // GOGC percentage
	}{
		{"decode step, 4 MB live", [][]int{{1}}, 4 << 20, int(least * 100 / (4 << 20))},
		{"two sequences' decode step, 4 MB live", [][]int{{1}, {2}}, 4 << 20, int(least * 100 / (4 << 20))},
		{"prompt, 4 MB live", [][]int{{1, 2, 3}}, 4 << 20, paceMostPercent},
		{"decode step, 64 MB live", [][]int{{1}}, 64 << 20, paceMostPercent},
	} {
		gcPercent = 0
		paceFor(tc.live, p.leastFor(tc.tokens))
		if gcPercent != tc.want {
			t.Errorf("%s: GOGC %d, want %d", tc.name, gcPercent, tc.want)
		}
	}
}
