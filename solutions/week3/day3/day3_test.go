package day3

// The checks live in internal/grade/w3d3, shared with the other tree. Task 4
// runs this tree's Day 2 engine on this day's block manager.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w3d3"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/solutions/week3/day2"
)

func config(s w3d3.Shape) PoolConfig {
	return PoolConfig{NumPages: s.NumPages, PageSize: s.PageSize, Layers: s.Layers, KVHeads: s.KVHeads, HeadDim: s.HeadDim}
}

func newPool(s w3d3.Shape) (w3d3.Pool, error) {
	p, err := NewPagePool(config(s))
	if err != nil {
		return nil, err
	}
	return p, nil
}

func newManager(s w3d3.Shape) (w3d3.Manager, w3d3.Pool, error) {
	p, err := NewPagePool(config(s))
	if err != nil {
		return nil, nil, err
	}
	return NewBlockManager(p), p, nil
}

func newEngine(cfg llm.EngineConfig, runner llm.ModelRunner, blocks llm.BlockAllocator) (llm.Engine, error) {
	e, err := day2.NewEngine(cfg, runner, blocks)
	if err != nil {
		return nil, err
	}
	return e, nil
}

func TestW3D3Task1PagePool(t *testing.T) {
	w3d3.PagePool(t, newPool, func(s w3d3.Shape) int64 { return config(s).BytesPerPage() })
}

func TestW3D3Task2BlockTables(t *testing.T) { w3d3.BlockTables(t, newManager) }

func TestW3D3Task2RandomOperations(t *testing.T) { w3d3.RandomOperations(t, newManager) }

func TestW3D3Task3KVThroughTables(t *testing.T) { w3d3.KVThroughTables(t, newManager) }

func TestW3D3Task4NoLeaks(t *testing.T) { w3d3.NoLeaks(t, newEngine, newManager) }
