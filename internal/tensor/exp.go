package tensor

import "math"

// A float32 e^x without float64: the algorithm of the AVX2 kernel
// (expF32 in kernel_amd64.s), one value at a time, in Go. The arm64 set
// uses it, and it is the readable version of the assembly.
//
// e^x = 2^n · e^r, where n = round(x / ln 2) and r = x - n·ln 2 lies in
// [-ln2/2, ln2/2]. On that short interval a degree-6 polynomial (Cephes'
// expf) matches e^r to float32 precision. ln 2 is split into a high part
// with few significant bits, so n·ln2Hi is exact, and a small low part:
// r keeps its low bits (Cody and Waite's trick). 2^n is built directly in
// the exponent bits of a float32.
const (
	log2E = 1.44269504088896341
	ln2Hi = 0.693359375
	ln2Lo = -2.12194440e-4
	// Above expMax, e^x overflows float32; below expMin, it is smaller
	// than the smallest normal float32 and is returned as 0.
	expMax = 88.72283172607422
	expMin = -87.33654475055310898657
)

// expf32 returns e^x within 2 units in the last place (1 measured).
func expf32(x float32) float32 {
	switch {
	case x != x:
		return x // NaN
	case x > expMax:
		return float32(math.Inf(1))
	case x < expMin:
		return 0
	}
	n := float32(math.Floor(float64(x*log2E) + 0.5))
	r := x - n*ln2Hi
	r -= n * ln2Lo
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r*r + r + 1
	// n is in [-126, 128]; two factors 2^h · 2^(n-h) are each a normal
	// float32 even at the ends of that range, where 2^n alone is not.
	ni := int32(n)
	h := ni >> 1
	return y * math.Float32frombits(uint32(h+127)<<23) * math.Float32frombits(uint32(ni-h+127)<<23)
}

// expGo and sigmoidGo are the slice versions, for a kernelSet.
func expGo(dst, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = expf32(x)
	}
}

func sigmoidGo(dst, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = 1 / (1 + expf32(-x))
	}
}
