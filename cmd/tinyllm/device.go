package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/tinyllm-go/tinyllm/internal/bench"
	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devsample"
	refw2d7 "github.com/tinyllm-go/tinyllm/solutions/week2/day7"
)

// The GPU engine is Week 2 Day 7's model: the Week 2 model (KV cache, bf16
// or 4-bit weights) resident on the device, its decode step captured as a
// graph. --device picks it:
//
//	auto   the GPU when this machine has one (and --impl ref, and not an
//	       explicit --week 1), else the CPU
//	cpu    the CPU engines of --week 1 or 2
//	cuda   the GPU engine on an NVIDIA GPU (Linux)
//	metal  the GPU engine on an Apple GPU (macOS)

// gpuModel is what the commands need of a tree's GPU model.
type gpuModel interface {
	llm.StepModel
	Close() error
	Graphed() (bool, error)
	SetSampling(p *devsample.Params) error
}

// gpuOptions size the GPU model.
type gpuOptions struct {
	maxContext  int // positions of the device cache; 0: the day's default
	prefillRows int // prompt tokens per forward pass; 0: the day's default
}

func init() {
	ref := impls["ref"]
	ref.gpu = func(dev *kernels.Device, ck *checkpoint.Checkpoint, o gpuOptions) (gpuModel, error) {
		m, err := refw2d7.Load(dev, ck, refw2d7.Options{MaxContext: o.maxContext, PrefillRows: o.prefillRows, Graph: true})
		if err != nil {
			return nil, err
		}
		return m, nil
	}
	ref.gpuGenerate = func(m llm.StepModel, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s llm.Sampler, n int, eos []int, onToken func(int), on func(string)) (string, error) {
		return refw2d7.Generate(m, tok, msgs, refw2d7.GenerateOptions{MaxTokens: n, EOS: eos, Sampler: s, OnToken: onToken, OnText: on})
	}
	impls["ref"] = ref
}

// gpuGenerateFunc is a tree's W2D7 Generate; s nil is greedy on the device.
type gpuGenerateFunc func(m llm.StepModel, tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s llm.Sampler, n int, eos []int, onToken func(int), on func(string)) (string, error)

// checkDeviceFlag validates --device.
func checkDeviceFlag(name string) error {
	switch name {
	case "auto", "cpu":
		return nil
	case kernels.CUDA, kernels.Metal:
		if kernels.PlatformBackend() != name {
			have := kernels.PlatformBackend()
			if have == "" {
				have = "none"
			}
			return fmt.Errorf("%w: --device %s is not available on this platform (its GPU backend: %s)", errUsage, name, have)
		}
		return nil
	}
	return fmt.Errorf("%w: --device must be auto, cpu, cuda or metal, got %q", errUsage, name)
}

// openDevice opens the GPU that --device asks for, or returns nil for the
// CPU. auto falls back to the CPU, with a note when a GPU is there but
// could not be used; cuda and metal fail instead.
func openDevice(name, implName string, week int, weekSet bool, stderr io.Writer) (*kernels.Device, error) {
	if name == "cpu" {
		return nil, nil
	}
	if weekSet && week == 1 {
		if name == "auto" {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: --device %s runs the Week 2 model on the GPU; --week 1 runs on the CPU only", errUsage, name)
	}
	if name == "auto" && implName != "ref" {
		return nil, nil // a learner's GPU day runs only when asked for
	}
	if impls[implName].gpu == nil {
		return nil, fmt.Errorf("%w: --impl %s has no GPU engine in this build", errUsage, implName)
	}
	dev, err := kernels.Open()
	if err != nil {
		if name == "auto" {
			if !errors.Is(err, kernels.ErrNoDevice) {
				fmt.Fprintf(stderr, "note: the GPU could not be opened (%v); running on the CPU\n", err)
			}
			return nil, nil
		}
		return nil, fmt.Errorf("--device %s: %w", name, err)
	}
	return dev, nil
}

// loadGPU loads the GPU model and adapts it to the commands. The choice
// of each token stays on the device: the model's own argmax (sampling nil),
// or Week 1's sampler run on the device, its random stream restarted from
// the seed for every reply, as the CPU engine restarts its sampler. Only
// the token id comes back.
func loadGPU(dev *kernels.Device, ck *checkpoint.Checkpoint, implName string, o gpuOptions, sampling *devsample.Params) (loadedModel, gpuModel, error) {
	im := impls[implName]
	var m gpuModel
	if err := learnerGuard(implName, func() error {
		var err error
		m, err = im.gpu(dev, ck, o)
		return err
	}); err != nil {
		return loadedModel{}, nil, err
	}
	lm := loadedModel{
		generate: func(tok *tokenizer.Tokenizer, msgs []tokenizer.Message, s sampler, n int, eos []int, on func(string)) (string, error) {
			if sampling != nil {
				if err := m.SetSampling(sampling); err != nil {
					return "", err
				}
			}
			// No sampler on the CPU; the reply's tokens are counted as
			// they come.
			var onToken func(int)
			if cs, ok := s.(*countingSampler); ok {
				onToken = func(id int) { cs.n++; cs.last = id }
			}
			return im.gpuGenerate(m, tok, msgs, nil, n, eos, onToken, on)
		},
		bench: func(o bench.Options) (bench.Result, error) { return bench.RunStepModel(m, o) },
	}
	return lm, m, nil
}

// deviceNote is how the loaded line names where the model runs.
func deviceNote(dev *kernels.Device) string {
	if dev == nil {
		return "cpu"
	}
	return dev.String() + ", decode step captured as a graph on first use"
}
