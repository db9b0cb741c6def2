//go:build amd64 || arm64

package tensor

// The assembly functions that amd64 (kernel_amd64.s) and arm64
// (kernel_arm64.s) both provide, and their Go wrappers: the wrappers check
// bounds, so that the assembly can trust its arguments, and handle the
// tails that are not whole vectors.

// dotRowsF32 sets y[r] = Σ_{k<n} x[k]·w[r*ld+k] for r < rows, rows > 0;
// n is a multiple of 8. The rows are read one after the other, front to
// back: a single sequential stream, which the hardware prefetcher follows
// best (interleaving four rows was measurably slower on amd64 for rows of
// 896, the shape of most Qwen2-0.5B weights).
//
//go:noescape
func dotRowsF32(x *float32, w *float32, ld, n, rows int, y *float32)

// dotRowsBF16 is dotRowsF32 with bfloat16 weights.
//
//go:noescape
func dotRowsBF16(x *float32, w *uint16, ld, n, rows int, y *float32)

// dotRowsF16 is dotRowsF32 with float16 weights.
//
//go:noescape
func dotRowsF16(x *float32, w *uint16, ld, n, rows int, y *float32)

// axpyF32 adds alpha·x[i] to y[i] for i < n, n a multiple of 8.
//
//go:noescape
func axpyF32(alpha float32, x, y *float32, n int)

// widenBF16 and widenF16 convert n (a multiple of 8) 16-bit words.
//
//go:noescape
func widenBF16(dst *float32, src *uint16, n int)

//go:noescape
func widenF16(dst *float32, src *uint16, n int)

func dotRowsFast(x []float32, w operand, off, ld int, y []float32) {
	k, rows := len(x), len(y)
	kv := k &^ 7 // the assembly handles whole vectors, Go the tail
	if rows == 0 {
		return
	}
	if kv == 0 {
		clear(y)
	} else {
		last := off + (rows-1)*ld + k - 1 // the last element read
		switch w.dtype {
		case Float32:
			_ = w.f32[last]
			if dotRowsShortF32(x, w.f32, off, ld, y) {
				break
			}
			dotRowsF32(&x[0], &w.f32[off], ld, kv, rows, &y[0])
		case BFloat16:
			_ = w.u16[last]
			dotRowsBF16(&x[0], &w.u16[off], ld, kv, rows, &y[0])
		default:
			_ = w.u16[last]
			dotRowsF16(&x[0], &w.u16[off], ld, kv, rows, &y[0])
		}
	}
	if kv < k {
		for r := range y {
			var s float32
			for i := kv; i < k; i++ {
				s += x[i] * w.at(off+r*ld+i)
			}
			y[r] += s
		}
	}
}

func axpyFast(alpha float32, x, y []float32) {
	n := len(x)
	y = y[:n]
	nv := n &^ 7
	if nv > 0 {
		axpyF32(alpha, &x[0], &y[0], nv)
	}
	for i := nv; i < n; i++ {
		y[i] += alpha * x[i]
	}
}

func widenFast(dst []float32, src []uint16, dt DType) {
	n := len(dst)
	src = src[:n]
	nv := n &^ 7
	if nv > 0 {
		switch dt {
		case BFloat16:
			widenBF16(&dst[0], &src[0], nv)
		case Float16:
			widenF16(&dst[0], &src[0], nv)
		default:
			widenPortable(dst, src, dt) // panics with the dtype's name
		}
	}
	widenPortable(dst[nv:], src[nv:], dt)
}
