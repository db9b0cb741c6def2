package bench

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// countingModel returns logits that make token (last id + 1) the most likely.
type countingModel struct{ calls, lastLen int }

func (m *countingModel) Forward(tokens [][]int) *tensor.Tensor {
	m.calls++
	seq := tokens[0]
	m.lastLen = len(seq)
	logits := tensor.Zeros(1, len(seq), 10)
	logits.Data()[(len(seq)-1)*10+(seq[len(seq)-1]+1)%10] = 1
	return logits
}

func TestRunModel(t *testing.T) {
	m := &countingModel{}
	res, err := RunModel(m, Options{PromptLen: 5, GenLen: 3, Warmup: 1, Repeats: 2, VocabSize: 10})
	require.NoError(t, err)
	require.Equal(t, 1+2*3, m.calls) // a warm-up pass, then 3 passes per generation
	require.Equal(t, 5+2, m.lastLen)
	require.Len(t, res.Runs, 2)
	require.Positive(t, res.PrefillTokPerS)
	require.Positive(t, res.DecodeTokPerS)
	require.Positive(t, res.TTFTSeconds)

	_, err = RunModel(m, Options{PromptLen: 0, GenLen: 1, Repeats: 1, VocabSize: 10})
	require.Error(t, err)
}

// lastModel also has ForwardLast, which RunModel must prefer for generation.
type lastModel struct {
	countingModel
	lastCalls int
}

func (m *lastModel) ForwardLast(tokens [][]int) *tensor.Tensor {
	m.lastCalls++
	logits := m.Forward(tokens)
	m.calls-- // counted as a ForwardLast call, not a Forward one
	v := logits.Dim(-1)
	return tensor.New(logits.Data()[logits.Size()-v:], 1, 1, v)
}

func TestRunModelPrefersForwardLast(t *testing.T) {
	m := &lastModel{}
	res, err := RunModel(m, Options{PromptLen: 5, GenLen: 3, Warmup: 1, Repeats: 2, VocabSize: 10, AllLogits: true})
	require.NoError(t, err)
	require.Equal(t, 1+2*3, m.lastCalls) // generation uses only ForwardLast
	require.Equal(t, 2, m.calls)         // one all-logits Forward per run
	require.Positive(t, res.ForwardAllSeconds)
	for _, r := range res.Runs {
		require.Positive(t, r.ForwardAllSeconds)
	}
}

func TestMedian(t *testing.T) {
	require.Equal(t, 0.0, Median(nil))
	require.Equal(t, 2.0, Median([]float64{3, 1, 2}))
	require.Equal(t, 2.5, Median([]float64{4, 1, 3, 2}))
}

func TestPeakRSS(t *testing.T) {
	rss := PeakRSS()
	if rss == 0 {
		t.Skip("this platform does not report peak resident memory")
	}
	require.Greater(t, rss, int64(1<<20))
}

func TestProbesSmall(t *testing.T) {
	require.Positive(t, Median(StreamRead(1<<20, 2, 2)))
	require.Positive(t, Median(MatmulFlops(64, 0, 2)))
	for _, dt := range []tensor.DType{tensor.Float32, tensor.BFloat16, tensor.Float16} {
		require.Positive(t, Median(MatVecBandwidth(33, 65, dt, 1<<16, 1, 2)))
	}
	require.Positive(t, matVecPassPacked(33, 128, 64, 1<<16)())
}

// BenchmarkMatVecBF16 is the decode-step matrix-vector product at the
// Qwen2-0.5B shapes; it reports the weight bytes streamed per second (from
// memory, not cache: see MatVecBandwidth). Compare with BenchmarkStreamRead.
func BenchmarkMatVecBF16(b *testing.B) {
	for _, s := range MatVecShapes {
		b.Run(fmt.Sprintf("%v_%dx%d", tensor.BFloat16, s[0], s[1]), func(b *testing.B) {
			pass := matVecPass(s[0], s[1], tensor.BFloat16, 256<<20)
			pass()
			var rates []float64
			for b.Loop() {
				rates = append(rates, pass())
			}
			b.ReportMetric(Median(rates)/1e9, "GB/s")
		})
	}
}

// BenchmarkMatVecQ4 is BenchmarkMatVecBF16 for MLX 4-bit weights in groups
// of 64, through the engine's product (see matVecPassPacked).
func BenchmarkMatVecQ4(b *testing.B) {
	for _, s := range MatVecShapes {
		b.Run(fmt.Sprintf("q4g64_%dx%d", s[0], s[1]), func(b *testing.B) {
			pass := matVecPassPacked(s[0], s[1], 64, 256<<20)
			pass()
			var rates []float64
			for b.Loop() {
				rates = append(rates, pass())
			}
			b.ReportMetric(Median(rates)/1e9, "GB/s")
		})
	}
}

// BenchmarkStreamRead is the memory bandwidth ceiling of the matrix-vector
// products.
func BenchmarkStreamRead(b *testing.B) {
	pass := streamPass(256<<20, 0)
	pass()
	var rates []float64
	for b.Loop() {
		rates = append(rates, pass())
	}
	b.ReportMetric(Median(rates)/1e9, "GB/s")
}
