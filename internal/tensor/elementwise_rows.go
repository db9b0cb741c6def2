package tensor

// arith names the operations of binary that have loops of their own:
// applying them through the element function would cost an indirect call
// per element, as much as the arithmetic itself, and these four run on
// every activation of every layer (residuals, biases, norms, masks).
type arith uint8

const (
	opOther arith = iota // use the element function
	opAdd
	opSub
	opMul
	opDiv
)

// applyRow sets dst[j] = f(x[j*sx], y[j*sy]) for every j, where a stride
// of 0 repeats one element (a broadcast operand) and kind, if not opOther,
// says what f computes.
func applyRow(kind arith, f func(x, y float32) float32, dst, x, y []float32, sx, sy int) {
	n := len(dst)
	switch {
	case kind != opOther && sx == 1 && sy == 1:
		x, y := x[:n], y[:n]
		switch kind {
		case opAdd:
			for i := range dst {
				dst[i] = x[i] + y[i]
			}
		case opSub:
			for i := range dst {
				dst[i] = x[i] - y[i]
			}
		case opMul:
			for i := range dst {
				dst[i] = x[i] * y[i]
			}
		default:
			for i := range dst {
				dst[i] = x[i] / y[i]
			}
		}
	case kind != opOther && sx == 1 && sy == 0:
		x, s := x[:n], y[0]
		switch kind {
		case opAdd:
			for i := range dst {
				dst[i] = x[i] + s
			}
		case opSub:
			for i := range dst {
				dst[i] = x[i] - s
			}
		case opMul:
			for i := range dst {
				dst[i] = x[i] * s
			}
		default:
			for i := range dst {
				dst[i] = x[i] / s
			}
		}
	default:
		ia, ib := 0, 0
		for i := range dst {
			dst[i] = f(x[ia], y[ib])
			ia += sx
			ib += sy
		}
	}
}
