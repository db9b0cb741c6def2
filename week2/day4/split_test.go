package day4

import "testing"

// v3Split on Qwen2's decode shapes with 132 multiprocessors (an H100 or
// H200): about three blocks a multiprocessor first, then more warps a set
// of rows only where that evens out the blocks the multiprocessors run.
func TestW2D4V3Split(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n, k   int
		wk     int
		blocks int
	}{
		{"7B gate/up", 18944, 3584, 2, 1184}, // one warp a set: 592 blocks, 4.48 a multiprocessor
		{"7B down", 3584, 18944, 8, 896},
		{"7B q/o", 3584, 3584, 4, 448},
		{"0.5B head", 151936, 896, 1, 4748},
		{"0.5B q/o", 896, 896, 2, 56}, // two warps a set leave lanes of a row of 112 pieces with none
		{"0.5B gate/up", 4864, 896, 2, 304},
		{"0.5B down", 896, 4864, 8, 224},
	} {
		wk := v3Split(tc.n, tc.k/8, 4, 1, 132)
		blocks := (tc.n + 4*(Block/32)/wk - 1) / (4 * (Block / 32) / wk)
		if wk != tc.wk || blocks != tc.blocks {
			t.Errorf("%s: %d warps a set (%d blocks), want %d (%d blocks)", tc.name, wk, blocks, tc.wk, tc.blocks)
		}
	}
}
