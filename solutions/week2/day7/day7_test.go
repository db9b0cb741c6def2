package day7

// The checks live in internal/grade/w2d7, shared with the other tree. The GPU
// checks run where this machine has a GPU and say by name that they did not
// run where it has none.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/grade/w2d7"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/kernels"
	w1d7 "github.com/tinyllm-go/tinyllm/solutions/week1/day7"
	"github.com/tinyllm-go/tinyllm/solutions/week2/day1"
	"github.com/tinyllm-go/tinyllm/solutions/week2/day3"
)

func load(dev *kernels.Device, ck *checkpoint.Checkpoint, o w2d7.LoadOptions) (*GPUModel, error) {
	return Load(dev, ck, Options{MaxContext: o.MaxContext, Graph: o.Graph, FloatActivations: o.FloatActivations})
}

func generate(m *GPUModel, prompt []int, maxTokens int, eos []int) ([]int, error) {
	return GenerateTokens(m, prompt, GenerateOptions{MaxTokens: maxTokens, EOS: eos})
}

// week2CPU is this tree's CPU Week 2 model: Day 3's on 4-bit checkpoints,
// Day 1's on float ones.
func week2CPU(ck *checkpoint.Checkpoint) (llm.CachedModel, error) {
	if ck.Config.Quantization != nil {
		return day3.NewQwen2ModelWeek2(ck)
	}
	return day1.NewQwen2ModelWeek2(ck)
}

func TestW2D7Sources(t *testing.T) { w2d7.Sources(t, Source, KernelNames) }

func TestW2D7MemoryNeed(t *testing.T) {
	w2d7.MemoryNeed(t, func(cfg checkpoint.Config, maxContext, rows int) (int64, error) {
		return MemoryNeed(cfg, Options{MaxContext: maxContext, PrefillRows: rows})
	})
}

func TestW2D7Task1HuggingFaceGPU(t *testing.T) {
	w2d7.HFDecode(t, "W2D7 Task 1 the model on the device", load)
}

func TestW2D7Task1MatchesWeek2GPU(t *testing.T) {
	w2d7.MatchesWeek2(t, "W2D7 Task 1 the model on the device", load, week2CPU)
}

func TestW2D7Task2ShippedGreedyGPU(t *testing.T) {
	w2d7.ShippedGreedy(t, "W2D7 Task 2 greedy decoding on the device", load, generate)
}

func TestW2D7RefusesWhatDoesNotFitGPU(t *testing.T) {
	w2d7.RefusesWhatDoesNotFit(t, "W2D7 Load checks the memory first", load)
}

func TestW2D7GraphMatchesEagerGPU(t *testing.T) {
	w2d7.GraphMatchesEager(t, "W2D7 the captured decode step", load, true)
}

func TestW2D7DecodeAheadGPU(t *testing.T) {
	w2d7.DecodesAhead(t, "W2D7 decode steps queued back to back", load)
}

func TestW2D7FidelityGPU(t *testing.T) {
	w2d7.Fidelity(t, "W2D7 fidelity on a Qwen2-0.5B shape", load)
}

func TestW2D7Task2GenerateTokens(t *testing.T) {
	w2d7.GenerateScripted(t, "W2D7 Task 2 GenerateTokens", func(m llm.StepModel, prompt []int, o w2d7.GenerateOptions) ([]int, error) {
		return GenerateTokens(m, prompt, GenerateOptions{MaxTokens: o.MaxTokens, EOS: o.EOS, Sampler: o.Sampler, OnToken: o.OnToken})
	})
}

func TestW2D7CUDASourceCompiles(t *testing.T) { w2d7.CUDACompiles(t, Source) }

func TestW2D7Task2SamplingOnDeviceGPU(t *testing.T) {
	w2d7.DeviceSampling(t, "W2D7 Task 2 sampling on the device", load,
		func(m *GPUModel, prompt []int, maxTokens int, s llm.Sampler) ([]int, error) {
			return GenerateTokens(m, prompt, GenerateOptions{MaxTokens: maxTokens, Sampler: s})
		},
		func(temperature, topP float64, topK int, seed uint64) llm.Sampler {
			return w1d7.NewSampler(temperature, topP, topK, seed)
		})
}
