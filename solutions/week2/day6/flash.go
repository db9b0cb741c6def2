// Package day6 is the reference solution of Week 2 Day 6: flash attention,
// on the CPU (tiles, the online softmax, causal tiles skipped, GQA without
// copying keys) and on the GPU (a prefill kernel over query tiles and a
// flash-decoding kernel that splits the keys across blocks and reduces).
package day6

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// Tile sizes of the CPU flash attention: BlockQ query rows meet BlockK keys
// at a time, so the scores held at once are BlockQ x BlockK per worker
// instead of L x S per head. (Provided.)
const (
	BlockQ = 32
	BlockK = 64
)

// FlashAttention is grouped-query attention computed tile by tile with the
// online softmax, never holding a whole row of scores. q is B x Hq x L x D,
// k and v are B x H x S x D with Hq a multiple of H; query head j reads
// key/value head j / (Hq/H), in place (keys are never copied per query
// head). scale 0 means 1/sqrt(D). mask is nil or an additive L x S mask.
// causal hides key j from query row i when j > i + S - L (the bottom-right
// alignment of a KV cache: the L queries are the last L of S positions), and
// key tiles that a whole query tile cannot see are skipped. The result is
// B x Hq x L x D. Shapes that do not fit panic with a message naming them.
func FlashAttention(q, k, v *tensor.Tensor, scale float32, mask *tensor.Tensor, causal bool) *tensor.Tensor {
	b, hq, l, d, h, s := checkShapes(q, k, v, mask)
	if scale == 0 {
		scale = float32(1 / math.Sqrt(float64(d)))
	}
	g := hq / h
	qd, kd, vd := q.Data(), k.Data(), v.Data()
	var md []float32
	if mask != nil {
		md = mask.Data()
	}
	out := make([]float32, b*hq*l*d)
	// One job is one query tile of one key/value head: its G query heads
	// walk the same key tiles, so each tile of keys is read once for G.
	type job struct{ bi, hi, i0 int }
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), b*h*((l+BlockQ-1)/BlockQ)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := newTile(d)
			for j := range jobs {
				kv := (j.bi*h + j.hi) * s * d
				for gi := range g {
					head := (j.bi*hq + j.hi*g + gi) * l * d
					t.run(out[head:head+l*d], qd[head:head+l*d], kd[kv:kv+s*d], vd[kv:kv+s*d], md, j.i0, l, s, d, scale, causal)
				}
			}
		}()
	}
	for bi := range b {
		for hi := range h {
			for i0 := 0; i0 < l; i0 += BlockQ {
				jobs <- job{bi, hi, i0}
			}
		}
	}
	close(jobs)
	wg.Wait()
	return tensor.New(out, b, hq, l, d)
}

// checkShapes validates FlashAttention's operands and returns B, Hq, L, D,
// H and S.
func checkShapes(q, k, v, mask *tensor.Tensor) (b, hq, l, d, h, s int) {
	if q.NDim() != 4 || k.NDim() != 4 || v.NDim() != 4 {
		panic(fmt.Sprintf("day6.FlashAttention: q %v, k %v and v %v must all be 4-D (B x heads x length x D)", q.Shape(), k.Shape(), v.Shape()))
	}
	b, hq, l, d = q.Dim(0), q.Dim(1), q.Dim(2), q.Dim(3)
	h, s = k.Dim(1), k.Dim(2)
	if k.Dim(0) != b || k.Dim(3) != d || v.Dim(0) != b || v.Dim(1) != h || v.Dim(2) != s || v.Dim(3) != d {
		panic(fmt.Sprintf("day6.FlashAttention: q %v, k %v and v %v do not fit (k and v must be B x H x S x D with q's B and D)", q.Shape(), k.Shape(), v.Shape()))
	}
	if h == 0 || hq%h != 0 {
		panic(fmt.Sprintf("day6.FlashAttention: %d query heads are not a multiple of %d key/value heads", hq, h))
	}
	if mask != nil && (mask.NDim() != 2 || mask.Dim(0) != l || mask.Dim(1) != s) {
		panic(fmt.Sprintf("day6.FlashAttention: mask %v must be L x S = [%d %d]", mask.Shape(), l, s))
	}
	return b, hq, l, d, h, s
}

// tile is one worker's scratch: the running maximum m, sum l and output
// accumulator of every row of a query tile, and one tile of scores.
type tile struct {
	m, sum []float64
	acc    []float32
	p      []float32
}

func newTile(d int) *tile {
	return &tile{m: make([]float64, BlockQ), sum: make([]float64, BlockQ), acc: make([]float32, BlockQ*d), p: make([]float32, BlockK)}
}

// run computes rows i0 … i0+BlockQ-1 of one head: out, q are that head's
// L x D rows, k and v its key/value head's S x D rows.
func (t *tile) run(out, q, k, v, mask []float32, i0, l, s, d int, scale float32, causal bool) {
	rows := min(BlockQ, l-i0)
	for r := range rows {
		t.m[r], t.sum[r] = math.Inf(-1), 0
	}
	clear(t.acc[:rows*d])
	// The last key any row of the tile may see: tiles past it are skipped.
	end := s
	if causal {
		end = min(s, i0+rows-1+s-l+1)
	}
	for j0 := 0; j0 < end; j0 += BlockK {
		cols := min(BlockK, end-j0)
		for r := range rows {
			i := i0 + r
			last := cols // keys j0 … j0+last-1 are visible to row i
			if causal {
				last = min(cols, i+s-l+1-j0)
			}
			if last <= 0 {
				continue
			}
			qr := q[i*d : (i+1)*d]
			p := t.p[:last]
			top := math.Inf(-1)
			for c := range p {
				kr := k[(j0+c)*d : (j0+c+1)*d]
				var dot float32
				for e, x := range qr {
					dot += x * kr[e]
				}
				dot *= scale
				if mask != nil {
					dot += mask[i*s+j0+c]
				}
				p[c] = dot
				top = max(top, float64(dot))
			}
			m := max(t.m[r], top)
			if math.IsInf(m, -1) {
				continue // every key so far is masked out: nothing to add
			}
			// The running maximum moved from t.m[r] to m: what was summed
			// so far was scaled by exp(-t.m[r]) and must be by exp(-m).
			corr := math.Exp(t.m[r] - m)
			sum := t.sum[r] * corr
			acc := t.acc[r*d : (r+1)*d]
			if corr != 1 {
				for e := range acc {
					acc[e] *= float32(corr)
				}
			}
			for c, x := range p {
				w := math.Exp(float64(x) - m)
				sum += w
				if w == 0 {
					continue
				}
				vr := v[(j0+c)*d : (j0+c+1)*d]
				wf := float32(w)
				for e := range acc {
					acc[e] += wf * vr[e]
				}
			}
			t.m[r], t.sum[r] = m, sum
		}
	}
	for r := range rows {
		inv := float32(1 / t.sum[r])
		o := out[(i0+r)*d : (i0+r+1)*d]
		for e, a := range t.acc[r*d : (r+1)*d] {
			o[e] = a * inv
		}
	}
}
