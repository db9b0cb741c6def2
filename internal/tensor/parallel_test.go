package tensor

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParallelForCoversRangeOnce(t *testing.T) {
	for _, tc := range []struct{ n, minChunk int }{
		{0, 1}, {1, 1}, {7, 1}, {100, 3}, {1000, 1000}, {1001, 1000}, {100_000, 1}, {5, 0},
	} {
		hits := make([]atomic.Int32, tc.n)
		parallelFor(tc.n, tc.minChunk, func(lo, hi int) {
			require.LessOrEqual(t, 0, lo)
			require.Less(t, lo, hi)
			for i := lo; i < hi; i++ {
				hits[i].Add(1)
			}
		})
		for i := range hits {
			require.Equal(t, int32(1), hits[i].Load(), "n=%d index %d", tc.n, i)
		}
	}
}

func TestParallelForNested(t *testing.T) {
	// Every outer chunk starts an inner parallelFor; the caller-runs-too
	// design means this cannot deadlock even with all helpers busy.
	var total atomic.Int64
	parallelFor(64, 1, func(lo, hi int) {
		for range hi - lo {
			parallelFor(1000, 10, func(lo, hi int) {
				total.Add(int64(hi - lo))
			})
		}
	})
	require.Equal(t, int64(64*1000), total.Load())
}

func TestLargeElementwiseMatchesSerial(t *testing.T) {
	// Big enough to be split across the pool.
	rng := rand.New(rand.NewPCG(2, 2))
	a, b := RandN(rng, 300, 1000), RandN(rng, 300, 1000)
	sum, prod := Add(a, b).Data(), Mul(a, MulScalar(b, 2)).Data()
	for i := range sum {
		require.Equal(t, a.Data()[i]+b.Data()[i], sum[i])
		require.Equal(t, a.Data()[i]*(b.Data()[i]*2), prod[i])
	}
	rows := Sum(a, -1, false).Data()
	for r := 0; r < 300; r++ {
		var s float64
		for _, v := range a.Data()[r*1000 : (r+1)*1000] {
			s += float64(v)
		}
		require.Equal(t, float32(s), rows[r])
	}
}
