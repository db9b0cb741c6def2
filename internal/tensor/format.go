package tensor

import (
	"fmt"
	"strconv"
	"strings"
)

// Printing follows numpy: tensors with more than summarizeAbove elements
// show only the first and last edgeItems entries along each long axis.
const (
	summarizeAbove = 1000
	edgeItems      = 3
)

// String formats the tensor the way numpy prints arrays, followed by its
// shape and dtype, for example
//
//	tensor([[1, 2, 3],
//	        [4, 5, 6]], shape=[2 3], dtype=float32)
//
// Large tensors are abbreviated with "...".
func (t *Tensor) String() string {
	const prefix = "tensor("
	var sb strings.Builder
	sb.WriteString(prefix)
	p := printer{t: t, sb: &sb, summarize: t.Size() > summarizeAbove, indent: len(prefix)}
	p.write(0, 0)
	fmt.Fprintf(&sb, ", shape=%v, dtype=%v)", t.shape, t.dtype)
	return sb.String()
}

type printer struct {
	t         *Tensor
	sb        *strings.Builder
	summarize bool
	indent    int
}

// write prints the sub-array that starts at flat offset off and spans axes
// axis..ndim-1. Elements are read one at a time so that printing a few
// values of a huge 16-bit tensor does not widen all of it.
func (p *printer) write(axis, off int) {
	t := p.t
	if axis == len(t.shape) {
		p.sb.WriteString(strconv.FormatFloat(float64(t.at(off)), 'g', 6, 32))
		return
	}
	stride := 1
	for _, d := range t.shape[axis+1:] {
		stride *= d
	}
	// Between rows of a matrix: a newline; between matrices: a blank line
	// as well, and so on for each extra level, as numpy does.
	sep := ", "
	if axis < len(t.shape)-1 {
		sep = "," + strings.Repeat("\n", len(t.shape)-1-axis) + strings.Repeat(" ", p.indent+axis+1)
	}
	n := t.shape[axis]
	p.sb.WriteByte('[')
	for i := 0; i < n; i++ {
		if i > 0 {
			p.sb.WriteString(sep)
		}
		if p.summarize && n > 2*edgeItems && i == edgeItems {
			p.sb.WriteString("...")
			i = n - edgeItems - 1
			continue
		}
		p.write(axis+1, off+i*stride)
	}
	p.sb.WriteByte(']')
}
