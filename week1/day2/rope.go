// Package day2 is Week 1 Day 2 of the course: rotary positional embedding
// (RoPE). The guide's chapter "Week 1 Day 2: RoPE" explains the tasks; grade
// your work with `make check-w1d2`.
package day2

import (
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// RoPE rotates pairs of features of each head by an angle proportional to the
// token's position: pair i of position p turns by p·Base^(-2i/Dims).
//
// Traditional pairs neighbours (x[2i], x[2i+1]); the non-traditional form,
// which Qwen2 uses, pairs the two halves (x[i], x[i+Dims/2]).
type RoPE struct {
	Dims, SeqLen int
	Base         float64
	Traditional  bool

	// Your code here (W1D2): add the precomputed cos/sin tables.
}

// NewRoPE prepares the rotation for positions 0 … seqLen-1.
func NewRoPE(dims, seqLen int, base float64, traditional bool) *RoPE {
	// Your code here (W1D2).
	// Compute the angles in float64: at positions in the thousands a float32
	// angle is already off by 1e-4. You may fill the cos/sin tables here or as
	// Forward first reaches each position.
	panic("TODO(W1D2): implement NewRoPE")
}

// Forward rotates x of shape N x L x H x D (D == Dims). Row n starts at
// position offsets[n]; offsets may be nil (all rows start at 0), hold one
// value for every row, or one value per row.
func (r *RoPE) Forward(x *tensor.Tensor, offsets []int) *tensor.Tensor {
	// Your code here (W1D2).
	panic("TODO(W1D2): implement RoPE.Forward")
}
