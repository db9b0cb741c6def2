package day4

// Paged attention on the GPU: paged.cu / paged.metal hold the kernel; this
// file checks and uploads a batch's metadata and launches it.

import (
	_ "embed"
	"fmt"
	"math"
	"sync"

	"github.com/tinyllm-go/tinyllm/kernels"
)

//go:embed paged.cu
var pagedCUDA string

//go:embed paged.metal
var pagedMetal string

// Source returns the paged attention kernel source for a backend
// (kernels.CUDA or kernels.Metal), or "" for any other. (Provided.)
func Source(backend string) string {
	switch backend {
	case kernels.CUDA:
		return pagedCUDA
	case kernels.Metal:
		return pagedMetal
	}
	return ""
}

// The limits of the kernel: a head dimension up to MaxHeadDim and up to
// MaxGroup query heads per key/value head (every Qwen2 model). (Provided.)
const (
	MaxHeadDim = 128
	MaxGroup   = 8
)

// DeviceMeta is a paged attention call's metadata on the device, checked
// by CheckPaged and laid out for the kernel: the block tables as one
// int32 matrix NumSeqs x Width padded with PadPage, each sequence's
// (context, query rows, first query row), and each query row's sequence.
type DeviceMeta struct {
	Shape             PageShape
	NumSeqs, Width, T int
	Tables, Info, Row *kernels.Buffer
}

// PadTables lays the sequences' block tables out as one NumSeqs x width
// int32 matrix, width the longest table, with PadPage after each shorter
// table: the form the kernel reads. (Provided.)
func PadTables(seqs []PagedSeq) (tables []int32, width int) {
	for _, s := range seqs {
		width = max(width, len(s.BlockTable))
	}
	tables = make([]int32, len(seqs)*width)
	for i, s := range seqs {
		row := tables[i*width : (i+1)*width]
		for j := range row {
			row[j] = PadPage
			if j < len(s.BlockTable) {
				row[j] = int32(s.BlockTable[j])
			}
		}
	}
	return tables, width
}

// UploadMeta checks seqs with CheckPaged (before touching dev: bad metadata
// never reaches the device) and uploads the kernel's view of them.
func UploadMeta(dev *kernels.Device, shape PageShape, seqs []PagedSeq, refs RefCounter) (*DeviceMeta, error) {
	if err := CheckPaged(shape, seqs, refs); err != nil {
		return nil, err
	}
	if dev == nil {
		return nil, fmt.Errorf("paged attention: no device")
	}
	tables, width := PadTables(seqs)
	info := make([]int32, 0, 3*len(seqs))
	var rows []int32
	for i, s := range seqs {
		info = append(info, int32(s.Context), int32(s.Len), int32(len(rows)))
		for range s.Len {
			rows = append(rows, int32(i))
		}
	}
	m := &DeviceMeta{Shape: shape, NumSeqs: len(seqs), Width: width, T: len(rows)}
	var err error
	if m.Tables, err = kernels.Upload(dev, tables); err == nil {
		if m.Info, err = kernels.Upload(dev, info); err == nil {
			m.Row, err = kernels.Upload(dev, rows)
		}
	}
	if err != nil {
		m.Free()
		return nil, fmt.Errorf("paged attention: uploading the metadata: %w", err)
	}
	return m, nil
}

// Free releases the metadata's buffers.
func (m *DeviceMeta) Free() error {
	var first error
	for _, b := range []*kernels.Buffer{m.Tables, m.Info, m.Row} {
		if b != nil {
			if err := b.Free(); err != nil && first == nil {
				first = err
			}
		}
	}
	m.Tables, m.Info, m.Row = nil, nil, nil
	return first
}

// PagedKernels holds the paged attention kernel for one device, compiled
// for each (group, head dimension) pair on first use: the kernel keeps a
// group's queries in registers, so both are compile-time constants.
// (Provided.)
type PagedKernels struct {
	dev      *kernels.Device
	mu       sync.Mutex
	compiled map[[2]int]*pagedModule
}

type pagedModule struct {
	mod    *kernels.Module
	kernel *kernels.Kernel
}

// NewPagedKernels prepares the kernel for dev; nothing is compiled until
// the first launch. (Provided.)
func NewPagedKernels(dev *kernels.Device) (*PagedKernels, error) {
	if dev == nil {
		return nil, fmt.Errorf("NewPagedKernels: no device")
	}
	return &PagedKernels{dev: dev, compiled: map[[2]int]*pagedModule{}}, nil
}

// Close unloads the compiled kernels. (Provided.)
func (a *PagedKernels) Close() error {
	var first error
	for _, c := range a.compiled {
		if err := c.mod.Close(); err != nil && first == nil {
			first = err
		}
	}
	a.compiled = map[[2]int]*pagedModule{}
	return first
}

func (a *PagedKernels) kernelFor(group, headDim int) (*kernels.Kernel, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := [2]int{group, headDim}
	if c, ok := a.compiled[key]; ok {
		return c.kernel, nil
	}
	defines := fmt.Sprintf("#define GROUP %d\n#define HEAD_DIM %d\n", group, headDim)
	mod, err := a.dev.Compile(defines + Source(a.dev.Backend()))
	if err != nil {
		return nil, fmt.Errorf("compiling paged attention for %s (group %d, head dim %d): %w", a.dev.Backend(), group, headDim, err)
	}
	k, err := mod.Kernel("paged_attention")
	if err != nil {
		mod.Close()
		return nil, err
	}
	a.compiled[key] = &pagedModule{mod: mod, kernel: k}
	return k, nil
}

// Attention computes out = paged attention of q over one layer's pages on
// the device: q and out are T x hq x D float32 (token-major, q already
// rotated), k and v the layer's pages in meta.Shape's layout, meta the
// call's uploaded metadata. scale 0 means 1/sqrt(D). It checks every size
// before it launches (a buffer too small for its shape is an error, never
// a read past its end), queues the kernel and returns.
func (a *PagedKernels) Attention(out, q, k, v *kernels.Buffer, hq int, meta *DeviceMeta, scale float32) error {
	if meta == nil || meta.Tables == nil {
		return fmt.Errorf("paged attention: no metadata (UploadMeta)")
	}
	sh := meta.Shape
	d := sh.HeadDim
	switch {
	case d > MaxHeadDim:
		return fmt.Errorf("paged attention: head dimension %d is over the kernel's %d", d, MaxHeadDim)
	case hq <= 0 || hq%sh.KVHeads != 0:
		return fmt.Errorf("paged attention: %d query heads is not a positive multiple of %d key/value heads", hq, sh.KVHeads)
	case hq/sh.KVHeads > MaxGroup:
		return fmt.Errorf("paged attention: %d query heads per key/value head is over the kernel's %d", hq/sh.KVHeads, MaxGroup)
	case out == nil || q == nil || k == nil || v == nil:
		return fmt.Errorf("paged attention: a nil buffer")
	case q.Size() < 4*meta.T*hq*d || out.Size() < 4*meta.T*hq*d:
		return fmt.Errorf("paged attention: q (%d bytes) and out (%d bytes) must hold %d rows x %d heads x %d float32",
			q.Size(), out.Size(), meta.T, hq, d)
	case k.Size() < 4*sh.LayerFloats() || v.Size() < 4*sh.LayerFloats():
		return fmt.Errorf("paged attention: the pages (%d and %d bytes) must hold %d pages x %d x %d x %d float32",
			k.Size(), v.Size(), sh.NumPages, sh.PageSize, sh.KVHeads, d)
	}
	kern, err := a.kernelFor(hq/sh.KVHeads, d)
	if err != nil {
		return err
	}
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(d)))
	}
	cfg := kernels.LaunchConfig{Grid: kernels.Dim3{X: meta.T, Y: sh.KVHeads, Z: 1}, Block: kernels.D1(128)}
	return a.dev.Launch(kern, cfg, out, q, k, v, meta.Tables, meta.Info, meta.Row, int32(meta.Width), int32(sh.PageSize), scale)
}
