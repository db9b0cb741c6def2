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

// lateWriter stands for the launch ahead of attention in a decode step
// (the one that writes q and appends the new keys and values), slowed
// down: it lets the launch after it start at once, spins for spin clock
// cycles, and only then writes q and rows rows[0 … nr-1] of every head of
// the cache from nk, nv ([heads][nr][d]) and nq.
const lateWriter = `
extern "C" __global__ void write_late(float* k, float* v, float* q, const float* nk, const float* nv,
                                      const float* nq, const int* rows, int nr, int heads, int cap, int d,
                                      int nqs, long long spin) {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    const long long t0 = clock64();
    while (clock64() - t0 < spin) {}
    for (int x = threadIdx.x; x < heads * nr * d; x += blockDim.x) {
        const int h = x / (nr * d), r = x / d % nr, e = x % d;
        const size_t at = ((size_t)h * cap + rows[r]) * d + e;
        k[at] = nk[x];
        v[at] = nv[x];
    }
    for (int x = threadIdx.x; x < nqs; x += blockDim.x) q[x] = nq[x];
}
`

// TestW2D6DecodeOverlapGPU checks what attention_decode_stream may read
// before it waits for the launch ahead of it. A graph holds a slow writer
// (lateWriter) and then Decode, which may start while the writer spins. In
// the cache the rows the writer will write hold other values, and the
// writer's keys score far above the rest, so reading one of them too early
// changes the output completely.
//   - The writer writes q and the last L rows (what a decode step's launch
//     ahead writes): the output must match the CPU on the written values.
//   - The writer also writes row 0, an older row, which the kernel streams
//     before its wait: the output must NOT match; if it does, the kernel
//     did not overlap the writer and the first check showed nothing. The
//     build that waits first (EARLY 0) must match here too.
func TestW2D6DecodeOverlapGPU(t *testing.T) {
	d := kerneltest.Open(t)
	if !hopper(d) {
		t.Skipf("not run: attention_decode_stream needs compute capability 9.0 or later; %s has %s", d, d.Info().ComputeCapability)
	}
	mod, err := d.Compile(lateWriter)
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close()
	writer, err := mod.Kernel("write_late")
	if err != nil {
		t.Fatal(err)
	}
	// About 100 µs at the H200's clock: far longer than the copies.
	const spin = 200_000
	builds := []struct {
		name    string
		defines string
		early   bool
		apart   int
	}{{"stream", "", true, -1}, {"stream, wait first", "#define EARLY 0\n", false, -1}, {"stream, merged apart", "", true, 1}}
	for _, b := range builds {
		a, err := NewAttention(d)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		a.path, a.defines, a.mergeApart = pathStream, b.defines, b.apart
		for _, s := range []struct{ hq, h, dim, l, s int }{{28, 4, 128, 1, 4096}, {28, 4, 128, 3, 777}, {16, 2, 64, 2, 100}} {
			for _, old := range []bool{false, true} {
				name := fmt.Sprintf("%s/Hq=%d H=%d D=%d L=%d S=%d/row 0 written: %v", b.name, s.hq, s.h, s.dim, s.l, s.s, old)
				t.Run(name, func(t *testing.T) {
					rows := []int32{}
					if old {
						rows = append(rows, 0)
					}
					for r := s.s - s.l; r < s.s; r++ {
						rows = append(rows, int32(r))
					}
					got, want := lateWrite(t, d, a, writer, spin, s.hq, s.h, s.dim, s.l, s.s, rows)
					if !old || !b.early {
						grade.AllClose(t, name, got, want, w2d6.GPUTol, grade.ByHead(-3))
						return
					}
					if grade.Compare(got, want, w2d6.GPUTol) == "" {
						t.Errorf("%s: the output matches although row 0 was written while the kernel ran: it did not stream the older rows before its wait, so the check without row 0 shows nothing", name)
					}
				})
			}
		}
	}
}

// lateWrite runs the writer and then a.Decode in one graph, as described
// at TestW2D6DecodeOverlapGPU, and returns the GPU's output and the CPU's
// on the written values (1 x hq x l x dim).
func lateWrite(t *testing.T, d *kernels.Device, a *Attention, writer *kernels.Kernel, spin int64, hq, h, dim, l, s int, rows []int32) (got, want *tensor.Tensor) {
	rng := rand.New(rand.NewPCG(67, uint64(s*len(rows))))
	q, k, v := tensor.RandN(rng, hq, l, dim), tensor.RandN(rng, h, s, dim), tensor.RandN(rng, h, s, dim)
	// The written keys: ten times the mean query of their group (the last
	// query row's), so that each scores far above the random keys.
	g := hq / h
	kd, vd, qd := k.Data(), v.Data(), q.Data()
	nk, nv := make([]float32, h*len(rows)*dim), make([]float32, h*len(rows)*dim)
	for hh := range h {
		for r, row := range rows {
			for e := range dim {
				var m float32
				for j := range g {
					m += qd[((hh*g+j)*l+l-1)*dim+e]
				}
				kd[(hh*s+int(row))*dim+e] = 10 * m / float32(g)
				nk[(hh*len(rows)+r)*dim+e] = kd[(hh*s+int(row))*dim+e]
				nv[(hh*len(rows)+r)*dim+e] = vd[(hh*s+int(row))*dim+e]
			}
		}
	}
	want = FlashAttention(tensor.ExpandDims(q, 0), tensor.ExpandDims(k, 0), tensor.ExpandDims(v, 0), 0, nil, true)

	// What the device holds before the writer runs: other values in the
	// rows it writes, and another q.
	stale := func(t *tensor.Tensor) *tensor.Tensor {
		c := tensor.New(append([]float32(nil), t.Data()...), t.Shape()...)
		cd := c.Data()
		for hh := range h {
			for _, row := range rows {
				for e := range dim {
					cd[(hh*s+int(row))*dim+e] = float32(rng.NormFloat64())
				}
			}
		}
		return c
	}
	cache, err := devtensor.NewKVCache(d, h, s+5, dim)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Free()
	if err := cache.Append(stale(k), stale(v)); err != nil {
		t.Fatal(err)
	}
	tokenMajor := func(q *tensor.Tensor) *tensor.Tensor { return tensor.Reshape(tensor.Transpose(q, 1, 0, 2), l, hq*dim) }
	qb, err := devtensor.NewActivations(d, l, hq*dim)
	if err != nil {
		t.Fatal(err)
	}
	defer qb.Free()
	if err := qb.Upload(tokenMajor(tensor.RandN(rng, hq, l, dim))); err != nil {
		t.Fatal(err)
	}
	out, err := devtensor.NewActivations(d, l, hq*dim)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Free()
	var bufs []*kernels.Buffer
	defer func() {
		for _, b := range bufs {
			b.Free()
		}
	}()
	upload := func(x []float32) *kernels.Buffer {
		b, err := kernels.Upload(d, x)
		if err != nil {
			t.Fatal(err)
		}
		bufs = append(bufs, b)
		return b
	}
	nkb, nvb, nqb := upload(nk), upload(nv), upload(tokenMajor(q).Data())
	rb, err := kernels.Upload(d, rows)
	if err != nil {
		t.Fatal(err)
	}
	bufs = append(bufs, rb)

	// Decode once outside the graph, which grows its buffers (no
	// allocation while capturing); it reads the stale values, and the
	// graph overwrites its output.
	if err := a.Decode(out, qb, cache, 0, nil, true); err != nil {
		t.Fatal(err)
	}
	graph, err := d.Capture(func() error {
		if err := d.Launch(writer, kernels.LaunchConfig{Grid: kernels.D1(1), Block: kernels.D1(256)},
			cache.K, cache.V, qb.Buf, nkb, nvb, nqb, rb, int32(len(rows)), int32(h), int32(cache.Capacity), int32(dim),
			int32(l*hq*dim), spin); err != nil {
			return err
		}
		return a.Decode(out, qb, cache, 0, nil, true)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer graph.Free()
	if err := graph.Launch(); err != nil {
		t.Fatal(err)
	}
	res, err := out.Download()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range res.Data() {
		if math.IsNaN(float64(x)) {
			t.Fatal("the output has NaN")
		}
	}
	return tensor.ExpandDims(tensor.Transpose(tensor.Reshape(res, l, hq, dim), 1, 0, 2), 0), want
}

// TestW2D6DecodeBackToBackGPU runs Decode on several caches in one graph,
// each launch allowed to start while the one ahead of it drains, as a
// decode step's layers follow each other: every launch reuses the chunks'
// states (and counts) of the one before, so a launch that wrote its states
// before the one ahead had merged its own would change that one's output.
// Each output must match the CPU, with the merge in the streaming kernel's
// last blocks and in attention_decode_merge, a launch of its own (also
// with two blocks a multiprocessor, where a launch's blocks run beside
// the one ahead's).
func TestW2D6DecodeBackToBackGPU(t *testing.T) {
	d := kerneltest.Open(t)
	if !hopper(d) {
		t.Skipf("not run: attention_decode_stream needs compute capability 9.0 or later; %s has %s", d, d.Info().ComputeCapability)
	}
	sh := shape7B
	lengths := []int{4096, 1000, 4096, 333, 2048}
	type launch struct {
		cache  *devtensor.KVCache
		q, out *devtensor.Activations
		want   *tensor.Tensor
	}
	ls := make([]launch, len(lengths))
	for i, s := range lengths {
		rng := rand.New(rand.NewPCG(71, uint64(i)))
		q, k, v := tensor.RandN(rng, sh.hq, 1, sh.d), tensor.RandN(rng, sh.h, s, sh.d), tensor.RandN(rng, sh.h, s, sh.d)
		c, err := devtensor.NewKVCache(d, sh.h, s, sh.d)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Free()
		if err := c.Append(k, v); err != nil {
			t.Fatal(err)
		}
		qb, out := activationsOf(t, d, sh, 1)
		defer qb.Free()
		defer out.Free()
		if err := qb.Upload(tensor.Reshape(q, 1, sh.hq*sh.d)); err != nil {
			t.Fatal(err)
		}
		ls[i] = launch{c, qb, out, FlashAttention(tensor.ExpandDims(q, 0), tensor.ExpandDims(k, 0), tensor.ExpandDims(v, 0), 0, nil, true)}
	}
	for _, v := range []streamVariant{{defaultStream, 0, "", 0, -1}, {defaultStream, 0, "", 0, 1}, {streamBuild{8, 2, 32, 16, false, 0}, 0, "", 2, 1},
		{tcStream, 0, "", 2, 1}, {tcStream, 0, "#define TROWS 4\n", 2, 1}, {tcGroups, 0, "", 2, 1},
		{tcStream, 0, "#define LDSM 1\n", 2, 1}, {tcGroups, 0, "#define LDSM 1\n", 2, 1}, {tcGroups, 0, "#define HALF 1\n", 2, 1}} {
		name := v.String()
		t.Run(name, func(t *testing.T) {
			a, err := NewAttention(d)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			a.path, a.stream, a.perSM, a.mergeApart, a.defines = pathStream, v.sb, v.perSM, v.apart, v.defines
			// Once outside the graph, which grows the buffers (no
			// allocation while capturing).
			for _, l := range ls {
				if err := a.Decode(l.out, l.q, l.cache, 0, nil, true); err != nil {
					t.Fatal(err)
				}
				if err := l.out.Buf.Fill(0xFF); err != nil { // NaN: an output the graph leaves unwritten shows
					t.Fatal(err)
				}
			}
			graph, err := d.Capture(func() error {
				for _, l := range ls {
					if err := a.Decode(l.out, l.q, l.cache, 0, nil, true); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			defer graph.Free()
			if err := graph.Launch(); err != nil {
				t.Fatal(err)
			}
			for i, l := range ls {
				res, err := l.out.Download()
				if err != nil {
					t.Fatal(err)
				}
				got := tensor.ExpandDims(tensor.Reshape(res, sh.hq, 1, sh.d), 0)
				grade.AllClose(t, fmt.Sprintf("%s, launch %d of %d (S=%d)", name, i+1, len(ls), lengths[i]), got, l.want, w2d6.GPUTol, grade.ByHead(-3))
			}
		})
	}
}
