package day7

import (
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devsample"
)

// SetSampling makes Prefill and Decode draw the next token on the device
// with Week 1's sampler (temperature, top-k, top-p, and the random stream
// of NewSampler with p.Seed) instead of taking the argmax; nil returns to
// greedy decoding. Each call restarts the random stream. A decode step
// still copies back one token id, not the logits. Switching between greedy
// and sampling drops the captured step, which the next Decode captures
// again with the other last kernel. (Provided.)
func (m *GPUModel) SetSampling(p *devsample.Params) error {
	if p == nil {
		var err error
		if m.sampling {
			err = m.dropGraph()
		}
		m.sampling = false
		return err
	}
	if err := p.Check(); err != nil {
		return err
	}
	if m.sampler == nil {
		s, err := devsample.New(m.dev, 1)
		if err != nil {
			return err
		}
		m.sampler = s
	}
	if err := m.sampler.Set(0, *p); err != nil {
		return err
	}
	var err error
	if !m.sampling {
		err = m.dropGraph()
	}
	m.sampling = true
	return err
}

// dropGraph frees the captured step, so that the next Decode captures the
// step anew.
func (m *GPUModel) dropGraph() error {
	if m.graph == nil {
		return nil
	}
	err := m.graph.Free()
	m.graph = nil
	return err
}

// choose ends a pass that computed the logits of its last row: the greedy
// argmax (argmax_advance), or after SetSampling a draw with Week 1's
// sampler, either writing the token to tokens[0] and moving pos[0] on by
// rows. (Provided.)
func (m *GPUModel) choose(rows int) error {
	if m.sampling {
		return m.sampler.Launch(m.tokens, m.pos, rows, m.logits.Buf, 1, m.cfg.VocabSize)
	}
	block := 1024
	for block > m.k["argmax_advance"].MaxThreadsPerBlock() {
		block /= 2 // the reduction halves a power of two
	}
	return m.dev.Launch(m.k["argmax_advance"], kernels.LaunchConfig{Grid: kernels.D1(1), Block: kernels.D1(block)},
		m.tokens, m.pos, m.logits.Buf, int32(m.cfg.VocabSize), int32(rows))
}
