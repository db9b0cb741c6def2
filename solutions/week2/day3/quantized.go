// Package day3 is the reference solution of Week 2 Day 3: computing on MLX
// affine-quantized weights without widening them, and the Week 2 model on a
// quantized checkpoint. Graded by `make check-w2d3`.
package day3

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// PackedWeight is an Out x In weight as an MLX affine checkpoint stores it:
// Bits-bit codes packed into uint32 words, low bits first, and a scale and a
// bias per GroupSize inputs of each row. It is declared in
// internal/checkpoint, which reads it from the file.
type PackedWeight = checkpoint.PackedWeight

// Dequantize returns w as a new float32 Out x In tensor: element (r, j) is
// q·scale + bias, q the code of input j of row r, scale and bias those of
// its group, j/GroupSize. The scales are used as stored (they may be
// negative).
func Dequantize(w *PackedWeight) *tensor.Tensor {
	s, b := w.Scales.Data(), w.Biases.Data()
	per := 32 / w.Bits
	groups := w.In / w.GroupSize
	out := make([]float32, w.Out*w.In)
	mask := uint32(1)<<w.Bits - 1
	for r := range w.Out {
		row := out[r*w.In : (r+1)*w.In]
		words := w.Words[r*w.In/per : (r+1)*w.In/per]
		for j := range row {
			q := float32(words[j/per] >> (w.Bits * (j % per)) & mask)
			g := r*groups + j/w.GroupSize
			row[j] = q*s[g] + b[g]
		}
	}
	return tensor.New(out, w.Out, w.In)
}

// QuantizedMatmul returns x·wᵀ for x of shape N.. x In: N.. x Out. It reads
// the packed words directly, one group at a time, and never builds the float
// weights. It panics if x's last axis is not w.In.
func QuantizedMatmul(x *tensor.Tensor, w *PackedWeight) *tensor.Tensor {
	if x.NDim() == 0 || x.Dim(-1) != w.In {
		panic(fmt.Sprintf("day3.QuantizedMatmul: x of shape %v has %d inputs on its last axis, the weight (%d x %d) takes %d",
			x.Shape(), lastDim(x), w.Out, w.In, w.In))
	}
	xs := x.Data()
	if x.DType() != tensor.Float32 {
		xs = tensor.AsType(x, tensor.Float32).Data()
	}
	m := len(xs) / w.In
	ys := make([]float32, m*w.Out)
	// Data is the scales themselves when they are float32 (the model widens
	// them once at load) and a widened copy otherwise.
	s, b := w.Scales.Data(), w.Biases.Data()
	per := 32 / w.Bits
	wordsPerRow, groups := w.In/per, w.In/w.GroupSize
	// Each worker takes a band of weight rows and runs every row of x
	// through it, so a band is read from memory once however many x rows
	// there are.
	parallelRows(w.Out, 16, func(lo, hi int) {
		words := w.Words[lo*wordsPerRow : hi*wordsPerRow]
		sc, bi := s[lo*groups:hi*groups], b[lo*groups:hi*groups]
		for i := range m {
			dotRowsPacked(xs[i*w.In:(i+1)*w.In], words, sc, bi, w.Bits, w.GroupSize, ys[i*w.Out+lo:i*w.Out+hi])
		}
	})
	shape := append(x.Shape()[:x.NDim()-1:x.NDim()-1], w.Out)
	return tensor.New(ys, shape...)
}

func lastDim(x *tensor.Tensor) int {
	if x.NDim() == 0 {
		return 0
	}
	return x.Dim(-1)
}

// dotRowsPacked is the inner loop of the quantized product, kept in one
// place so that a vectorised version can take it over: for each of the
// len(y) rows whose packed codes are words (len(x)·bits/32 words a row),
// with scales and biases len(x)/groupSize a row, it sets
//
//	y[r] = Σ_j x[j]·(q[r][j]·scale + bias)
//	     = Σ_groups (scale·Σ_j q[r][j]·x[j] + bias·Σ_j x[j])
//
// so a group costs one multiply-add per code plus two per group, and the
// float weights are never formed. The group sums of x are the same for
// every row and are computed once per call.
func dotRowsPacked(x []float32, words []uint32, scales, biases []float32, bits, groupSize int, y []float32) {
	in := len(x)
	groups := in / groupSize
	xsum := make([]float32, groups)
	for g := range groups {
		var s float32
		for _, v := range x[g*groupSize : (g+1)*groupSize] {
			s += v
		}
		xsum[g] = s
	}
	per := 32 / bits
	wordsPerRow, wordsPerGroup := in/per, groupSize/per
	for r := range y {
		row := words[r*wordsPerRow : (r+1)*wordsPerRow]
		sc, bi := scales[r*groups:(r+1)*groups], biases[r*groups:(r+1)*groups]
		var acc float32
		for g := range groups {
			gw := row[g*wordsPerGroup : (g+1)*wordsPerGroup]
			gx := x[g*groupSize : (g+1)*groupSize]
			var dot float32
			if bits == 4 {
				for k, wd := range gw {
					xx := gx[k*8 : k*8+8 : k*8+8]
					dot += float32(wd&15)*xx[0] + float32(wd>>4&15)*xx[1] + float32(wd>>8&15)*xx[2] + float32(wd>>12&15)*xx[3] +
						float32(wd>>16&15)*xx[4] + float32(wd>>20&15)*xx[5] + float32(wd>>24&15)*xx[6] + float32(wd>>28)*xx[7]
				}
			} else {
				for k, wd := range gw {
					xx := gx[k*4 : k*4+4 : k*4+4]
					dot += float32(wd&255)*xx[0] + float32(wd>>8&255)*xx[1] + float32(wd>>16&255)*xx[2] + float32(wd>>24)*xx[3]
				}
			}
			acc += sc[g]*dot + bi[g]*xsum[g]
		}
		y[r] = acc
	}
}

// parallelRows calls fn on disjoint bands [lo, hi) covering [0, n), at
// least minRows long, one goroutine per band, and returns when all are
// done.
func parallelRows(n, minRows int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+minRows-1)/minRows)
	if workers <= 1 {
		fn(0, n)
		return
	}
	band := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := band; lo < n; lo += band {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, min(lo+band, n))
		}()
	}
	fn(0, min(band, n))
	wg.Wait()
}

// QuantizedLinear is Week 1's Linear with a packed weight: x·wᵀ + b for x
// of shape N.. x In, giving N.. x Out. b (Out values) may be nil.
func QuantizedLinear(x *tensor.Tensor, w *PackedWeight, b *tensor.Tensor) *tensor.Tensor {
	y := QuantizedMatmul(x, w)
	if b == nil {
		return y
	}
	if b.Size() != w.Out {
		panic(fmt.Sprintf("day3.QuantizedLinear: a bias of %d values for a weight of %d outputs", b.Size(), w.Out))
	}
	return tensor.Add(y, b)
}
