package day2

// The checks live in internal/grade/w3d2, shared with the other tree.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w3d2"
	"github.com/tinyllm-go/tinyllm/internal/llm"
)

func newEngine(cfg llm.EngineConfig, runner llm.ModelRunner, blocks llm.BlockAllocator) (llm.Engine, error) {
	e, err := NewEngine(cfg, runner, blocks)
	if err != nil {
		return nil, err
	}
	return e, nil
}

func TestW3D2Task1Admission(t *testing.T) { w3d2.Admission(t, newEngine) }

func TestW3D2Task2ChunkedPrefill(t *testing.T) { w3d2.CallSequences(t, newEngine) }

func TestW3D2Task3Preemption(t *testing.T) { w3d2.Preemption(t, newEngine) }

func TestW3D2Task3NoStarvation(t *testing.T) { w3d2.NoStarvation(t, newEngine) }

func TestW3D2Task4NoLeaks(t *testing.T) {
	w3d2.Faults(t, "W3D2 Task 4 no leaks", newEngine, w3d2.CountingAllocator, nil)
}
