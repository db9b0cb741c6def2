package tensor

import (
	"fmt"
	"slices"
)

// reducedShape is shape without axis, or with it set to 1 when keepDims.
func reducedShape(shape []int, axis int, keepDims bool) []int {
	out := slices.Clone(shape)
	if keepDims {
		out[axis] = 1
		return out
	}
	return slices.Delete(out, axis, axis+1)
}

// Sum adds up the elements along axis (negative counts from the end). With
// keepDims the axis stays as size 1, which keeps the result broadcastable
// against t, as in x / Sum(x, -1, true).
//
// Sums are accumulated in float64. Adding thousands of float32 values one
// by one in float32 loses low-order bits as the running total grows (the
// error grows with the length); a float64 accumulator has 29 extra bits, so
// for any realistic length the only rounding that matters is the final one
// to float32. That is as accurate as Kahan or pairwise summation here, and
// far simpler to read.
func Sum(t *Tensor, axis int, keepDims bool) *Tensor {
	return sumAlong("Sum", t, axis, keepDims, false)
}

// Mean averages the elements along axis; see Sum. The averaging happens in
// float64 too, so the result is rounded to float32 only once.
func Mean(t *Tensor, axis int, keepDims bool) *Tensor {
	return sumAlong("Mean", t, axis, keepDims, true)
}

// sumAlong implements Sum and, when average is set, Mean.
func sumAlong(op string, t *Tensor, axis int, keepDims, average bool) *Tensor {
	axis = normAxis(op, axis, len(t.shape))
	x := t.Data()
	n := t.shape[axis]
	scale := 1.0
	if average {
		scale = 1 / float64(n)
	}
	outer, inner := outerInner(t.shape, axis)
	out := newTensor(Float32, reducedShape(t.shape, axis, keepDims))
	parallelFor(outer, max(1, elementwiseGrain/max(1, n*inner)), func(lo, hi int) {
		acc := make([]float64, inner)
		for o := lo; o < hi; o++ {
			clear(acc)
			// Walking whole rows of length inner keeps memory access
			// sequential even when reducing a middle axis.
			for k := 0; k < n; k++ {
				row := x[(o*n+k)*inner : (o*n+k+1)*inner]
				for i, v := range row {
					acc[i] += float64(v)
				}
			}
			for i, s := range acc {
				out.f32[o*inner+i] = float32(s * scale)
			}
		}
	})
	return out
}

// Max returns the largest element along axis; see Sum for keepDims. NaN
// propagates, as in numpy.
func Max(t *Tensor, axis int, keepDims bool) *Tensor {
	return extremum("Max", t, axis, keepDims, true)
}

// Min returns the smallest element along axis; see Sum for keepDims. NaN
// propagates, as in numpy.
func Min(t *Tensor, axis int, keepDims bool) *Tensor {
	return extremum("Min", t, axis, keepDims, false)
}

// extremum implements Max (largest) and Min. The comparison is written out
// in each loop rather than passed as a function: softmax takes a Max over
// every attention score, and a call per element doubled its cost.
func extremum(op string, t *Tensor, axis int, keepDims, largest bool) *Tensor {
	axis = normAxis(op, axis, len(t.shape))
	n := t.shape[axis]
	if n == 0 {
		panic(fmt.Sprintf("tensor.%s: axis %d of shape %v is empty", op, axis, t.shape))
	}
	x := t.Data()
	outer, inner := outerInner(t.shape, axis)
	out := newTensor(Float32, reducedShape(t.shape, axis, keepDims))
	parallelFor(outer, max(1, elementwiseGrain/max(1, n*inner)), func(lo, hi int) {
		for o := lo; o < hi; o++ {
			if inner == 1 {
				// The last axis: each result is one contiguous row.
				out.f32[o] = extremeOf(x[o*n:(o+1)*n], largest)
				continue
			}
			best := out.f32[o*inner : (o+1)*inner]
			copy(best, x[o*n*inner:])
			for k := 1; k < n; k++ {
				row := x[(o*n+k)*inner : (o*n+k+1)*inner]
				// v != v catches NaN, which then sticks because no
				// comparison with NaN is ever true.
				if largest {
					for i, v := range row {
						if v > best[i] || v != v {
							best[i] = v
						}
					}
				} else {
					for i, v := range row {
						if v < best[i] || v != v {
							best[i] = v
						}
					}
				}
			}
		}
	})
	return out
}

// extremeOf returns the largest (or smallest) element of a non-empty row,
// or NaN if the row holds one.
func extremeOf(row []float32, largest bool) float32 {
	best := row[0]
	for _, v := range row[1:] {
		if v != v {
			return v
		}
		if (largest && v > best) || (!largest && v < best) {
			best = v
		}
	}
	return best
}

// ArgMax returns, for every position of the other axes (in row-major
// order), the index along axis of the largest element. On ties the first
// index wins; NaN never wins. Greedy decoding is ArgMax(logits, -1).
func ArgMax(t *Tensor, axis int) []int {
	axis = normAxis("ArgMax", axis, len(t.shape))
	n := t.shape[axis]
	if n == 0 {
		panic(fmt.Sprintf("tensor.ArgMax: axis %d of shape %v is empty", axis, t.shape))
	}
	x := t.Data()
	outer, inner := outerInner(t.shape, axis)
	out := make([]int, outer*inner)
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			base := o*n*inner + i
			bestK, best := 0, x[base]
			for k := 1; k < n; k++ {
				// Strictly greater, so an equal later value does not
				// replace an earlier one.
				if v := x[base+k*inner]; v > best || best != best {
					bestK, best = k, v
				}
			}
			out[o*inner+i] = bestK
		}
	}
	return out
}

// TopK returns the k largest entries of every row along the last axis,
// sorted in descending order, with their positions. values has t's shape
// with the last axis set to k; indices lists each row's k positions in the
// same order, row after row. Equal values keep their original order (the
// lower index first). Used for top-k sampling.
func TopK(t *Tensor, k int) (values *Tensor, indices []int) {
	if len(t.shape) == 0 {
		panic("tensor.TopK: tensor is a scalar; it needs at least one axis")
	}
	n := t.shape[len(t.shape)-1]
	if k < 0 || k > n {
		panic(fmt.Sprintf("tensor.TopK: k = %d out of range [0, %d] for shape %v", k, n, t.shape))
	}
	x := t.Data()
	shape := t.Shape()
	shape[len(shape)-1] = k
	values = newTensor(Float32, shape)
	rows := 0
	if n > 0 {
		rows = len(x) / n
	}
	indices = make([]int, rows*k)
	parallelFor(rows, max(1, elementwiseGrain/max(1, n)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := x[r*n : (r+1)*n]
			idx := topKRow(row, k, indices[r*k:(r+1)*k])
			for i, j := range idx {
				values.f32[r*k+i] = row[j]
			}
		}
	})
	return values, indices
}

// topKRow writes the positions of the k largest entries of row into dst
// (len k), best first. It keeps a min-heap of the best k seen so far, so a
// 150k-entry vocabulary costs O(n log k), not a full sort.
func topKRow(row []float32, k int, dst []int) []int {
	if k == 0 {
		return dst
	}
	// worse reports whether position i ranks below position j.
	worse := func(i, j int) bool {
		return row[i] < row[j] || (row[i] == row[j] && i > j)
	}
	h := dst[:0] // h[0] is the worst of the kept entries
	for i := range row {
		if len(h) < k {
			h = append(h, i)
			// sift up
			for c := len(h) - 1; c > 0; {
				p := (c - 1) / 2
				if !worse(h[c], h[p]) {
					break
				}
				h[c], h[p] = h[p], h[c]
				c = p
			}
			continue
		}
		if !worse(h[0], i) {
			continue
		}
		h[0] = i
		// sift down
		for p := 0; ; {
			c := 2*p + 1
			if c >= k {
				break
			}
			if c+1 < k && worse(h[c+1], h[c]) {
				c++
			}
			if !worse(h[c], h[p]) {
				break
			}
			h[c], h[p] = h[p], h[c]
			p = c
		}
	}
	slices.SortFunc(h, func(i, j int) int {
		switch {
		case i == j:
			return 0
		case worse(j, i):
			return -1
		}
		return 1
	})
	return h
}
