package kernels

import (
	"math"
	"testing"
)

func TestBalance(t *testing.T) {
	for _, tc := range []struct {
		items, grid, sms int
		want             float64
	}{
		{592, 592, 132, 592.0 / 132 / 5},    // one-shot blocks: 4 or 5 a multiprocessor
		{1184, 1184, 132, 1184.0 / 132 / 9}, // 8 or 9
		{264, 264, 132, 1},                  // 2 each
		{1184, 264, 132, 1184.0 / 132 / 10}, // 2 blocks a multiprocessor, 4 or 5 items a block
		{100, 264, 132, 100.0 / 132},        // fewer items than blocks: one each, 32 multiprocessors idle
		{0, 1, 1, 0},
	} {
		if got := Balance(tc.items, tc.grid, tc.sms); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Balance(%d, %d, %d) = %v, want %v", tc.items, tc.grid, tc.sms, got, tc.want)
		}
	}
}
