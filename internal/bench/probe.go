package bench

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// The machine probes: what this computer can do at best, so that every
// other figure can be read against it. A matrix-vector product with a
// large weight matrix reads every weight once and does two flops with it,
// so its ceiling is the memory bandwidth; a large matrix product reuses
// every number many times, so its ceiling is the arithmetic rate.

// Median returns the median of xs (the mean of the middle two for an even
// count); 0 for none. It does not modify xs.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// timeRepeats runs fn warmup times untimed, then repeats times, and
// returns the seconds of each timed run.
func timeRepeats(warmup, repeats int, fn func()) []float64 {
	for range warmup {
		fn()
	}
	secs := make([]float64, repeats)
	for i := range secs {
		start := time.Now()
		fn()
		secs[i] = time.Since(start).Seconds()
	}
	return secs
}

// StreamRead measures the memory bandwidth of reading a buffer of the
// given size front to back, split over threads goroutines (0: GOMAXPROCS),
// and returns the bytes per second of each timed repeat. Make the buffer
// several times larger than the last-level cache, or this measures the
// cache.
func StreamRead(bytes, threads, repeats int) []float64 {
	pass := streamPass(bytes, threads)
	pass()
	out := make([]float64, repeats)
	for i := range out {
		out[i] = pass()
	}
	return out
}

// streamPass allocates the buffer of StreamRead and returns a function
// that reads it once and returns the rate in bytes per second.
func streamPass(bytes, threads int) func() float64 {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	buf := make([]uint64, bytes/8)
	for i := range buf {
		buf[i] = uint64(i) // touch every page, so the timed runs do not fault
	}
	chunk := (len(buf)/threads + 7) &^ 7
	sums := make([]uint64, threads)
	return func() float64 {
		start := time.Now()
		var wg sync.WaitGroup
		for t := range threads {
			lo := min(t*chunk, len(buf))
			hi := min(lo+chunk, len(buf))
			wg.Go(func() { sums[t] += sumWords(buf[lo:hi]) })
		}
		wg.Wait()
		return float64(len(buf)*8) / time.Since(start).Seconds()
	}
}

// sumWords adds up xs with eight independent sums, so the loop is limited
// by how fast memory delivers the words, not by the latency of addition.
func sumWords(xs []uint64) uint64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 uint64
	for len(xs) >= 8 {
		w := (*[8]uint64)(xs[:8])
		s0 += w[0]
		s1 += w[1]
		s2 += w[2]
		s3 += w[3]
		s4 += w[4]
		s5 += w[5]
		s6 += w[6]
		s7 += w[7]
		xs = xs[8:]
	}
	for _, x := range xs {
		s0 += x
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}

// MatmulFlops times tensor.Matmul on two n×n float32 matrices and returns
// the flop rate (2n³ per product) of each timed repeat.
func MatmulFlops(n, warmup, repeats int) []float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := tensor.RandN(rng, n, n), tensor.RandN(rng, n, n)
	secs := timeRepeats(warmup, repeats, func() { tensor.Matmul(a, b) })
	out := make([]float64, len(secs))
	for i, s := range secs {
		out[i] = 2 * float64(n) * float64(n) * float64(n) / s
	}
	return out
}

// MatVecBandwidth times x·Wᵀ for a weight matrix W of rows×cols in dtype
// dt (the decode step of a Linear layer) and returns the weight bytes read
// per second of each timed repeat. The product is run over enough
// distinct copies of W to fill minBytes, in turn, so that W comes from
// memory and not from the cache, as it does in a model whose layers
// together are far larger than the cache.
func MatVecBandwidth(rows, cols int, dt tensor.DType, minBytes, warmup, repeats int) []float64 {
	pass := matVecPass(rows, cols, dt, minBytes)
	for range warmup {
		pass()
	}
	out := make([]float64, repeats)
	for i := range out {
		out[i] = pass()
	}
	return out
}

// collect runs the garbage collector before a timed pass of products, as
// the tinyllm command does after every forward pass (cmd/tinyllm's
// paceHeap): each product allocates its output (608 KB for the output
// head), and under Go's default target a probe's gigabyte of live buffers
// would keep the collector from ever running, so every output would land
// on pages fresh from the operating system, a page fault every 4 KB that
// the engine does not pay. That had held the 4-bit head's measured rate
// at 60–70% of the streaming read, against 97% with its outputs reused.
func collect() { runtime.GC() }

// matVecPass prepares the weights of MatVecBandwidth and returns a function
// that multiplies by every copy once and returns the rate in bytes per
// second.
func matVecPass(rows, cols int, dt tensor.DType, minBytes int) func() float64 {
	rng := rand.New(rand.NewPCG(3, 4))
	x := tensor.RandN(rng, 1, cols)
	size := rows * cols * dt.Size()
	copies := max(1, (minBytes+size-1)/size)
	ws := make([]*tensor.Tensor, copies)
	for i := range ws {
		ws[i] = randWeight(rng, rows, cols, dt)
	}
	return func() float64 {
		collect()
		start := time.Now()
		for _, w := range ws {
			tensor.MatmulT(x, w)
		}
		return float64(size*copies) / time.Since(start).Seconds()
	}
}

// matVecPassPacked is matVecPass for 4-bit weights in groups of
// groupSize (random codes, scales and biases) through the product the
// Week 2 engine uses for them: with 8-bit activations on bf16 scales and
// biases (tensor.MatmulQ4Each) where the kernels have it and the groups
// are 64 long, the float product on float32 scales and biases
// (tensor.MatmulPacked) otherwise. The rate counts the bytes that product
// reads: the codes and the scales and biases as it keeps them.
func matVecPassPacked(rows, cols, groupSize, minBytes int) func() float64 {
	rng := rand.New(rand.NewPCG(5, 6))
	x := tensor.RandN(rng, 1, cols)
	groups := rows * cols / groupSize
	int8 := tensor.HasInt8Kernels() && groupSize == 64
	size := rows*cols/2 + 8*groups
	if int8 {
		size = rows*cols/2 + 4*groups
	}
	copies := max(1, (minBytes+size-1)/size)
	var run []func()
	for range copies {
		words := make([]uint32, rows*cols/8)
		for j := range words {
			words[j] = rng.Uint32()
		}
		scales, biases := make([]float32, groups), make([]float32, groups)
		for j := range scales {
			scales[j], biases[j] = float32(rng.NormFloat64()*0.002), float32(rng.NormFloat64()*0.02)
		}
		if int8 {
			w := &tensor.Q4Matrix{Out: rows, In: cols, Words: words, Scales: make([]uint16, groups), Biases: make([]uint16, groups)}
			for j := range scales {
				w.Scales[j], w.Biases[j] = tensor.BF16FromFloat32(scales[j]), tensor.BF16FromFloat32(biases[j])
			}
			run = append(run, func() { tensor.MatmulQ4Each(x, w) })
			continue
		}
		w := &tensor.PackedMatrix{Out: rows, In: cols, Bits: 4, GroupSize: groupSize, Words: words, Scales: scales, Biases: biases}
		run = append(run, func() { tensor.MatmulPacked(x, w) })
	}
	return func() float64 {
		collect()
		start := time.Now()
		for _, f := range run {
			f()
		}
		return float64(size*copies) / time.Since(start).Seconds()
	}
}

// randWeight returns a rows×cols matrix of small normal values in dtype dt,
// made without ever holding the whole matrix in float32.
func randWeight(rng *rand.Rand, rows, cols int, dt tensor.DType) *tensor.Tensor {
	if dt == tensor.Float32 {
		return tensor.MulScalar(tensor.RandN(rng, rows, cols), 0.02)
	}
	bits := make([]uint16, rows*cols)
	conv := tensor.BF16FromFloat32
	if dt == tensor.Float16 {
		conv = tensor.F16FromFloat32
	}
	for i := range bits {
		bits[i] = conv(float32(rng.NormFloat64() * 0.02))
	}
	if dt == tensor.Float16 {
		return tensor.FromF16(bits, rows, cols)
	}
	return tensor.FromBF16(bits, rows, cols)
}

// MatVecProbe is the measured rate of one matrix-vector product: bf16
// weights, or MLX 4-bit weights in groups of 64 ("q4g64"), whose bytes are
// the packed codes plus a scale and bias per group as the engine reads
// them (bf16 with the 8-bit-activation kernels, float32 otherwise).
type MatVecProbe struct {
	Rows     int     `json:"rows"`
	Cols     int     `json:"cols"`
	DType    string  `json:"dtype"`
	GBPerS   float64 `json:"gb_s"`
	OfStream float64 `json:"of_stream"` // median of (this rate / stream rate measured just before)
}

// ProbeResult holds the machine's ceilings as this program sees them.
type ProbeResult struct {
	Threads         int           `json:"threads"`
	Kernels         string        `json:"kernels"`
	StreamBytes     int           `json:"stream_bytes"`
	StreamGBPerS    float64       `json:"stream_gb_s"`
	MatmulN         int           `json:"matmul_n"`
	MatmulGFLOPPerS float64       `json:"matmul_gflop_s"`
	MatVec          []MatVecProbe `json:"matvec"`
}

// MatVecShapes are the weight matrices of a Qwen2-0.5B decode step, as
// [rows (outputs), cols (inputs)]: down_proj, gate_proj and up_proj, and
// the output head.
var MatVecShapes = [][2]int{{896, 4864}, {4864, 896}, {151936, 896}}

// Probes measures the streaming-read bandwidth (a 1 GiB buffer), the
// float32 matmul rate at 1024³, and bfloat16 and 4-bit matrix-vector
// products at MatVecShapes. Each matrix-vector measurement is paired with a
// bandwidth measurement just before it, and the ratio of each pair is
// reported, which cancels much of the drift of a machine shared with other
// work.
func Probes(threads, repeats int) ProbeResult {
	const streamBytes, n = 1 << 30, 1024
	r := ProbeResult{Threads: threads, Kernels: tensor.KernelName(), StreamBytes: streamBytes, MatmulN: n}
	stream := streamPass(streamBytes, threads)
	stream()
	var streams []float64
	for _, kind := range []string{"bf16", "q4g64"} {
		for _, s := range MatVecShapes {
			var mv func() float64
			if kind == "bf16" {
				mv = matVecPass(s[0], s[1], tensor.BFloat16, streamBytes/4)
			} else {
				mv = matVecPassPacked(s[0], s[1], 64, streamBytes/4)
			}
			mv()
			var ratios, rates []float64
			for range repeats {
				st := stream()
				rate := mv()
				streams = append(streams, st)
				rates = append(rates, rate)
				ratios = append(ratios, rate/st)
			}
			r.MatVec = append(r.MatVec, MatVecProbe{Rows: s[0], Cols: s[1], DType: kind, GBPerS: Median(rates) / 1e9, OfStream: Median(ratios)})
		}
	}
	r.StreamGBPerS = Median(streams) / 1e9
	r.MatmulGFLOPPerS = Median(MatmulFlops(n, 3, max(10, repeats))) / 1e9
	return r
}
