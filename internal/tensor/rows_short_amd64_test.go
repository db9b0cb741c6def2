package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkDotRowsShort times one query's scores against a head's cached
// keys at 2,048 positions of 32 or 64 floats (256 or 512 KB, from the L2
// and L3 caches): the amd64 kernel for short rows, four at a time, against
// dotRowsF32, one row at a time.
//
//	go test -run '^$' -bench DotRowsShort -count 5 ./internal/tensor
func BenchmarkDotRowsShort(b *testing.B) {
	const rows = 2048
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{32, 64} {
		w, x, y := make([]float32, rows*n), make([]float32, n), make([]float32, rows)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		b.Run(fmt.Sprintf("n=%d/four_rows", n), func(b *testing.B) {
			for b.Loop() {
				dotRowsShortF32(x, w, 0, n, y)
			}
		})
		b.Run(fmt.Sprintf("n=%d/one_row", n), func(b *testing.B) {
			for b.Loop() {
				dotRowsF32(&x[0], &w[0], n, n, rows, &y[0])
			}
		})
	}
}
