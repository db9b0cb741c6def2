package gpurunner

import (
	"github.com/tinyllm-go/tinyllm/internal/llm"
	"github.com/tinyllm-go/tinyllm/kernels/devsample"
)

// drawRows is how many sequences at once can draw their tokens on the
// device: each keeps its row (settings and random state) from its first
// draw until it finishes, preempted or not.
const drawRows = 4096

// draws holds the device draws of sequences whose own sampler can tell
// its settings (devsample.Settings): the rows of the device sampler and
// which sequence holds which.
type draws struct {
	s    *devsample.Sampler // made on the first such sequence
	row  map[*llm.Sequence]int
	free []int
}

// rowFor returns seq's sampler row, giving it one set from p on its first
// draw, or -1 when every row is held by a sequence that has not finished
// (seq then draws on the CPU, all its life). A new sequence's first draw
// first takes back the rows of the sequences that have finished, so that
// the map keeps no finished sequence (and its tokens) alive for long; the
// common step costs a map lookup.
func (m *Model) rowFor(seq *llm.Sequence, p devsample.Params) (int, error) {
	d := &m.draw
	if r, ok := d.row[seq]; ok {
		return r, nil
	}
	if d.s == nil {
		s, err := devsample.New(m.dev, drawRows)
		if err != nil {
			return -1, err
		}
		d.s, d.row = s, map[*llm.Sequence]int{}
		for r := drawRows - 1; r >= 0; r-- {
			d.free = append(d.free, r)
		}
	}
	for s, r := range d.row {
		if s.Finished() {
			delete(d.row, s)
			d.free = append(d.free, r)
		}
	}
	if len(d.free) == 0 {
		return -1, nil
	}
	r := d.free[len(d.free)-1]
	if err := d.s.Set(r, p); err != nil {
		return -1, err
	}
	d.free = d.free[:len(d.free)-1]
	d.row[seq] = r
	return r, nil
}

// close frees the device sampler.
func (d *draws) close() error {
	if d.s == nil {
		return nil
	}
	err := d.s.Close()
	*d = draws{}
	return err
}
