package day4

// The checks live in internal/grade/w3d4, shared with the other tree. Task 3
// runs this tree's Day 2 engine on its Day 3 block manager with this day's
// runner, against its Week 2 model.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/grade/w3d4"
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	w1day3 "github.com/tinyllm-go/tinyllm/solutions/week1/day3"
	w2day1 "github.com/tinyllm-go/tinyllm/solutions/week2/day1"
	w3day1 "github.com/tinyllm-go/tinyllm/solutions/week3/day1"
	w3day2 "github.com/tinyllm-go/tinyllm/solutions/week3/day2"
	w3day3 "github.com/tinyllm-go/tinyllm/solutions/week3/day3"
)

func shape(s w3d4.PageShape) PageShape {
	return PageShape{NumPages: s.NumPages, PageSize: s.PageSize, KVHeads: s.KVHeads, HeadDim: s.HeadDim}
}

func seqs(ss []w3d4.Seq) []PagedSeq {
	out := make([]PagedSeq, len(ss))
	for i, s := range ss {
		out[i] = PagedSeq{Context: s.Context, Len: s.Len, BlockTable: s.BlockTable}
	}
	return out
}

func paged(q *tensor.Tensor, k, v []float32, s w3d4.PageShape, ss []w3d4.Seq, scale float32, refs w3d4.RefCounter) (*tensor.Tensor, error) {
	return PagedAttention(q, k, v, shape(s), seqs(ss), scale, refs)
}

func check(s w3d4.PageShape, ss []w3d4.Seq, refs w3d4.RefCounter) error {
	return CheckPaged(shape(s), seqs(ss), refs)
}

func stack(ck *checkpoint.Checkpoint, numPages, pageSize int) (llm.ModelRunner, llm.BlockAllocator, error) {
	m, err := w3day1.NewQwen2ModelWeek3(ck)
	if err != nil {
		return nil, nil, err
	}
	sh := m.Shape()
	pool, err := w3day3.NewPagePool(w3day3.PoolConfig{NumPages: numPages, PageSize: pageSize, Layers: sh.NumLayers, KVHeads: sh.NumKVHeads, HeadDim: sh.HeadDim})
	if err != nil {
		return nil, nil, err
	}
	r, err := NewRunner(m, pool)
	if err != nil {
		return nil, nil, err
	}
	return r, w3day3.NewBlockManager(pool), nil
}

func newEngine(cfg llm.EngineConfig, runner llm.ModelRunner, blocks llm.BlockAllocator) (llm.Engine, error) {
	e, err := w3day2.NewEngine(cfg, runner, blocks)
	if err != nil {
		return nil, err
	}
	return e, nil
}

func week2(ck *checkpoint.Checkpoint) (llm.CachedModel, error) { return w2day1.NewQwen2ModelWeek2(ck) }

func TestW3D4Task1PagedAttention(t *testing.T) { w3d4.Attention(t, paged) }

func TestW3D4Task2RejectsBadMetadata(t *testing.T) { w3d4.Rejects(t, check, paged) }

func TestW3D4Task3Runner(t *testing.T) { w3d4.EngineGreedy(t, stack, newEngine, week2) }

// gpuRun is the GPU path as the checks call it: upload the metadata, launch,
// wait, free. With a nil device it can only refuse.
func gpuRun(d *kernels.Device, a *PagedKernels) w3d4.GPURun {
	return func(out, q, k, v *kernels.Buffer, s w3d4.PageShape, hq int, ss []w3d4.Seq, scale float32, refs w3d4.RefCounter) error {
		meta, err := UploadMeta(d, shape(s), seqs(ss), refs)
		if err != nil {
			return err
		}
		defer meta.Free()
		if err := a.Attention(out, q, k, v, hq, meta, scale); err != nil {
			return err
		}
		return d.Synchronize()
	}
}

func newGPU(d *kernels.Device) (w3d4.GPURun, func() error, error) {
	a, err := NewPagedKernels(d)
	if err != nil {
		return nil, nil, err
	}
	return gpuRun(d, a), a.Close, nil
}

func TestW3D4Sources(t *testing.T) { w3d4.Sources(t, Source) }

func TestW3D4Task4RefusesBadMetadata(t *testing.T) { w3d4.GPURefuses(t, gpuRun(nil, nil)) }

func TestW3D4Task4PagedAttentionGPU(t *testing.T) { w3d4.GPU(t, newGPU) }

func TestW3D4Task3RunnerRefusesBadBatches(t *testing.T) { w3d4.RunnerRefuses(t, stack) }

func TestW3D4Task1MatchesWeek1(t *testing.T) {
	w3d4.MatchesDense(t, paged, w1day3.ScaledDotProductAttentionGrouped)
}

func TestW3D4Task2RandomMetadata(t *testing.T) { w3d4.RandomMetadata(t, check, paged) }
