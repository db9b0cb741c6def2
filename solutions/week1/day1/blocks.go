package day1

import (
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Attention builds an N.. x L x S matrix of scores, and the softmax makes
// three more of that size before the product with v. For a 16k-token
// prompt on Qwen2-0.5B (14 heads) each one is 14 GiB. Every query row is
// independent of the others, though, so the reference attends a block of
// rows at a time: the scores of a block take a few MiB whatever the
// length, and the garbage collector reuses one block's memory for the next.
// Small blocks also stay in the CPU caches through the softmax's passes.

// scoreBudget is the number of scores a block aims at: 1<<20 float32, 4 MiB.
// minBlockRows keeps blocks tall enough for the matrix products to run at
// speed (their kernels work on 6 or 8 rows at a time) when a single row has
// many scores: at S = 16384 and 14 heads a block of 16 rows holds 14 MiB.
// Both are variables so that tests can force many small blocks.
var (
	scoreBudget  = 1 << 20
	minBlockRows = 16
)

// inQueryBlocks runs attend on consecutive blocks of rows of q (its axis -2)
// together with the matching rows of mask, and joins the results along that
// axis. k is only read for its shape: the size of the scores per query row.
func inQueryBlocks(q, k, mask *tensor.Tensor, attend func(q, mask *tensor.Tensor) *tensor.Tensor) *tensor.Tensor {
	l := q.Dim(-2)
	rows := blockRows(scoresPerRow(q, k))
	if rows >= l {
		return attend(q, mask)
	}
	var blocks []*tensor.Tensor
	for start := 0; start < l; start += rows {
		end := min(start+rows, l)
		blocks = append(blocks, attend(tensor.Slice(q, -2, start, end), maskRows(mask, start, end)))
	}
	return tensor.Concat(-2, blocks...)
}

// scoresPerRow is the number of scores one query row produces: one per key
// and per entry of the batch dimensions, which q and k broadcast together.
func scoresPerRow(q, k *tensor.Tensor) int {
	qs, ks := q.Shape(), k.Shape()
	if len(qs) < 2 || len(ks) < 2 {
		return 1 // the matrix product will report the bad shape
	}
	batch, err := tensor.BroadcastShapes(qs[:len(qs)-2], ks[:len(ks)-2])
	if err != nil {
		return 1
	}
	n := k.Dim(-2)
	for _, d := range batch {
		n *= d
	}
	return n
}

// blockRows is how many query rows go in a block.
func blockRows(perRow int) int {
	return max(scoreBudget/max(perRow, 1), minBlockRows, 1)
}

// maskRows returns the rows [start, end) of an additive mask broadcastable to
// N.. x L x S. A mask without a row axis of its own (shape S, or a single row
// broadcast over L) applies to every block as it is.
func maskRows(mask *tensor.Tensor, start, end int) *tensor.Tensor {
	if mask == nil || mask.NDim() < 2 || mask.Dim(-2) == 1 {
		return mask
	}
	return tensor.Slice(mask, -2, start, end)
}
