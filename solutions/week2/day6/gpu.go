package day6

// Attention on the GPU: prefill.cu / prefill.metal hold the prefill kernel
// (provided), decode.cu / decode.metal the flash-decoding kernels.

import (
	_ "embed"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"

	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
)

//go:embed prefill.cu
var prefillCUDA string

//go:embed prefill.metal
var prefillMetal string

//go:embed decode.cu
var decodeCUDA string

//go:embed decode.metal
var decodeMetal string

// Source returns a kernel file of this folder for a backend: file is
// "prefill" or "decode"; backend is kernels.CUDA or kernels.Metal. Anything
// else gives "". (Provided.)
func Source(backend, file string) string {
	switch backend + "/" + file {
	case kernels.CUDA + "/prefill":
		return prefillCUDA
	case kernels.Metal + "/prefill":
		return prefillMetal
	case kernels.CUDA + "/decode":
		return decodeCUDA
	case kernels.Metal + "/decode":
		return decodeMetal
	}
	return ""
}

// The limits of the kernels: a head dimension up to MaxHeadDim and up to
// MaxGroup query heads per key/value head, which cover every Qwen2 model
// (D = 64 or 128, at most 8 query heads per group). (Provided.)
const (
	MaxHeadDim = 128
	MaxGroup   = 8
)

// Attention holds the attention kernels for one device, compiled for each
// (group, head dimension) pair on first use: the kernels keep a group's
// queries in registers, so both are compile-time constants. (Provided.)
type Attention struct {
	dev      *kernels.Device
	mu       sync.Mutex
	compiled map[[2]int]*compiled
	// The decode kernel's partial results, grown as needed, and the fused
	// decode kernels' per-(row, head) counts of finished chunks.
	partO, partML, counts *kernels.Buffer
	// path, when not pathAuto, makes Decode launch one kernel path even
	// where a faster one exists (the benchmark's ladder and the check that
	// the paths agree).
	path decodePath
	// chunk, when positive, overrides the chunk size Decode picks, and
	// defines go before the sources (the benchmark's sweeps); stream is the
	// build of attention_decode_stream (zero: defaultStream).
	chunk   int
	defines string
	stream  streamBuild
	// noOverlap keeps attention_decode_stream from overlapping the launch
	// before it in a graph (the benchmark's comparison).
	noOverlap bool
	// perSM, when above 1, sizes attention_decode_stream's chunks for that
	// many blocks a multiprocessor instead of one (the benchmark's builds
	// whose shared memory leaves room for more).
	perSM int
	// mergeApart, when not 0, says whether attention_decode_stream's
	// blocks merge the chunks (-1) or attention_decode_merge does, launched
	// after it (1); 0 is separateMerge.
	mergeApart int
	// trace and traceMerge, when not nil, are passed with traceStep to a
	// TRACE build of the tensor-core stream kernel and to its merge
	// (BenchmarkW2D6DecodeTimeline), which stamp each block's life into
	// them.
	trace, traceMerge *kernels.Buffer
	traceStep         int
	// prefill is the kernel Prefill launches (TINYLLM_PREFILL at
	// NewAttention; the tests and benchmarks set it to compare both).
	prefill prefillKernel
}

// prefillKernel is the kernel Prefill launches.
type prefillKernel int

const (
	prefillAuto   prefillKernel = iota // attention_prefill_tc where it applies if tensorCorePrefill, else attention_prefill
	prefillFloat                       // attention_prefill, float32 on the CUDA cores
	prefillTC                          // attention_prefill_tc where it applies, else attention_prefill
	prefillTCOnly                      // attention_prefill_tc, and an error where it does not apply (the checks)
)

// tensorCorePrefill is whether Prefill picks attention_prefill_tc where it
// applies (CUDA, compute capability 8.0 or later, head dimension 64 or
// 128) when TINYLLM_PREFILL does not say.
const tensorCorePrefill = true

// prefillFromEnv reads TINYLLM_PREFILL: unset or "auto", "float32" (always
// attention_prefill) or "tc" (attention_prefill_tc where it applies).
func prefillFromEnv() (prefillKernel, error) {
	switch v := os.Getenv("TINYLLM_PREFILL"); v {
	case "", "auto":
		return prefillAuto, nil
	case "float32":
		return prefillFloat, nil
	case "tc":
		return prefillTC, nil
	default:
		return 0, fmt.Errorf("TINYLLM_PREFILL=%q: want auto, float32 or tc", v)
	}
}

// decodePath is the kernel path Decode takes.
type decodePath int

const (
	pathAuto   decodePath = iota // the fastest one the source and the GPU have
	pathSplit                    // attention_decode_split + attention_decode_reduce
	pathFused                    // attention_decode_fused
	pathStream                   // attention_decode_stream
)

// streamBuild is a build of attention_decode_stream: warps a block, tiles
// in flight, keys a tile and lanes that score a key (the kernel's SW, SST,
// ST and KL), whether its products run on the tensor cores (TCM; the
// lanes then do not apply, and the merge is attention_decode_merge's),
// and with tc, the groups of warps that take the block's tiles in turn
// (TG; 0 or 1: one group).
type streamBuild struct {
	warps, stages, tile, lanes int
	tc                         bool
	groups                     int
}

// defaultStream is the build Decode uses outside smallFrom … smallTo
// positions (measured on an H200 with BenchmarkW2D6DecodeVariants): 8
// warps, 2 tiles of 64 keys in flight, a half-warp scoring a key.
var defaultStream = streamBuild{warps: 8, stages: 2, tile: 64, lanes: 16}

// smallStream is the build Decode takes for caches of smallFrom to
// smallTo positions, with chunks sized for two blocks a multiprocessor
// and the merge in a launch of its own: blocks of 4 warps whose 64 KB of
// shared memory (2 tiles of 32 keys) leave room for a block of the next
// launch beside them, so that it streams its keys while this one computes
// (BenchmarkW2D6DecodeVariants). On an H200 at Qwen2-7B's heads it took
// 8.39 µs at 4k positions against 9.51 for defaultStream (both merged
// apart), 5.95 against 6.71 at 2k, 12.70 against 13.50 at 8k and 5.53
// against 5.67 at 1k; defaultStream was faster at 512 (4.45 against 4.84)
// and at 16k and 32k (20.97 against 22.77, 36.1 against 40.8).
var smallStream = streamBuild{warps: 4, stages: 2, tile: 32, lanes: 16}

const smallFrom, smallTo = 1024, 8192

// tcStream is smallStream's shape with its products on the tensor cores
// (float32 in two TF32 parts, three products each), the build Decode
// takes for caches of tcFrom to tcTo positions, ahead of smallStream. On
// an H200 at Qwen2-7B's heads it took 4.25 µs at 1k positions against 5.53
// for smallStream, and 7.6–7.8 at 4k against 8.4; at 8k it was slower
// (15.7 against 12.7), its one bulk copy a row of the tiles (their rows
// padded apart, for conflict-free loads) then costing more than its
// arithmetic saves.
var tcStream = streamBuild{warps: 4, stages: 2, tile: 32, lanes: 16, tc: true}

const tcFrom, tcTo = 1024, 4096

// tcGroups is tcStream with its warps in two groups of two, each taking
// every other tile of the block's chunk with a softmax state of its own,
// the two states merged in shared memory at the end: Decode's build from
// tcFrom to tcTo positions where a chunk holds two tiles or more, which
// it then multiplies at once instead of one after the other. On H200s
// at Qwen2-7B's heads it took 7.43 and 7.45 µs at 4k positions against
// 7.86 and 7.85 for tcStream (two runs), and 7.34 against 7.57 in a
// third; at 2k, where a chunk is one tile and one group waits, 6.49
// against 5.65.
var tcGroups = streamBuild{warps: 4, stages: 2, tile: 32, lanes: 16, tc: true, groups: 2}

// streamSource is decode.cu built as sb, for a group and head dimension.
func (a *Attention) streamSource(sb streamBuild, group, headDim int) string {
	return sb.defines(group, headDim) + a.defines + Source(a.dev.Backend(), "decode")
}

// defines are the lines that build decode.cu as sb.
func (sb streamBuild) defines(group, headDim int) string {
	s := fmt.Sprintf("#define GROUP %d\n#define HEAD_DIM %d\n#define SW %d\n#define SST %d\n#define ST %d\n#define KL %d\n",
		group, headDim, sb.warps, sb.stages, sb.tile, sb.lanes)
	if sb.tc {
		s += "#define TCM 1\n"
	}
	if sb.groups > 1 {
		s += fmt.Sprintf("#define TG %d\n", sb.groups)
	}
	return s
}

// buildKernel is c's stream kernel built as sb (smallStream, tcStream or
// tcGroups), compiled on first use.
func (a *Attention) buildKernel(c *compiled, sb streamBuild, group, headDim int) (*kernels.Kernel, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if k := c.builds[sb]; k != nil {
		return k, nil
	}
	mod, err := a.dev.Compile(a.streamSource(sb, group, headDim))
	if err != nil {
		return nil, fmt.Errorf("compiling decode for %s (group %d, head dimension %d, %d warps a block, tensor cores %v): %w",
			a.dev.Backend(), group, headDim, sb.warps, sb.tc, err)
	}
	k, err := mod.Kernel("attention_decode_stream")
	if err != nil {
		mod.Close()
		return nil, err
	}
	if c.builds == nil {
		c.builds = map[streamBuild]*kernels.Kernel{}
	}
	c.builds[sb] = k
	c.mods = append(c.mods, mod)
	return k, nil
}

func (a *Attention) streamBuild() streamBuild {
	if a.stream.warps == 0 {
		return defaultStream
	}
	return a.stream
}

// sharedBytes is the dynamic shared memory of attention_decode_stream: the
// tiles in flight, or after them the warps' sums and the final merge's,
// whichever is larger; with tc, the tiles in flight, their rows padded by 8
// floats.
func (s streamBuild) sharedBytes(group, headDim int) int {
	if s.tc {
		return 4 * s.stages * 2 * s.tile * (headDim + 8)
	}
	floats := max(s.stages*2*s.tile*headDim, s.warps*group*headDim, 6*32*s.warps)
	return 4 * floats
}

type compiled struct {
	mods                   []*kernels.Module
	prefill, split, reduce *kernels.Kernel
	// prefillTC is attention_prefill_tc where the prefill source has it,
	// the GPU is CUDA of compute capability 8.0 or later with room for its
	// shared memory, and the head dimension is 64 or 128; else nil.
	prefillTC *kernels.Kernel
	// fused is attention_decode_fused where the decode source has it (the
	// reference's CUDA file) and the head dimension is a multiple of 32,
	// else nil; stream is attention_decode_stream where, besides, the GPU
	// has compute capability 9.0 or later (the kernel is compiled only
	// there), and merge its merge as a launch of its own.
	fused, stream, merge *kernels.Kernel
	// builds are the stream kernel built as smallStream, tcStream and tcGroups,
	// compiled on first use (Decode takes them for middle lengths).
	builds map[streamBuild]*kernels.Kernel
}

// NewAttention prepares the kernels of dev; nothing is compiled until the
// first launch. (Provided.)
func NewAttention(dev *kernels.Device) (*Attention, error) {
	if dev == nil {
		return nil, fmt.Errorf("NewAttention: no device")
	}
	p, err := prefillFromEnv()
	if err != nil {
		return nil, fmt.Errorf("NewAttention: %w", err)
	}
	return &Attention{dev: dev, compiled: map[[2]int]*compiled{}, prefill: p}, nil
}

// Close unloads the kernels and frees the partial results. (Provided.)
func (a *Attention) Close() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for _, c := range a.compiled {
		for _, m := range c.mods {
			keep(m.Close())
		}
	}
	a.compiled = map[[2]int]*compiled{}
	for _, b := range []*kernels.Buffer{a.partO, a.partML, a.counts} {
		if b != nil {
			keep(b.Free())
		}
	}
	a.partO, a.partML, a.counts = nil, nil, nil
	return first
}

// kernelsFor compiles (once) both files for a group size and head dimension.
func (a *Attention) kernelsFor(group, headDim int) (*compiled, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := [2]int{group, headDim}
	if c, ok := a.compiled[key]; ok {
		return c, nil
	}
	defines := fmt.Sprintf("#define GROUP %d\n#define HEAD_DIM %d\n", group, headDim) + a.defines
	// The build of attention_decode_stream, only for a source that has it
	// (the names would clash with a learner's own otherwise).
	hasStream := strings.Contains(Source(a.dev.Backend(), "decode"), "attention_decode_stream(")
	c := &compiled{}
	for _, file := range []string{"prefill", "decode"} {
		src := defines + Source(a.dev.Backend(), file)
		if file == "decode" && hasStream {
			src = a.streamSource(a.streamBuild(), group, headDim)
		}
		mod, err := a.dev.Compile(src)
		if err != nil {
			for _, m := range c.mods {
				m.Close()
			}
			return nil, fmt.Errorf("compiling %s for %s (group %d, head dim %d): %w", file, a.dev.Backend(), group, headDim, err)
		}
		c.mods = append(c.mods, mod)
	}
	var err error
	if c.prefill, err = c.mods[0].Kernel("attention_prefill"); err == nil {
		if c.split, err = c.mods[1].Kernel("attention_decode_split"); err == nil {
			c.reduce, err = c.mods[1].Kernel("attention_decode_reduce")
		}
	}
	if err == nil && headDim%32 == 0 && strings.Contains(Source(a.dev.Backend(), "decode"), "attention_decode_fused(") {
		c.fused, err = c.mods[1].Kernel("attention_decode_fused")
	}
	if err == nil && headDim%32 == 0 && hopper(a.dev) && hasStream {
		if c.stream, err = c.mods[1].Kernel("attention_decode_stream"); err == nil {
			c.merge, err = c.mods[1].Kernel("attention_decode_merge")
		}
	}
	if err == nil && tcPrefillFits(a.dev, headDim) && strings.Contains(Source(a.dev.Backend(), "prefill"), "attention_prefill_tc(") {
		c.prefillTC, err = c.mods[0].Kernel("attention_prefill_tc")
	}
	if err != nil {
		for _, m := range c.mods {
			m.Close()
		}
		return nil, err
	}
	a.compiled[key] = c
	return c, nil
}

// shapes validates out = attention(q, cache) and returns L (query rows),
// Hq and the group size G. q and out are L x (Hq·D), token-major; the
// query rows are the last L of the cache's Len positions; mask, if not nil,
// is L x Len.
func shapes(out, q *devtensor.Activations, c *devtensor.KVCache, mask *devtensor.Activations) (l, hq, g int, err error) {
	d := c.HeadDim
	switch {
	case d > MaxHeadDim:
		return 0, 0, 0, fmt.Errorf("attention: head dimension %d is over the kernels' %d", d, MaxHeadDim)
	case q.Cols%d != 0 || q.Cols/d%c.Heads != 0:
		return 0, 0, 0, fmt.Errorf("attention: q has %d columns, not a multiple of %d key/value heads x head dimension %d", q.Cols, c.Heads, d)
	case out.Cols != q.Cols:
		return 0, 0, 0, fmt.Errorf("attention: out has %d columns, q %d", out.Cols, q.Cols)
	case q.Rows > c.Len:
		return 0, 0, 0, fmt.Errorf("attention: %d query rows but only %d cached positions (append the new keys first)", q.Rows, c.Len)
	}
	l, hq = q.Rows, q.Cols/d
	if g = hq / c.Heads; g > MaxGroup {
		return 0, 0, 0, fmt.Errorf("attention: %d query heads per key/value head is over the kernels' %d", g, MaxGroup)
	}
	if mask != nil && (mask.Rows != l || mask.Cols != c.Len) {
		return 0, 0, 0, fmt.Errorf("attention: mask is %d x %d, want L x S = %d x %d", mask.Rows, mask.Cols, l, c.Len)
	}
	return l, hq, g, out.SetRows(l)
}

// maskArgs are the kernels' mask and has_mask arguments: without a mask,
// any valid buffer stands in, never read.
func maskArgs(mask *devtensor.Activations, q *devtensor.Activations) (*kernels.Buffer, int32) {
	if mask == nil {
		return q.Buf, 0
	}
	return mask.Buf, 1
}

func flag(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// Prefill computes out = attention(q, cache): the L query rows of q (L x
// Hq·D, token-major, already rotated) are the last L of the cache's Len
// positions, whose keys and values the cache already holds. scale 0 means
// 1/sqrt(D); mask is nil or an additive L x Len matrix; causal hides from
// row i the keys after position Len - L + i, and the kernel skips the key
// tiles a whole query tile cannot see. attention_prefill, float32 on the
// CUDA cores, runs one block of 128 threads per 16 query rows and query
// head. attention_prefill_tc, on the tensor cores with bf16 inputs, runs
// one block of 128 threads per 64 query rows and query head; Prefill
// launches it where it applies (CUDA, compute capability 8.0 or later,
// head dimension 64 or 128) unless TINYLLM_PREFILL=float32 or
// Float32Prefill says otherwise. It queues the kernel and returns.
// (Provided.)
func (a *Attention) Prefill(out, q *devtensor.Activations, c *devtensor.KVCache, scale float32, mask *devtensor.Activations, causal bool) error {
	l, hq, g, err := shapes(out, q, c, mask)
	if err != nil {
		return err
	}
	ks, err := a.kernelsFor(g, c.HeadDim)
	if err != nil {
		return err
	}
	scale = defaultScale(scale, c.HeadDim)
	mb, has := maskArgs(mask, q)
	if a.prefill == prefillTCOnly && ks.prefillTC == nil {
		return fmt.Errorf("Prefill: attention_prefill_tc needs the reference's CUDA source, a GPU of compute capability 8.0 or later and a head dimension of 64 or 128")
	}
	if ks.prefillTC != nil && (a.prefill == prefillTC || a.prefill == prefillTCOnly || a.prefill == prefillAuto && tensorCorePrefill) {
		cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: hq, Y: kernels.Blocks(l, tcPrefillRows), Z: 1}, Block: kernels.D1(128),
			SharedMem: tcPrefillShared(c.HeadDim)}
		return a.dev.Launch(ks.prefillTC, cfg, out.Buf, q.Buf, c.K, c.V, mb, int32(l), int32(c.Len), int32(c.Capacity), scale, flag(causal), has)
	}
	cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: kernels.Blocks(l, 16), Y: hq, Z: 1}, Block: kernels.D1(128)}
	return a.dev.Launch(ks.prefill, cfg, out.Buf, q.Buf, c.K, c.V, mb, int32(l), int32(c.Len), int32(c.Capacity), scale, flag(causal), has)
}

// Float32Prefill holds Prefill to attention_prefill, the float32 kernel,
// whatever the default or TINYLLM_PREFILL says: for callers whose checks
// need float32 arithmetic throughout (W2D7's FloatActivations). (Provided.)
func (a *Attention) Float32Prefill() { a.prefill = prefillFloat }

// tcPrefillRows is the query rows of a block of attention_prefill_tc
// (TC_BQ).
const tcPrefillRows = 64

// tcPrefillShared is attention_prefill_tc's dynamic shared memory (TC_SMEM):
// a tile of 64 keys and one of 64 values staged in float32, and both again
// in bf16.
func tcPrefillShared(headDim int) int { return 64 * headDim * (2*4 + 2*2) }

// tcPrefillFits reports whether attention_prefill_tc applies on d at a
// head dimension: CUDA, compute capability 8.0 or later (bf16 mma.sync,
// cp.async), a head dimension of 64 or 128 and room for its shared memory.
func tcPrefillFits(d *kernels.Device, headDim int) bool {
	inf := d.Info()
	var major int
	_, err := fmt.Sscanf(inf.ComputeCapability, "%d.", &major)
	return inf.Backend == kernels.CUDA && err == nil && major >= 8 && (headDim == 64 || headDim == 128) &&
		tcPrefillShared(headDim) <= inf.MaxSharedMemory
}

// hopper reports a CUDA GPU of compute capability 9.0 or later, which has
// the bulk copies and mbarriers attention_decode_stream uses.
func hopper(d *kernels.Device) bool {
	inf := d.Info()
	var major int
	_, err := fmt.Sscanf(inf.ComputeCapability, "%d.", &major)
	return inf.Backend == kernels.CUDA && err == nil && major >= 9
}

// streamChunk is how many keys one block of attention_decode_stream takes
// for a cache of s positions when blocks blocks share each chunk (key/value
// heads times query rows) on a GPU with sms multiprocessors: about one
// block a multiprocessor, since a block's tiles in flight take most of a
// multiprocessor's shared memory; a multiple of the 32-key tile, and at
// most FusedSplits chunks.
func streamChunk(s, blocks, sms int) int {
	chunks := max(1, sms/max(blocks, 1))
	chunk := max((s+chunks-1)/chunks, (s+FusedSplits-1)/FusedSplits)
	return max(32, (chunk+31)/32*32)
}

// DecodeChunk is how many keys one block of the decode kernel takes for a
// cache of s positions and h key/value heads on a GPU with sms
// multiprocessors: enough chunks that about four blocks run on every
// multiprocessor, but never fewer than 64 keys a chunk, where the merge
// would cost more than the split saves. (Provided.)
func DecodeChunk(s, h, sms int) int {
	chunks := max(1, 4*sms/max(h, 1))
	chunk := (s + chunks - 1) / chunks
	return max(64, (chunk+15)/16*16)
}

// Decode computes the same as Prefill with flash-decoding, for few query
// rows over a long cache: the cache's Len keys are cut into chunks of
// DecodeChunk keys; attention_decode_split runs one block of 128 threads
// per (chunk, key/value head, query row), grid (chunks, H, L), each writing
// the partial output and softmax state of its chunk for the G query heads
// of its key/value head; attention_decode_reduce, grid (Hq, L), merges the
// chunks into out. It queues both kernels and returns. Where the source has
// attention_decode_fused (the reference's CUDA file, head dimensions that
// are multiples of 32, at most FusedSplits chunks), one launch of it, 256
// threads a block on the same grid, does both; where it has
// attention_decode_stream too and the GPU has compute capability 9.0 or
// later, that one computes the chunks' states, with chunks sized for about
// one block a multiprocessor (two, with blocks of 4 warps, from 1,024 to
// 8,192 positions, whose products run on the tensor cores up to 4,096),
// and attention_decode_merge merges them, a launch of its own. (Provided.)
func (a *Attention) Decode(out, q *devtensor.Activations, c *devtensor.KVCache, scale float32, mask *devtensor.Activations, causal bool) error {
	l, hq, g, err := shapes(out, q, c, mask)
	if err != nil {
		return err
	}
	ks, err := a.kernelsFor(g, c.HeadDim)
	if err != nil {
		return err
	}
	scale = defaultScale(scale, c.HeadDim)
	mb, has := maskArgs(mask, q)
	if a.path == pathStream || a.path == pathAuto && ks.stream != nil {
		if ks.stream == nil {
			return fmt.Errorf("Decode: attention_decode_stream needs the reference's CUDA source, a head dimension that is a multiple of 32 and a GPU of compute capability 9.0 or later")
		}
		return a.decodeStream(ks, out, q, c, scale, mb, has, l, hq, g, causal)
	}
	chunk := a.chunk
	if chunk <= 0 {
		chunk = DecodeChunk(c.Len, c.Heads, a.dev.Info().Multiprocessors)
	}
	splits := kernels.Blocks(c.Len, chunk)
	if err := a.partials(l*hq*splits, c.HeadDim); err != nil {
		return err
	}
	cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: splits, Y: c.Heads, Z: l}, Block: kernels.D1(128)}
	if ks.fused != nil && a.path != pathSplit && splits <= FusedSplits {
		if err := a.countsFor(l * c.Heads); err != nil {
			return err
		}
		cfg.Block = kernels.D1(256)
		return a.dev.Launch(ks.fused, cfg, out.Buf, a.partO, a.partML, a.counts, q.Buf, c.K, c.V, mb,
			int32(l), int32(c.Len), int32(c.Capacity), int32(chunk), scale, flag(causal), has)
	}
	if a.path == pathFused {
		return fmt.Errorf("Decode: attention_decode_fused needs the reference's CUDA source, a head dimension that is a multiple of 32 and at most %d chunks", FusedSplits)
	}
	if err := a.dev.Launch(ks.split, cfg, a.partO, a.partML, q.Buf, c.K, c.V, mb,
		int32(l), int32(c.Len), int32(c.Capacity), int32(chunk), scale, flag(causal), has); err != nil {
		return err
	}
	cfg = kernels.LaunchConfig{Grid: kernels.Dim3{X: hq, Y: l, Z: 1}, Block: kernels.D1(128)}
	return a.dev.Launch(ks.reduce, cfg, out.Buf, a.partO, a.partML, int32(splits))
}

// decodeStream launches attention_decode_stream, grid (chunks, H, L), and
// attention_decode_merge after it, grid (Hq, L), unless the merge is left
// to the stream kernel's last blocks (mergeApart -1).
// Captured in a graph, the launch may overlap the one before it: the
// kernel streams the cache's older rows at once and waits for that launch
// before it reads q, the mask and the last L rows, the ones a decode step
// appends just before its attention. Rows before those must have been
// written by an earlier step (or any work that finished before the launch
// ahead of this one).
func (a *Attention) decodeStream(ks *compiled, out, q *devtensor.Activations, c *devtensor.KVCache, scale float32, mb *kernels.Buffer, has int32, l, hq, g int, causal bool) error {
	sb, kernel, perSM, apart := a.streamBuild(), ks.stream, max(1, a.perSM), a.mergeApart > 0 || a.mergeApart == 0 && separateMerge
	auto := a.stream == (streamBuild{}) && a.perSM == 0 && a.mergeApart == 0 && a.chunk <= 0 && c.Len >= smallFrom && c.Len <= smallTo
	if auto {
		perSM, apart = 2, true
	}
	chunk := a.chunk
	if chunk <= 0 {
		chunk = streamChunk(c.Len, c.Heads*l, a.dev.Info().Multiprocessors*perSM)
	}
	if auto {
		sb = smallStream
		if c.Len >= tcFrom && c.Len <= tcTo {
			sb = tcStream
			if chunk >= 2*sb.tile {
				sb = tcGroups
			}
		}
		var err error
		if kernel, err = a.buildKernel(ks, sb, g, c.HeadDim); err != nil {
			return err
		}
	}
	splits := kernels.Blocks(c.Len, chunk)
	if sb.tc && !apart {
		return fmt.Errorf("Decode: the tensor-core build of attention_decode_stream leaves the merge to attention_decode_merge")
	}
	if splits > FusedSplits && !apart {
		return fmt.Errorf("Decode: %d chunks of %d keys; attention_decode_stream merges at most %d", splits, chunk, FusedSplits)
	}
	if err := a.partials(l*hq*splits, c.HeadDim); err != nil {
		return err
	}
	cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: splits, Y: c.Heads, Z: l}, Block: kernels.D1(32 * sb.warps),
		SharedMem: sb.sharedBytes(g, c.HeadDim), Overlap: !a.noOverlap}
	// fresh (the last argument here): the rows the launch ahead may still
	// be writing are the step's own, the last l; the kernel reads the older
	// ones before it waits. mergers follows it.
	args := []any{out.Buf, a.partO, a.partML, a.counts, q.Buf, c.K, c.V, mb,
		int32(l), int32(c.Len), int32(c.Capacity), int32(chunk), scale, flag(causal), has, int32(l)}
	if apart {
		// mergers 0: the blocks write their chunks' states and leave.
		// (counts is not read; any buffer stands in.)
		args[3] = a.partML
		args = append(args, int32(0))
		if a.trace != nil {
			args = append(args, a.trace, int32(a.traceStep))
		}
		if err := a.dev.Launch(kernel, cfg, args...); err != nil {
			return err
		}
		mc := kernels.LaunchConfig{Grid: kernels.Dim3{X: hq, Y: l, Z: 1}, Block: kernels.D1(128), Overlap: !a.noOverlap}
		margs := []any{out.Buf, a.partO, a.partML, int32(splits)}
		if a.trace != nil {
			margs = append(margs, a.traceMerge, int32(a.traceStep))
		}
		return a.dev.Launch(ks.merge, mc, margs...)
	}
	// Two counts a (row, head): the blocks done, and the mergers done.
	if err := a.countsFor(2 * l * c.Heads); err != nil {
		return err
	}
	args[3] = a.counts
	// mergers: the blocks that share the final merge of a (head, row): g
	// where the whole grid fits on the multiprocessors at once (they wait
	// for each other) and there are at least spreadSplits states to merge,
	// else 1.
	mergers := 1
	if splits >= spreadSplits && splits*c.Heads*l <= a.dev.Info().Multiprocessors {
		mergers = g
	}
	return a.dev.Launch(kernel, cfg, append(args, int32(mergers))...)
}

// separateMerge is whether Decode merges attention_decode_stream's chunks
// in attention_decode_merge, a launch of its own, instead of in the
// stream kernel's last blocks. On an H200, in a graph with programmatic
// dependent launch, the 8-warp build took 4.46 µs instead of 5.35 at 512
// positions and 35.7 instead of 36.4 at 32k, and was level at 4k and 8k
// (BenchmarkW2D6Decode's -merged- rows): the blocks leave as soon as
// their states are written, and the next launch's blocks take their
// place and stream while this launch merges.
const separateMerge = true

// spreadSplits is the fewest chunks whose merge attention_decode_stream
// spreads over several blocks: on an H200 the spread merge saved about a
// microsecond at 32 chunks of Qwen2-7B's heads (4k positions) and cost
// 0.7 µs at 16 (512 positions), where one block's merge is short and the
// mergers' wait for each other is not.
const spreadSplits = 32

// FusedSplits is the most chunks attention_decode_fused merges (its
// FUSED_SPLITS); Decode uses the two kernels beyond it. (Provided.)
const FusedSplits = 128

// countsFor makes sure the fused kernel's counts cover n (row, head) pairs;
// they start at zero and the kernel leaves them at zero.
func (a *Attention) countsFor(n int) error {
	if a.counts != nil && a.counts.Size() >= 4*n {
		return nil
	}
	if a.counts != nil {
		a.counts.Free()
		a.counts = nil
	}
	b, err := a.dev.Alloc(4 * n)
	if err != nil {
		return err
	}
	if err := b.Fill(0); err != nil {
		b.Free()
		return err
	}
	a.counts = b
	return nil
}

// partials makes sure the partial buffers hold n states of d outputs.
func (a *Attention) partials(n, d int) error {
	if a.partO != nil && a.partO.Size() >= 4*n*d && a.partML.Size() >= 8*n {
		return nil
	}
	for _, b := range []*kernels.Buffer{a.partO, a.partML} {
		if b != nil {
			b.Free()
		}
	}
	a.partO, a.partML = nil, nil
	var err error
	if a.partO, err = a.dev.Alloc(4 * n * d); err == nil {
		a.partML, err = a.dev.Alloc(8 * n)
	}
	return err
}

func defaultScale(scale float32, d int) float32 {
	if scale == 0 {
		return float32(1 / math.Sqrt(float64(d)))
	}
	return scale
}
