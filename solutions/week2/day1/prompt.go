package day1

import (
	"math"
	"sync"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// promptBlock is the query rows of a head that attendPrompt takes at a
// time. Each block meets only the keys that one of its rows may see, so
// under a causal mask smaller blocks skip more of the scores (16-row
// blocks of a 128-token prompt compute 56% of them, 32-row ones 63%),
// while the g query heads of a group, stacked, still give the matrix
// products 100 rows and more (7·16 for Qwen2-0.5B and 7B).
const promptBlock = 16

// promptScratch holds one worker's stacked queries, scores and context
// rows for attendPrompt, from one layer and prompt to the next.
var promptScratch = sync.Pool{New: func() any { return new([]float32) }}

// attendPrompt is attendInPlace for a piece of a prompt (l > 1 query rows
// a head) under an additive mask of l x S (nil: every key visible), or
// reports false, changing nothing, for a mask of another shape or one that
// hides every key from some row (those take the general path).
//
// Week 1's attention multiplies every query row with every key and then
// lets the mask zero half of the weights: under the causal mask of a
// prompt, the scores above the diagonal are computed, exponentiated and
// thrown away. Here the query rows go in blocks of promptBlock, and a block
// meets only the keys up to the last one any of its rows may see. The g
// query heads that share a key/value head are stacked into one
// [g·rows, D] matrix, so that the block's keys are multiplied once for all
// of them, in products tall enough for the tiled kernels.
func attendPrompt(qd, out []float32, c *FullCache, g, l int, mask *tensor.Tensor) bool {
	d, s := c.d, c.offset
	// seen[r] is one past the last key row r may see.
	seen := make([]int, l)
	var md []float32
	if mask == nil {
		for r := range seen {
			seen[r] = s
		}
	} else {
		if mask.Size() != l*s || mask.Dim(-1) != s {
			return false
		}
		md = mask.Data()
		for r := range seen {
			row := md[r*s : (r+1)*s]
			j := s
			for j > 0 && math.IsInf(float64(row[j-1]), -1) {
				j--
			}
			if j == 0 {
				return false
			}
			seen[r] = j
		}
	}
	blocks := (l + promptBlock - 1) / promptBlock
	scale := float32(1 / math.Sqrt(float64(d)))
	hq := c.h * g
	// Work items are (batch row, key/value head, block), the blocks that
	// see the most keys first, so that the cores finish together.
	heads := c.b * c.h // batch rows × key/value heads
	tensor.ParallelFor(heads*blocks, 1, func(lo, hi int) {
		buf := promptScratch.Get().(*[]float32)
		defer promptScratch.Put(buf)
		rowsMax := min(promptBlock, l)
		if n := g * rowsMax * (2*d + s); cap(*buf) < n {
			*buf = make([]float32, n)
		}
		for it := lo; it < hi; it++ {
			blk := blocks - 1 - it/heads
			head := it % heads // batch row · H + key/value head
			r0 := blk * promptBlock
			r1 := min(r0+promptBlock, l)
			rows := r1 - r0
			e := 0
			for _, v := range seen[r0:r1] {
				e = max(e, v)
			}
			m := g * rows
			qs, scores, ctx := (*buf)[:m*d], (*buf)[m*d:m*d+m*e], (*buf)[m*d+m*e:2*m*d+m*e]
			first := (head/c.h*hq + head%c.h*g) * l * d // query head h·g of batch row head/H
			for j := range g {
				at := first + j*l*d
				copy(qs[j*rows*d:(j+1)*rows*d], qd[at+r0*d:at+r1*d])
			}
			kb, vb := c.block(head/c.h, head%c.h)
			tensor.MatmulTInto(tensor.New(scores, m, e), tensor.New(qs, m, d), tensor.New(kb[:e*d], e, d))
			sums := qs[:m] // the queries are used up: their room holds the rows' sums
			for i := range m {
				row := scores[i*e : (i+1)*e]
				var mrow []float32
				if md != nil {
					r := r0 + i%rows
					mrow = md[r*s : r*s+e]
				}
				tensor.ExpScaled(row, mrow, scale)
				sums[i] = sumOf(row)
			}
			tensor.MatmulInto(tensor.New(ctx, m, d), tensor.New(scores, m, e), tensor.New(vb[:e*d], e, d))
			for j := range g {
				at := first + j*l*d
				dst := out[at+r0*d : at+r1*d]
				for ri := range rows {
					inv := 1 / sums[j*rows+ri] // the weights' normalisation, on D outputs instead of e weights
					for t, x := range ctx[(j*rows+ri)*d : (j*rows+ri+1)*d] {
						dst[ri*d+t] = x * inv
					}
				}
			}
		}
	})
	return true
}
