package day6

// The checks live in internal/grade/w3d6, shared with the other tree. Task 3
// runs this tree's Day 2 engine and Day 4 runner on this day's block
// manager, and on Day 3's for comparison.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/grade/w3d3"
	"github.com/tinyllm-go/tinyllm/internal/grade/w3d6"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	w3day1 "github.com/tinyllm-go/tinyllm/week3/day1"
	w3day2 "github.com/tinyllm-go/tinyllm/week3/day2"
	w3day3 "github.com/tinyllm-go/tinyllm/week3/day3"
	w3day4 "github.com/tinyllm-go/tinyllm/week3/day4"
)

func newManager(s w3d3.Shape) (w3d6.Manager, w3d6.Pool, error) {
	p, err := w3day3.NewPagePool(w3day3.PoolConfig{NumPages: s.NumPages, PageSize: s.PageSize, Layers: s.Layers, KVHeads: s.KVHeads, HeadDim: s.HeadDim})
	if err != nil {
		return nil, nil, err
	}
	return NewPrefixBlockManager(p), p, nil
}

func stack(ck *checkpoint.Checkpoint, numPages, pageSize int, cached bool) (llm.ModelRunner, llm.BlockAllocator, w3d6.Pool, error) {
	m, err := w3day1.NewQwen2ModelWeek3(ck)
	if err != nil {
		return nil, nil, nil, err
	}
	sh := m.Shape()
	pool, err := w3day3.NewPagePool(w3day3.PoolConfig{NumPages: numPages, PageSize: pageSize, Layers: sh.NumLayers, KVHeads: sh.NumKVHeads, HeadDim: sh.HeadDim})
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := w3day4.NewRunner(m, pool)
	if err != nil {
		return nil, nil, nil, err
	}
	if cached {
		return r, NewPrefixBlockManager(pool), pool, nil
	}
	return r, w3day3.NewBlockManager(pool), pool, nil
}

func newEngine(cfg llm.EngineConfig, runner llm.ModelRunner, blocks llm.BlockAllocator) (llm.Engine, error) {
	e, err := w3day2.NewEngine(cfg, runner, blocks)
	if err != nil {
		return nil, err
	}
	return e, nil
}

func TestW3D6Task1PageHash(t *testing.T) { w3d6.PageHash(t, PageHash) }

func TestW3D6Task2PrefixCache(t *testing.T) { w3d6.Blocks(t, newManager) }

func TestW3D6Task3Engine(t *testing.T) { w3d6.Engine(t, stack, newEngine) }
