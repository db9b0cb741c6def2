package day6

// The day's benchmarks, on the attention of Qwen2-7B (28 query heads on 4
// key/value heads of 128): decode attention at growing cache lengths (its
// time should grow linearly, and its bandwidth reading the cache approach
// the GPU's copy bandwidth), prefill (both kernels, and Qwen2-0.5B's heads
// too) with causal tile skipping against the same prefill with the causal
// mask given as an explicit mask (every tile computed), the chunk sizes of flash-decoding, and the CPU's flash
// attention against Week 1's. Without a GPU the GPU ones say so.
//
//	go test -run '^$' -bench W2D6 -benchtime 200ms ./solutions/week2/day6

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d6"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day3"
)

const hq7B, h7B, d7B = 28, 4, 128

// rotateBytes is how much cache the decode benchmark cycles through: a
// real step reads each layer's own cache, so several times the H200's L2
// cache, or a short cache would be read from L2.
const rotateBytes = 1 << 30

// timeLaunches times n rounds of launch on the device's clock and returns
// the time of one.
func timeLaunches(b *testing.B, d *kernels.Device, launch func(i int) error) time.Duration {
	for i := range 3 {
		if err := launch(i); err != nil {
			b.Fatal(err)
		}
	}
	if err := d.Synchronize(); err != nil {
		b.Fatal(err)
	}
	per, _ := kerneltest.DeviceTime(b, d, b.N, launch)
	return per
}

// caches fills n caches of s positions with random keys and values (Qwen2-7B's
// heads).
func caches(b *testing.B, d *kernels.Device, n, s int) []*devtensor.KVCache {
	return cachesOf(b, d, shape7B, n, s)
}

// attnShape is a model's attention heads: query heads, key/value heads and
// the head dimension.
type attnShape struct {
	name     string
	hq, h, d int
}

var (
	shape7B  = attnShape{"7B", hq7B, h7B, d7B}
	shape05B = attnShape{"0.5B", 14, 2, 64}
)

// cachesOf fills n caches of s positions of sh's key/value heads with
// random keys and values.
func cachesOf(b testing.TB, d *kernels.Device, sh attnShape, n, s int) []*devtensor.KVCache {
	rng := rand.New(rand.NewPCG(1, uint64(s)))
	k, v := tensor.RandN(rng, sh.h, s, sh.d), tensor.RandN(rng, sh.h, s, sh.d)
	cs := make([]*devtensor.KVCache, n)
	for i := range cs {
		c, err := devtensor.NewKVCache(d, sh.h, s, sh.d)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Append(k, v); err != nil {
			b.Fatal(err)
		}
		cs[i] = c
	}
	return cs
}

func activations(b *testing.B, d *kernels.Device, rows int) (q, out *devtensor.Activations) {
	return activationsOf(b, d, shape7B, rows)
}

// activationsOf makes rows random query rows of sh's query heads and an
// output of the same size.
func activationsOf(b testing.TB, d *kernels.Device, sh attnShape, rows int) (q, out *devtensor.Activations) {
	rng := rand.New(rand.NewPCG(2, uint64(rows)))
	q, err := devtensor.NewActivations(d, rows, sh.hq*sh.d)
	if err != nil {
		b.Fatal(err)
	}
	if err := q.Upload(tensor.RandN(rng, rows, sh.hq*sh.d)); err != nil {
		b.Fatal(err)
	}
	if out, err = devtensor.NewActivations(d, rows, sh.hq*sh.d); err != nil {
		b.Fatal(err)
	}
	return q, out
}

// reportDecode reports the device time, the bandwidth of reading the cache
// (keys and values, once) and, where scripts/gpu-check.sh measured it, its
// fraction of PyTorch's copy bandwidth.
func reportDecode(b *testing.B, per time.Duration, s int) {
	bytes := float64(devtensor.KVCacheBytes(h7B, s, d7B))
	gbps := bytes / per.Seconds() / 1e9
	b.ReportMetric(float64(per.Nanoseconds())/1e3, "us/gpu")
	b.ReportMetric(gbps, "GB/s")
	if copyGBps, err := strconv.ParseFloat(os.Getenv("TINYLLM_TORCH_COPY_GBPS"), 64); err == nil && copyGBps > 0 {
		b.ReportMetric(100*gbps/copyGBps, "%copy")
	}
}

// decodePaths are the rungs of the decode ladder, fastest last: what
// Decode picks on a GPU that has them all is the streaming kernel.
var decodePaths = []struct {
	name string
	path decodePath
}{{"split+reduce", pathSplit}, {"fused", pathFused}, {"stream", pathStream}}

// BenchmarkW2D6Decode times each decode path at growing cache lengths,
// launched one by one from the host ("eager": the host's cost per launch,
// several microseconds, is a floor) and replayed from a graph of one
// launch per cache ("graph"; the streaming kernel also "graph-pdl", where
// each launch may start while the one before it drains, and
// "graph-pdl-baseline", the streaming kernel as it was before it copied
// the cache ahead of its wait and spread its merge: baselineStream; and
// "graph-pdl-merged-apart" and "-merged-last", with the merge forced into
// a launch of its own, attention_decode_merge, or into the streaming
// kernel's last blocks). At each length a copy of as many bytes as the
// cache holds is timed first, from a graph with and without programmatic
// dependent launch ("copy/graph", "copy/graph-pdl"), and each path's
// graph rows report their time's share of that copy's ("%samecopy"): the
// ceiling for a kernel that reads that much, launched the same way.
func BenchmarkW2D6Decode(b *testing.B) {
	d := kerneltest.Open(b)
	a, err := NewAttention(d)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	baseline, err := NewAttention(d)
	if err != nil {
		b.Fatal(err)
	}
	defer baseline.Close()
	baseline.stream, baseline.defines = baselineStream.sb, baselineStream.defines
	q, out := activations(b, d, 1)
	defer q.Free()
	defer out.Free()
	for _, s := range []int{512, 1024, 2048, 4096, 8192, 16384, 32768} {
		n := max(2, min(64, rotateBytes/int(devtensor.KVCacheBytes(h7B, s, d7B))))
		cs := caches(b, d, n, s)
		// The ceiling at this length: a copy that moves as many bytes as
		// the cache holds, launched as the kernels are.
		ceiling := map[string]time.Duration{}
		for _, mode := range []string{"graph", "graph-pdl"} {
			b.Run(fmt.Sprintf("7B/S=%d/copy/%s", s, mode), func(b *testing.B) {
				bytes := int64(devtensor.KVCacheBytes(h7B, s, d7B))
				ceiling[mode] = kerneltest.CopyTime(b, d, bytes, rotateBytes, mode == "graph-pdl")
				kerneltest.ReportCopy(b, ceiling[mode], bytes)
			})
		}
		for _, p := range decodePaths {
			if p.path == pathStream && !hopper(d) {
				b.Logf("not run: the streaming kernel needs compute capability 9.0 or later (%s)", d)
				continue
			}
			for _, mode := range []string{"eager", "graph", "graph-pdl", "graph-pdl-baseline", "graph-pdl-merged-apart", "graph-pdl-merged-last"} {
				if mode != "eager" && mode != "graph" && p.path != pathStream {
					continue
				}
				a := a
				if mode == "graph-pdl-baseline" {
					a = baseline
				}
				b.Run(fmt.Sprintf("7B/S=%d/%s/%s", s, p.name, mode), func(b *testing.B) {
					a.path, a.noOverlap = p.path, mode == "eager" || mode == "graph"
					a.mergeApart = map[string]int{"graph-pdl-merged-apart": 1, "graph-pdl-merged-last": -1}[mode]
					defer func() { a.path, a.noOverlap, a.mergeApart = pathAuto, false, 0 }()
					launch := func(i int) error { return a.Decode(out, q, cs[i%n], 0, nil, true) }
					var per time.Duration
					if mode == "eager" {
						per = timeLaunches(b, d, launch)
					} else {
						per = kerneltest.GraphTime(b, d, n, launch)
					}
					reportDecode(b, per, s)
					if mode != "eager" {
						c := ceiling["graph"]
						if strings.HasPrefix(mode, "graph-pdl") {
							c = ceiling["graph-pdl"]
						}
						b.ReportMetric(100*c.Seconds()/per.Seconds(), "%samecopy")
					}
				})
			}
		}
		for _, c := range cs {
			c.Free()
		}
	}
}

// BenchmarkW2D6DecodeChunks times the fused kernel's chunk sizes at 4096
// positions; DecodeChunk's choice is the "auto" row.
func BenchmarkW2D6DecodeChunks(b *testing.B) {
	d := kerneltest.Open(b)
	a, err := NewAttention(d)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	q, out := activations(b, d, 1)
	defer q.Free()
	defer out.Free()
	const s = 4096
	n := rotateBytes / int(devtensor.KVCacheBytes(h7B, s, d7B))
	cs := caches(b, d, n, s)
	defer func() {
		for _, c := range cs {
			c.Free()
		}
	}()
	b.Logf("DecodeChunk(%d, %d, %d SMs) = %d", s, h7B, d.Info().Multiprocessors, DecodeChunk(s, h7B, d.Info().Multiprocessors))
	for _, chunk := range []int{0, 32, 64, 128, 256, 512, 4096} {
		name := fmt.Sprintf("chunk=%d", chunk)
		if chunk == 0 {
			name = "chunk=auto"
		}
		b.Run(name, func(b *testing.B) {
			a.chunk, a.path = chunk, pathFused
			defer func() { a.chunk, a.path = 0, pathAuto }()
			per := timeLaunches(b, d, func(i int) error { return a.Decode(out, q, cs[i%n], 0, nil, true) })
			reportDecode(b, per, s)
		})
	}
}

// streamSetup opens the GPU for the streaming kernel's benchmarks (they
// skip without compute capability 9.0) and makes a query row, its output
// and the rotating caches at 512, 4k and 32k positions (or the lengths
// TINYLLM_DECODE_LENGTHS lists, comma-separated), all freed when b ends.
func streamSetup(b *testing.B) (d *kernels.Device, q, out *devtensor.Activations, lengths []int, cs map[int][]*devtensor.KVCache) {
	d = kerneltest.Open(b)
	if !hopper(d) {
		b.Skipf("not run: the streaming kernel needs compute capability 9.0 or later (%s)", d)
	}
	q, out = activations(b, d, 1)
	lengths = []int{512, 4096, 32768}
	if env := os.Getenv("TINYLLM_DECODE_LENGTHS"); env != "" {
		lengths = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("TINYLLM_DECODE_LENGTHS=%q: want positive lengths, comma-separated", env)
			}
			lengths = append(lengths, n)
		}
	}
	cs = map[int][]*devtensor.KVCache{}
	for _, s := range lengths {
		cs[s] = caches(b, d, max(2, min(64, rotateBytes/int(devtensor.KVCacheBytes(h7B, s, d7B)))), s)
	}
	b.Cleanup(func() {
		q.Free()
		out.Free()
		for _, s := range lengths {
			for _, c := range cs[s] {
				c.Free()
			}
		}
	})
	return d, q, out, lengths, cs
}

// BenchmarkW2D6DecodeVariants compares builds of the streaming decode
// kernel (streamVariants: warps a block, tiles in flight, keys a tile,
// lanes a key's score, the chunk, and the steps switched off) at 512, 4k
// and 32k positions, replayed from a graph with programmatic dependent
// launch. TINYLLM_DECODE_VARIANT, when set, keeps the one build whose name
// (the part after S=…/) it is, so that a profiler sees that build alone.
func BenchmarkW2D6DecodeVariants(b *testing.B) {
	d, q, out, lengths, cs := streamSetup(b)
	only := os.Getenv("TINYLLM_DECODE_VARIANT")
	if only != "" && !slices.ContainsFunc(streamVariants, func(v streamVariant) bool { return v.String() == only }) {
		b.Fatalf("TINYLLM_DECODE_VARIANT=%q names no build of streamVariants (a name is what follows S=…/ in the benchmark's)", only)
	}
	for _, v := range streamVariants {
		if only != "" && v.String() != only {
			continue
		}
		// One Attention a build: each compiles its kernels once.
		a, err := NewAttention(d)
		if err != nil {
			b.Fatal(err)
		}
		a.path, a.stream, a.chunk, a.defines, a.perSM, a.mergeApart = pathStream, v.sb, v.chunk, v.defines, v.perSM, v.apart
		for _, s := range lengths {
			if v.chunk > 0 && kernels.Blocks(s, v.chunk) > FusedSplits && v.apart <= 0 {
				continue
			}
			n := len(cs[s])
			b.Run(fmt.Sprintf("S=%d/%s", s, v), func(b *testing.B) {
				per := kerneltest.GraphTime(b, d, n, func(i int) error { return a.Decode(out, q, cs[s][i%n], 0, nil, true) })
				reportDecode(b, per, s)
			})
		}
		a.Close()
	}
}

// streamVariant is a build of attention_decode_stream the benchmarks
// compare: its shape, the chunk (0: Decode's choice) and defines that
// switch its steps off (EARLY 0: no copy before the wait for the launch
// ahead; SPREAD 0: the last block alone merges).
type streamVariant struct {
	sb      streamBuild
	chunk   int
	defines string
	// perSM: the blocks a multiprocessor the chunks are sized for (0: 1);
	// apart: Attention.mergeApart.
	perSM, apart int
}

func (v streamVariant) String() string {
	s := fmt.Sprintf("warps=%d/stages=%d/tile=%d/lanes=%d/chunk=%d", v.sb.warps, v.sb.stages, v.sb.tile, v.sb.lanes, v.chunk)
	if v.perSM > 1 {
		s += fmt.Sprintf("/per-sm=%d", v.perSM)
	}
	if v.apart != 0 {
		s += fmt.Sprintf("/apart=%d", v.apart)
	}
	if v.sb.tc {
		s += "/tc"
	}
	if v.sb.groups > 1 {
		s += fmt.Sprintf("/groups=%d", v.sb.groups)
	}
	if v.defines != "" {
		s += "/" + strings.ReplaceAll(strings.TrimSpace(strings.ReplaceAll(v.defines, "#define ", "")), "\n", ",")
	}
	return strings.ReplaceAll(s, " ", "=")
}

// baselineStream is the streaming kernel as it was measured before the
// copies ahead of the wait and the spread merge (the chapter's first
// table): 8 warps, 4 tiles of 32 keys in flight, 32 lanes a key.
var baselineStream = streamVariant{streamBuild{8, 4, 32, 32, false, 0}, 0, "#define EARLY 0\n#define SPREAD 0\n", 0, 0}

// streamVariants are the builds BenchmarkW2D6DecodeVariants compares (and
// TestW2D6CUDASourcesCompile compiles): the baseline, then each change on
// its own, on the baseline's shape and on Decode's, then two other shapes.
// (8-warp shapes of 2 or 3 stages of 32 keys, which leave room for a
// second block on a multiprocessor, measured slower with chunks sized for
// one block a multiprocessor: the block scheduler then puts two blocks of
// the same launch on some multiprocessors. Sized for two, with the merge
// apart, the 4-warp one is smallStream.)
var streamVariants = []streamVariant{
	baselineStream,
	{streamBuild{8, 4, 32, 32, false, 0}, 0, "#define SPREAD 0\n", 0, 0},
	{streamBuild{8, 4, 32, 32, false, 0}, 0, "", 0, 0},
	{defaultStream, 0, "#define EARLY 0\n#define SPREAD 0\n", 0, 0},
	{defaultStream, 0, "#define SPREAD 0\n", 0, 0},
	{defaultStream, 0, "", 0, 0},
	{streamBuild{8, 2, 64, 32, false, 0}, 0, "", 0, 0},
	{streamBuild{8, 4, 32, 16, false, 0}, 0, "", 0, 0},
	// 16 warps a block: slower than 8 at every length (the chapter)
	{streamBuild{16, 2, 64, 16, false, 0}, 0, "", 0, 0},
	{streamBuild{16, 4, 32, 16, false, 0}, 0, "", 0, 0},
	{streamBuild{16, 2, 64, 32, false, 0}, 0, "", 0, 0},
	// The merge in a launch of its own (attention_decode_merge), and
	// builds whose 64 KB of shared memory leave room for two blocks a
	// multiprocessor, with chunks sized for two
	{defaultStream, 0, "", 0, 1},
	{streamBuild{8, 2, 32, 16, false, 0}, 0, "", 2, 1},
	{streamBuild{8, 2, 32, 16, false, 0}, 0, "", 2, -1},
	{streamBuild{8, 1, 64, 16, false, 0}, 0, "", 2, 1},
	{streamBuild{8, 4, 32, 16, false, 0}, 0, "", 0, 1},
	{streamBuild{4, 2, 32, 16, false, 0}, 0, "", 2, 1},
	// blocks of 4 warps: other tiles, a warp a key, and 3 or 4 blocks a
	// multiprocessor (chunks of 48 or 32 keys)
	{streamBuild{4, 1, 64, 16, false, 0}, 0, "", 2, 1},
	{streamBuild{4, 2, 32, 32, false, 0}, 0, "", 2, 1},
	{streamBuild{4, 2, 32, 16, false, 0}, 48, "#define SMINB 3\n", 0, 1},
	{streamBuild{4, 2, 16, 16, false, 0}, 32, "#define SMINB 4\n", 0, 1},
	// and 4 tiles of 16 keys; chunks sized for one block a multiprocessor
	{streamBuild{4, 4, 16, 16, false, 0}, 0, "", 2, 1},
	{streamBuild{4, 2, 32, 16, false, 0}, 0, "", 0, 1},
	// smallStream waiting for the launch ahead before any copy, and with
	// a third stage it does not use (96 KB: no room for a block of the
	// next launch beside two of this one)
	{smallStream, 0, "#define EARLY 0\n", 2, 1},
	{streamBuild{4, 3, 32, 16, false, 0}, 0, "", 2, 1},
	// room for two blocks of the next launch beside two of this one:
	// 32 KB of tiles and the registers for four blocks (not run yet)
	{streamBuild{4, 2, 16, 16, false, 0}, 0, "#define SMINB 4\n", 2, 1},
	{streamBuild{4, 1, 32, 16, false, 0}, 0, "#define SMINB 4\n", 2, 1},
	// the products on the tensor cores (TCM): smallStream's shape, one
	// tile of 64 keys, 8 warps, 2 warps, tiles of 16 keys, and chunks
	// sized for three blocks a multiprocessor
	{tcStream, 0, "", 2, 1},
	{streamBuild{4, 1, 64, 16, true, 0}, 0, "", 2, 1},
	{streamBuild{8, 2, 32, 16, true, 0}, 0, "", 2, 1},
	{streamBuild{2, 2, 32, 16, true, 0}, 0, "", 2, 1},
	{streamBuild{4, 2, 16, 16, true, 0}, 0, "", 2, 1},
	{tcStream, 0, "", 3, 1},
	// chunks sized for one block a multiprocessor, with 4 tiles in flight
	// or 2
	{streamBuild{4, 4, 32, 16, true, 0}, 0, "", 0, 1},
	{tcStream, 0, "", 0, 1},
	// rows in runs of 2, 4 or a whole tile, a bulk copy each (fewer
	// copies; a whole tile's rows meet bank conflicts)
	{tcStream, 0, "#define TROWS 2\n", 2, 1},
	{tcStream, 0, "#define TROWS 4\n", 2, 1},
	{tcStream, 0, "#define TROWS 32\n", 2, 1},
	// every thread copying 16-byte pieces (cp.async) into the rows apart,
	// instead of 64 bulk copies a tile from warp 0 (the fastest tensor-core
	// build at 8k, slower at 4k; not among the checks' builds). A build
	// requesting a block's second tile only when its first had landed
	// (STAGGER) lost at every length and left the kernel.
	{tcStream, 0, "#define TCOPY 1\n", 2, 1},
	// chunks of 32 keys, one tile each (35 KB of shared memory): about four
	// blocks a multiprocessor at 4k, with room in shared memory for blocks
	// of the next launch beside them (slower)
	{streamBuild{4, 1, 32, 16, true, 0}, 0, "", 4, 1},
	{streamBuild{2, 1, 32, 16, true, 0}, 0, "", 4, 1},
	// groups of warps taking a block's tiles in turn (TG): tcGroups (a
	// chunk's two tiles multiplied at once, by two warps each), the same
	// with 4 warps a group, with chunks sized for three blocks a
	// multiprocessor, and with 4 tiles in flight (chunks for one block a
	// multiprocessor)
	{tcGroups, 0, "", 2, 1},
	{streamBuild{8, 2, 32, 16, true, 2}, 0, "", 2, 1},
	{streamBuild{8, 2, 32, 16, true, 2}, 0, "", 3, 1},
	{streamBuild{8, 4, 32, 16, true, 2}, 0, "", 0, 1},
	// 4 tiles of 16 keys in flight, 4 groups of one warp (each its own
	// tile, no barrier but the warp's) or 2 groups of two; one warp a group
	// also with its registers capped for three blocks a multiprocessor
	{streamBuild{4, 4, 16, 16, true, 4}, 0, "", 2, 1},
	{streamBuild{4, 4, 16, 16, true, 4}, 0, "#define SMINB 3\n", 2, 1},
	{streamBuild{4, 4, 16, 16, true, 2}, 0, "", 2, 1},
	// tcGroups with its registers capped for three blocks a multiprocessor,
	// so that a block of the next launch fits beside two of this one
	{tcGroups, 0, "#define SMINB 3\n", 2, 1},
	// K's fragments by ldmatrix (LDSM): tcStream and tcGroups
	{tcStream, 0, "#define LDSM 1\n", 2, 1},
	{tcGroups, 0, "#define LDSM 1\n", 2, 1},
	// the products in float16 on m16n8k16 (HALF): tcStream, tcGroups, and
	// tcGroups capped for three blocks a multiprocessor
	{tcStream, 0, "#define HALF 1\n", 2, 1},
	{tcGroups, 0, "#define HALF 1\n", 2, 1},
	{tcGroups, 0, "#define HALF 1\n#define SMINB 3\n", 2, 1},
}

// BenchmarkW2D6DecodeAnatomy times defaultStream, merged in its last
// blocks, smallStream and tcStream, merged apart, with parts of them left out
// (ANAT; the output is then wrong), at 512, 4k and 32k positions, from a
// graph with and without programmatic dependent launch: what the merge,
// the arithmetic and the copies each add (and, without the arithmetic,
// what loading q alone costs: "no-math-q-kept"), and what a launch that
// does nothing costs.
func BenchmarkW2D6DecodeAnatomy(b *testing.B) {
	d, q, out, lengths, cs := streamSetup(b)
	// defaultStream with its merge in the last blocks, the build the
	// chapter's anatomy table took apart, and smallStream as Decode takes
	// it above 4k positions to 8k, and tcStream as it takes it from 1k to 4k
	// (both merged apart: "no-merge" launches a merge that returns at
	// once).
	for _, build := range []struct {
		name string
		streamVariant
	}{{"8warps", streamVariant{defaultStream, 0, "", 0, -1}}, {"4warps", streamVariant{smallStream, 0, "", 2, 1}}, {"tc", streamVariant{tcStream, 0, "", 2, 1}},
		{"tcgroups", streamVariant{tcGroups, 0, "", 2, 1}}} {
		for _, v := range []struct {
			name string
			anat int
		}{{"whole", 0}, {"no-merge", 1}, {"no-math", 2}, {"no-math-q-kept", 18}, {"no-copy", 4}, {"no-math-no-copy", 6}, {"counting-only", 7}, {"empty", 8}} {
			a, err := NewAttention(d)
			if err != nil {
				b.Fatal(err)
			}
			a.path, a.defines = pathStream, fmt.Sprintf("#define ANAT %d\n", v.anat)
			a.stream, a.perSM, a.mergeApart = build.sb, build.perSM, build.apart
			for _, s := range lengths {
				n := len(cs[s])
				for _, pdl := range []bool{false, true} {
					mode := "graph"
					if pdl {
						mode = "graph-pdl"
					}
					b.Run(fmt.Sprintf("%s/S=%d/%s/%s", build.name, s, v.name, mode), func(b *testing.B) {
						a.noOverlap = !pdl
						per := kerneltest.GraphTime(b, d, n, func(i int) error { return a.Decode(out, q, cs[s][i%n], 0, nil, true) })
						reportDecode(b, per, s)
					})
				}
			}
			a.Close()
		}
	}
}

// BenchmarkW2D6DecodeSplitVariants compares builds of the two-launch
// path's attention_decode_split: lanes per key and keys loaded per lane
// group before use.
func BenchmarkW2D6DecodeSplitVariants(b *testing.B) {
	d := kerneltest.Open(b)
	if d.Backend() != kernels.CUDA {
		b.Skip("not run: the variants are CUDA builds")
	}
	q, out := activations(b, d, 1)
	defer q.Free()
	defer out.Free()
	for _, s := range []int{4096, 32768} {
		n := max(2, min(64, rotateBytes/int(devtensor.KVCacheBytes(h7B, s, d7B))))
		cs := caches(b, d, n, s)
		for _, v := range []struct{ lanes, unroll, chunk int }{{16, 2, 0}, {16, 2, 128}, {16, 4, 0}, {16, 4, 128}, {32, 4, 0}, {32, 4, 128}, {32, 2, 0}, {32, 8, 0}, {32, 8, 128}} {
			a, err := NewAttention(d)
			if err != nil {
				b.Fatal(err)
			}
			a.defines = fmt.Sprintf("#define LANES %d\n#define UNROLL %d\n", v.lanes, v.unroll)
			a.chunk, a.path = v.chunk, pathSplit
			b.Run(fmt.Sprintf("S=%d/lanes=%d/unroll=%d/chunk=%d", s, v.lanes, v.unroll, v.chunk), func(b *testing.B) {
				per := timeLaunches(b, d, func(i int) error { return a.Decode(out, q, cs[i%n], 0, nil, true) })
				reportDecode(b, per, s)
			})
			a.Close()
		}
		for _, c := range cs {
			c.Free()
		}
	}
}

// BenchmarkW2D6Prefill times a whole prompt's attention, Qwen2-7B's heads
// and Qwen2-0.5B's, with the causal tiles skipped and with the same causal
// mask passed as an explicit mask (every tile computed, the masked scores
// thrown away), for both prefill kernels: attention_prefill (float32) and
// attention_prefill_tc (bf16 tensor cores, where the GPU has them). It
// reports the useful arithmetic rate (4·D per visible query-key pair and
// query head).
func BenchmarkW2D6Prefill(b *testing.B) {
	d := kerneltest.Open(b)
	kinds := []struct {
		name   string
		kernel prefillKernel
	}{{"float32", prefillFloat}, {"tensor-cores", prefillTCOnly}}
	atts := make([]*Attention, len(kinds))
	for i, k := range kinds {
		a, err := NewAttention(d)
		if err != nil {
			b.Fatal(err)
		}
		defer a.Close()
		a.prefill = k.kernel
		atts[i] = a
	}
	for _, sh := range []attnShape{shape7B, shape05B} {
		for _, s := range []int{512, 2048, 4096} {
			q, out := activationsOf(b, d, sh, s)
			cs := cachesOf(b, d, sh, 1, s)
			mask, err := devtensor.NewActivations(d, s, s)
			if err != nil {
				b.Fatal(err)
			}
			if err := mask.Upload(w2d6.CausalBias(s, s)); err != nil {
				b.Fatal(err)
			}
			pairs := float64(s) * float64(s+1) / 2
			for _, skip := range []bool{true, false} {
				mode := "causal-skip"
				if !skip {
					mode = "full-mask"
				}
				for i, k := range kinds {
					name := fmt.Sprintf("%s/L=S=%d/%s/%s", sh.name, s, mode, k.name)
					if k.kernel == prefillTCOnly && !tcPrefillFits(d, sh.d) {
						b.Logf("not run: %s: attention_prefill_tc does not apply on %s (compute capability %q)", name, d, d.Info().ComputeCapability)
						continue
					}
					a := atts[i]
					b.Run(name, func(b *testing.B) {
						per := timeLaunches(b, d, func(int) error {
							if skip {
								return a.Prefill(out, q, cs[0], 0, nil, true)
							}
							return a.Prefill(out, q, cs[0], 0, mask, false)
						})
						b.ReportMetric(float64(per.Nanoseconds())/1e3, "us/gpu")
						b.ReportMetric(4*float64(sh.d*sh.hq)*pairs/per.Seconds()/1e12, "TFLOP/s")
					})
				}
			}
			q.Free()
			out.Free()
			mask.Free()
			cs[0].Free()
		}
	}
}

// BenchmarkW2D6CPU compares the CPU flash attention with Week 1's grouped
// attention (which copies the key/value heads and builds the whole masked
// score matrix) on Qwen2-0.5B's heads, causal and with full masking.
func BenchmarkW2D6CPU(b *testing.B) {
	const hq, h, dim = 14, 2, 64
	for _, l := range []int{512, 2048} {
		rng := rand.New(rand.NewPCG(3, uint64(l)))
		q, k, v := tensor.RandN(rng, 1, hq, l, dim), tensor.RandN(rng, 1, h, l, dim), tensor.RandN(rng, 1, h, l, dim)
		mask := w2d6.CausalBias(l, l)
		b.Run(fmt.Sprintf("L=%d/flash-causal-skip", l), func(b *testing.B) {
			for range b.N {
				FlashAttention(q, k, v, 0, nil, true)
			}
		})
		b.Run(fmt.Sprintf("L=%d/flash-full-mask", l), func(b *testing.B) {
			for range b.N {
				FlashAttention(q, k, v, 0, mask, false)
			}
		})
		b.Run(fmt.Sprintf("L=%d/week1-grouped", l), func(b *testing.B) {
			for range b.N {
				day3.ScaledDotProductAttentionGrouped(q, k, v, 0, mask)
			}
		})
	}
}
