package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/safetensors"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// tiny is a Qwen2 shape small enough to write in a test.
var tiny = Shape{"tiny", 64, 16, 40, 2, 4, 2, 128, 1e4, 1e-6, true}

// tokenizerDir writes a stand-in tokenizer folder.
func tokenizerDir(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{"model":{}}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"bos_token_id": 61, "eos_token_id": 62}`), 0o644))
	return dir
}

func TestWriteRandomModelOpensAsCheckpoint(t *testing.T) {
	for _, shard := range []int64{1 << 30, 4000} { // one file; several shards with an index
		t.Run("", func(t *testing.T) {
			defer func(old int64) { MaxShardBytes = old }(MaxShardBytes)
			MaxShardBytes = shard
			dir := filepath.Join(t.TempDir(), "m")
			var last int64
			require.NoError(t, WriteRandomModel(dir, tiny, RandomModelOptions{Seed: 1, TokenizerFrom: tokenizerDir(t),
				Progress: func(done, total int64) { last = done; require.LessOrEqual(t, done, total) }}))
			require.Equal(t, 2*tiny.Params(), last)
			ck, err := checkpoint.Open(dir)
			require.NoError(t, err)
			defer ck.Close()
			require.Equal(t, tiny.HiddenSize, ck.Config.HiddenSize)
			require.Equal(t, "bfloat16", ck.Config.TorchDType)
			gen, err := ck.ReadGenerationConfig()
			require.NoError(t, err)
			require.EqualValues(t, []int{62, 61}, gen.EOSTokenIDs)
			w, err := ck.Tensor("model.layers.1.mlp.down_proj.weight", tiny.HiddenSize, tiny.IntermediateSize)
			require.NoError(t, err)
			require.Equal(t, tensor.BFloat16, w.DType())
			var sum2 float64
			for _, v := range w.Data() {
				require.Less(t, float64(v*v), 0.0013) // |v| <= 0.02·√3
				sum2 += float64(v * v)
			}
			std := sum2 / float64(w.Size())
			require.InDelta(t, 0.0004, std, 0.0001) // variance 0.02²
			norm, err := ck.Tensor("model.norm.weight")
			require.NoError(t, err)
			require.Equal(t, float32(1), norm.At(3))
			_, err = os.Stat(filepath.Join(dir, "tokenizer.json"))
			require.NoError(t, err)
			if shard < 1<<30 {
				_, err = os.Stat(filepath.Join(dir, "model.safetensors.index.json"))
				require.NoError(t, err)
			}
		})
	}
}

func TestWriteRandomModelIsDeterministic(t *testing.T) {
	tok := tokenizerDir(t)
	read := func(seed uint64) []float32 {
		dir := filepath.Join(t.TempDir(), "m")
		require.NoError(t, WriteRandomModel(dir, tiny, RandomModelOptions{Seed: seed, TokenizerFrom: tok}))
		f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
		require.NoError(t, err)
		defer f.Close()
		w, err := f.Tensor("model.embed_tokens.weight")
		require.NoError(t, err)
		return w.Data()
	}
	require.Equal(t, read(3), read(3))
	require.NotEqual(t, read(3), read(4))
}

func TestWriteRandomModelNeedsTokenizer(t *testing.T) {
	err := WriteRandomModel(t.TempDir(), tiny, RandomModelOptions{TokenizerFrom: t.TempDir()})
	require.ErrorContains(t, err, "no tokenizer.json")
}

func TestShapesHaveTheRealSizes(t *testing.T) {
	// Parameter counts of the published models.
	require.InDelta(t, 494e6, float64(Shapes["qwen2-0.5b"].Params()), 1e6)
	require.InDelta(t, 1544e6, float64(Shapes["qwen2-1.5b"].Params()), 2e6)
	require.InDelta(t, 7616e6, float64(Shapes["qwen2-7b"].Params()), 2e6)
	require.Equal(t, []string{"qwen2-0.5b", "qwen2-1.5b", "qwen2-7b"}, ShapeNames())
}

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
