package day7

// The checks live in internal/grade/w1d7, shared with the other tree.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w1d7"
)

func TestW1D7Task1SamplerCandidates(t *testing.T) { w1d7.Candidates(t, NewSampler) }

func TestW1D7Task1SamplerGreedy(t *testing.T) { w1d7.Greedy(t, NewSampler) }

func TestW1D7Task1SamplerFrequencies(t *testing.T) { w1d7.Frequencies(t, NewSampler) }
