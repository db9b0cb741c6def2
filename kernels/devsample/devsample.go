// Package devsample draws the next token on the GPU with Week 1's sampler:
// temperature, then top-k, then top-p, then one draw from the same random
// stream as Week 1's NewSampler with the same seed. A sampled decode step
// then copies back one token id, as a greedy one does, instead of a row of
// logits that the CPU would sort.
//
// The kernels (sample.cu, sample.metal) keep exactly the tokens the CPU
// sampler keeps; the Week 2 Day 7 chapter explains how they find the K-th
// largest logit and the top-p cutoff without sorting the vocabulary.
package devsample

import (
	_ "embed"
	"errors"
	"fmt"
	"math"

	"github.com/tinyllm-go/tinyllm/kernels"
)

//go:embed sample.cu
var sampleCUDA string

//go:embed sample.metal
var sampleMetal string

// Source returns the kernel source for a backend (kernels.CUDA or
// kernels.Metal), or "".
func Source(backend string) string {
	switch backend {
	case kernels.CUDA:
		return sampleCUDA
	case kernels.Metal:
		return sampleMetal
	}
	return ""
}

// Threads is the block size the kernels are written for (1024; Metal may
// allow fewer, and the kernels work with any power of two from 32 up).
const Threads = 1024

// Params are Week 1's sampler settings: the arguments of its NewSampler.
type Params struct {
	Temperature float64 // 0 is greedy (the argmax)
	TopP        float64 // keep the smallest set of tokens whose probability reaches TopP; 0 or 1 keeps all
	TopK        int     // keep the TopK most likely tokens; 0 keeps all
	Seed        uint64  // the random stream's seed
}

// Check refuses settings the sampler cannot take.
func (p Params) Check() error {
	switch {
	case math.IsNaN(p.Temperature) || math.IsInf(p.Temperature, 0) || p.Temperature < 0:
		return fmt.Errorf("devsample: temperature must be a finite number >= 0, got %v", p.Temperature)
	case math.IsNaN(p.TopP) || p.TopP < 0 || p.TopP > 1:
		return fmt.Errorf("devsample: top-p must be in [0, 1], got %v", p.TopP)
	case p.TopK < 0:
		return fmt.Errorf("devsample: top-k must be >= 0, got %d", p.TopK)
	}
	return nil
}

// Settings is implemented by a CPU sampler that can tell its settings to
// the device: a GPU runner that finds it may draw the sequence's tokens
// with a Sampler row set from them instead, and then never calls the CPU
// sampler for that sequence.
type Settings interface {
	DeviceParams() Params
}

// State is the random state NewSampler(…, seed) starts from: Go's PCG
// seeded with (seed, seed ^ 0x9e3779b97f4a7c15), high word first.
func State(seed uint64) [2]uint64 { return [2]uint64{seed, seed ^ 0x9e3779b97f4a7c15} }

// Sampler holds, on the device, the settings and the random state of up to
// Rows rows, and launches the kernel that draws one token per row. It is
// not safe for concurrent use.
type Sampler struct {
	dev   *kernels.Device
	mod   *kernels.Module
	k     *kernels.Kernel
	rows  int
	prm   *kernels.Buffer // float32 temperature and top-p, per row
	topk  *kernels.Buffer // int32 top-k, per row
	state *kernels.Buffer // two uint64 a row: the PCG state
	noPos *kernels.Buffer // what the kernel's pos points at when there is no position to move
	ident *kernels.Buffer // int32 0, 1, …, rows-1: Launch's logits rows and sampler rows
	pickL *kernels.Buffer // LaunchPicked's logits rows (int32), made on first use
	pickP *kernels.Buffer // and its sampler rows
	block int
}

// New compiles the kernel for dev and allocates the settings of rows rows,
// all greedy until Set.
func New(dev *kernels.Device, rows int) (s *Sampler, err error) {
	if rows <= 0 {
		return nil, fmt.Errorf("devsample: rows must be positive, got %d", rows)
	}
	src := Source(dev.Backend())
	if src == "" {
		return nil, fmt.Errorf("devsample: no kernels for backend %q", dev.Backend())
	}
	s = &Sampler{dev: dev, rows: rows}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
			s = nil
		}
	}()
	if s.mod, err = dev.Compile(src); err != nil {
		return nil, fmt.Errorf("devsample: compiling the sampler: %w", err)
	}
	if s.k, err = s.mod.Kernel("sample_rows"); err != nil {
		return nil, err
	}
	// The reductions need whole warps (simdgroups) and a power of two.
	s.block = Threads
	for s.block > s.k.MaxThreadsPerBlock() {
		s.block /= 2
	}
	if s.block < 32 {
		return nil, fmt.Errorf("devsample: the sampler needs 32 threads a block, the device allows %d", s.k.MaxThreadsPerBlock())
	}
	if s.prm, err = dev.Alloc(8 * rows); err != nil {
		return nil, err
	}
	if s.topk, err = dev.Alloc(4 * rows); err != nil {
		return nil, err
	}
	if s.state, err = dev.Alloc(16 * rows); err != nil {
		return nil, err
	}
	if s.noPos, err = dev.Alloc(4); err != nil {
		return nil, err
	}
	ident := make([]int32, rows)
	for i := range ident {
		ident[i] = int32(i)
	}
	if s.ident, err = kernels.Upload(dev, ident); err != nil {
		return nil, err
	}
	for _, b := range []*kernels.Buffer{s.prm, s.topk, s.state, s.noPos} {
		if err = b.Fill(0); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Rows is the number of rows the sampler holds settings for.
func (s *Sampler) Rows() int { return s.rows }

// Set gives row its settings and restarts its random stream from p.Seed.
func (s *Sampler) Set(row int, p Params) error {
	if row < 0 || row >= s.rows {
		return fmt.Errorf("devsample: row %d outside 0..%d", row, s.rows-1)
	}
	if err := p.Check(); err != nil {
		return err
	}
	if err := kernels.Write(s.prm, 2*row, []float32{float32(p.Temperature), float32(p.TopP)}); err != nil {
		return err
	}
	if err := kernels.Write(s.topk, row, []int32{int32(min(p.TopK, math.MaxInt32))}); err != nil {
		return err
	}
	st := State(p.Seed)
	return kernels.Write(s.state, 2*row, st[:])
}

// Launch queues one draw for each of rows rows of logits (n float32 values
// a row, rows one after another) with sampler rows 0 … rows-1: tokens[r]
// gets row r's token. If pos is not nil, pos[0] (an int32) moves on by
// advance, as the greedy kernels move the position. Nothing waits for the
// device, so a captured step may include the launch; the settings and the
// random state live on the device, and a replay draws afresh.
func (s *Sampler) Launch(tokens, pos *kernels.Buffer, advance int, logits *kernels.Buffer, rows, n int) error {
	if rows <= 0 || rows > s.rows {
		return fmt.Errorf("devsample: %d rows, the sampler holds %d", rows, s.rows)
	}
	if n <= 0 || logits.Size() < 4*rows*n || tokens.Size() < 4*rows {
		return fmt.Errorf("devsample: %d rows of %d logits do not fit the buffers (%d and %d bytes)", rows, n, logits.Size(), tokens.Size())
	}
	if pos == nil {
		pos, advance = s.noPos, 0
	}
	return s.dev.Launch(s.k, kernels.LaunchConfig{Grid: kernels.D1(rows), Block: kernels.D1(s.block)},
		tokens, pos, int32(advance), logits, int32(n), s.ident, s.ident, s.prm, s.topk, s.state)
}

// LaunchPicked queues draws for some rows of logits (n float32 values a
// row): draw b reads logits row lrow[b] with sampler row prow[b] and writes
// its token to tokens[lrow[b]]. A batch of sequences, each with its own
// settings and random stream, is drawn this way in one launch. The indices
// are checked against the buffers and copied to the device first (which
// waits for the work queued before).
func (s *Sampler) LaunchPicked(tokens, logits *kernels.Buffer, n int, lrow, prow []int) error {
	count := len(lrow)
	if count == 0 || count != len(prow) || count > s.rows || n <= 0 {
		return fmt.Errorf("devsample: %d logits rows and %d sampler rows to draw from (at most %d), rows of %d", count, len(prow), s.rows, n)
	}
	ls, ps := make([]int32, count), make([]int32, count)
	for b := range count {
		l, p := lrow[b], prow[b]
		if l < 0 || 4*(l+1)*n > logits.Size() || 4*(l+1) > tokens.Size() {
			return fmt.Errorf("devsample: logits row %d is outside the buffers (%d and %d bytes, rows of %d)", l, logits.Size(), tokens.Size(), n)
		}
		if p < 0 || p >= s.rows {
			return fmt.Errorf("devsample: sampler row %d outside 0..%d", p, s.rows-1)
		}
		ls[b], ps[b] = int32(l), int32(p)
	}
	if s.pickL == nil {
		var err error
		if s.pickL, err = s.dev.Alloc(4 * s.rows); err != nil {
			return err
		}
		if s.pickP, err = s.dev.Alloc(4 * s.rows); err != nil {
			return err
		}
	}
	if err := kernels.Write(s.pickL, 0, ls); err != nil {
		return err
	}
	if err := kernels.Write(s.pickP, 0, ps); err != nil {
		return err
	}
	return s.dev.Launch(s.k, kernels.LaunchConfig{Grid: kernels.D1(count), Block: kernels.D1(s.block)},
		tokens, s.noPos, int32(0), logits, int32(n), s.pickL, s.pickP, s.prm, s.topk, s.state)
}

// Close frees the sampler's buffers and kernels.
func (s *Sampler) Close() error {
	var errs []error
	for _, b := range []*kernels.Buffer{s.prm, s.topk, s.state, s.noPos, s.ident, s.pickL, s.pickP} {
		if b != nil {
			errs = append(errs, b.Free())
		}
	}
	if s.mod != nil {
		errs = append(errs, s.mod.Close())
	}
	*s = Sampler{}
	return errors.Join(errs...)
}
