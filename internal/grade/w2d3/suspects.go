package w2d3

import (
	"math"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// A mistake is a way of reading the packed format wrongly. wrongDequantize
// returns what code with that mistake computes; it is a diagnosis only and
// shares no code with either tree's day package.
type mistake int

const (
	highFirst    mistake = iota // the first value of a word in its top bits
	noBias                      // w = q·scale
	absScale                    // w = q·|scale| + bias
	biasNegated                 // w = q·scale - bias
	group64                     // groups of 64 whatever the format says
	firstRowOnly                // every row reads row 0's scales and biases
)

var causes = map[mistake]string{
	highFirst: "the values of each word read from the top bits down; MLX puts the first value in the lowest bits " +
		"(value k of a word is (word >> (bits·k)) & (2^bits - 1))",
	noBias:       "the bias was left out: each weight is q·scale + bias, with the group's bias",
	absScale:     "the scale's sign was dropped; MLX stores negative scales and they must be used as stored",
	biasNegated:  "the bias was subtracted; the weight is q·scale + bias",
	group64:      "the group size was taken as 64; use the format's own group size",
	firstRowOnly: "every row used row 0's scales and biases; row r's groups are at r·(In/GroupSize) + j/GroupSize",
}

func wrongDequantize(p *checkpoint.PackedWeight, m mistake) *tensor.Tensor {
	per := 32 / p.Bits
	group := p.GroupSize
	if m == group64 {
		if group == 64 {
			return nil
		}
		group = 64
	}
	groups := p.In / p.GroupSize
	s, b := p.Scales.Data(), p.Biases.Data()
	out := make([]float32, p.Out*p.In)
	for r := range p.Out {
		for j := range p.In {
			k := j % per
			if m == highFirst {
				k = per - 1 - k
			}
			q := float64(p.Words[(r*p.In+j)/per] >> (p.Bits * k) & (1<<p.Bits - 1))
			g := r*groups + j/group
			if m == firstRowOnly {
				g = j / group
			}
			sc, bi := float64(s[g]), float64(b[g])
			switch m {
			case noBias:
				bi = 0
			case absScale:
				sc = math.Abs(sc)
			case biasNegated:
				bi = -bi
			}
			out[r*p.In+j] = float32(q*sc + bi)
		}
	}
	return tensor.New(out, p.Out, p.In)
}

// dequantizeSuspects are the mistakes as whole dequantized matrices.
func dequantizeSuspects(p *checkpoint.PackedWeight) []grade.Suspect {
	var s []grade.Suspect
	for m := highFirst; m <= firstRowOnly; m++ {
		s = append(s, grade.Suspect{Cause: causes[m], Output: func() *tensor.Tensor { return wrongDequantize(p, m) }})
	}
	return s
}

// matmulSuspects are the mistakes seen through x·Wᵀ, plus the fused
// formula's own: the group's bias added once, not times the group's Σx.
func matmulSuspects(x *tensor.Tensor, p *checkpoint.PackedWeight) []grade.Suspect {
	var s []grade.Suspect
	for m := highFirst; m <= firstRowOnly; m++ {
		s = append(s, grade.Suspect{Cause: causes[m], Output: func() *tensor.Tensor {
			w := wrongDequantize(p, m)
			if w == nil {
				return nil
			}
			return tensor.MatmulT(x, w)
		}})
	}
	s = append(s, grade.Suspect{
		Cause: "each group's bias was added once; in Σ_j (q_j·s + b)·x_j the bias multiplies the group's Σ x_j",
		Output: func() *tensor.Tensor {
			// x·W0ᵀ with W0 = q·s, then + Σ_g b_g per output.
			y := tensor.MatmulT(x, wrongDequantize(p, noBias))
			groups := p.In / p.GroupSize
			b := p.Biases.Data()
			d := y.Data()
			for i := range d {
				r := i % p.Out
				for g := range groups {
					d[i] += b[r*groups+g]
				}
			}
			return y
		}})
	return s
}
