package day6

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/w2d6"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// TestW2D6DecodeStaleRowsGPU checks the streaming kernel's builds on a
// cache whose last tile is partial, right after a launch that left NaN in
// their shared memory. A tile's rows past the cache's length are never
// copied: shared memory there holds what the multiprocessor's last block
// left, and a zero probability times a NaN is still NaN, so a kernel must
// not let those rows into its sums at all (the tensor-core builds read
// them as zeros in tc_pv<false> and score them -inf; the CUDA-core builds
// skip them). Each build first runs on a cache of NaN long enough that
// every block fills every stage of its tiles, then on a finite cache whose
// length ends inside a tile, and that output must match the CPU. (Nothing
// promises what shared memory holds when a block starts; on an H200 it
// held the first launch's NaN, and a build that multiplied those rows
// failed. A GPU that cleared it would make this check show nothing, not
// fail.)
func TestW2D6DecodeStaleRowsGPU(t *testing.T) {
	d := kerneltest.Open(t)
	if !hopper(d) {
		t.Skipf("not run: attention_decode_stream needs compute capability 9.0 or later; %s has %s", d, d.Info().ComputeCapability)
	}
	builds := []struct {
		name string
		streamVariant
	}{
		{"tcStream", streamVariant{tcStream, 0, "", 2, 1}},
		{"tcGroups", streamVariant{tcGroups, 0, "", 2, 1}},
		{"smallStream", streamVariant{smallStream, 0, "", 2, 1}},
		{"8 warps, merged apart", streamVariant{defaultStream, 0, "", 0, 1}},
		{"8 warps, merged in the last blocks", streamVariant{defaultStream, 0, "", 0, -1}},
	}
	const poisonLen = 16384
	for _, b := range builds {
		a, err := NewAttention(d)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		a.path, a.stream, a.defines, a.perSM, a.mergeApart = pathStream, b.sb, b.defines, b.perSM, b.apart
		for _, s := range []struct{ hq, h, dim, s int }{{28, 4, 128, 1000}, {28, 4, 128, 4091}, {28, 4, 128, 7001}, {16, 2, 64, 2021}} {
			if b.apart <= 0 && kernels.Blocks(s.s, streamChunk(s.s, s.h, d.Info().Multiprocessors*max(1, b.perSM))) > FusedSplits {
				continue // more chunks than the last blocks merge
			}
			name := fmt.Sprintf("%s/Hq=%d H=%d D=%d S=%d", b.name, s.hq, s.h, s.dim, s.s)
			t.Run(name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(71, uint64(s.s)))
				// The poison: every stage of every block's tiles gets NaN.
				nan := tensor.Full(float32(math.NaN()), s.h, poisonLen, s.dim)
				decodeOn(t, d, a, tensor.RandN(rng, s.hq, 1, s.dim), nan, nan)
				q, k, v := tensor.RandN(rng, s.hq, 1, s.dim), tensor.RandN(rng, s.h, s.s, s.dim), tensor.RandN(rng, s.h, s.s, s.dim)
				got := decodeOn(t, d, a, q, k, v)
				want := FlashAttention(tensor.ExpandDims(q, 0), tensor.ExpandDims(k, 0), tensor.ExpandDims(v, 0), 0, nil, true)
				grade.AllClose(t, name, got, want, w2d6.GPUTol, grade.ByHead(-3))
			})
		}
	}
}

// decodeOn runs a.Decode on one query row q (hq x 1 x dim) over a cache
// holding k and v (h x s x dim), and returns the output as 1 x hq x 1 x dim.
func decodeOn(t *testing.T, d *kernels.Device, a *Attention, q, k, v *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	hq, dim, h, s := q.Dim(0), q.Dim(2), k.Dim(0), k.Dim(1)
	cache, err := devtensor.NewKVCache(d, h, s, dim)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Free()
	if err := cache.Append(k, v); err != nil {
		t.Fatal(err)
	}
	qb, err := devtensor.NewActivations(d, 1, hq*dim)
	if err != nil {
		t.Fatal(err)
	}
	defer qb.Free()
	if err := qb.Upload(tensor.Reshape(q, 1, hq*dim)); err != nil {
		t.Fatal(err)
	}
	out, err := devtensor.NewActivations(d, 1, hq*dim)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Free()
	if err := a.Decode(out, qb, cache, 0, nil, true); err != nil {
		t.Fatal(err)
	}
	res, err := out.Download()
	if err != nil {
		t.Fatal(err)
	}
	return tensor.Reshape(res, 1, hq, 1, dim)
}
