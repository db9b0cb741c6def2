package day7

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// The reference's partial ranking and its use in Candidates, against the
// plain version the chapter describes: a stable sort of every id.

func stableOrder(row []float32) []int {
	order := make([]int, len(row))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return row[order[a]] > row[order[b]] })
	return order
}

func randomRow(rng *rand.Rand, n int, ties bool) []float32 {
	row := make([]float32, n)
	for i := range row {
		v := rng.NormFloat64() * 2
		if ties {
			v = math.Round(v*2) / 2
		}
		row[i] = float32(v)
	}
	return row
}

func TestRankedIsStableSortPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 7, 1000, 20000} {
		for _, ties := range []bool{false, true} {
			row := randomRow(rng, n, ties)
			want := stableOrder(row)
			for _, m := range []int{1, 2, 5, 64, n / 4, n/4 + 1, n} {
				if m < 1 || m > n {
					continue
				}
				if got := ranked(row, m); !slices.Equal(got, want[:m]) {
					t.Fatalf("n %d, ties %v: ranked(row, %d) = %v…, a stable sort's first %d = %v…", n, ties, m, got[:min(m, 8)], m, want[:min(m, 8)])
				}
			}
		}
	}
}

// plainCandidates is Candidates as the chapter describes it: sort all,
// cut, renormalise.
func plainCandidates(row []float32, temp, topP float64, topK int) ([]int, []float64) {
	order := stableOrder(row)
	if topK > 0 && topK < len(order) {
		order = order[:topK]
	}
	p := make([]float64, len(order))
	maxv := float64(row[order[0]]) / temp
	total := 0.0
	for i, id := range order {
		p[i] = math.Exp(float64(row[id])/temp - maxv)
		total += p[i]
	}
	for i := range p {
		p[i] /= total
	}
	if topP > 0 && topP < 1 {
		cum, n := 0.0, 0
		for n < len(p) {
			cum += p[n]
			n++
			if cum >= topP {
				break
			}
		}
		order, p = order[:n], p[:n]
	}
	total = 0
	for _, v := range p {
		total += v
	}
	idx := make([]int, len(order))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return order[idx[a]] < order[idx[b]] })
	ids, probs := make([]int, len(idx)), make([]float64, len(idx))
	for j, i := range idx {
		ids[j], probs[j] = order[i], p[i]/total
	}
	return ids, probs
}

func TestCandidatesMatchPlainSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 60 {
		n := []int{3, 50, 5000, 40000}[trial%4]
		row := randomRow(rng, n, trial%3 == 0)
		temp := []float64{0.5, 1, 1.7}[trial%3]
		topP := []float64{1, 0.3, 0.9, 0.999, 0}[trial%5]
		topK := []int{0, 1, 20, 300, 1 << 20}[(trial/5)%5]
		ids, probs := NewSampler(temp, topP, topK, 1).Candidates(tensor.New(row, 1, n))
		wantIDs, wantProbs := plainCandidates(row, temp, topP, topK)
		if !slices.Equal(ids, wantIDs) {
			t.Fatalf("n %d, T %g, top-p %g, top-k %d: %d candidates %v…, the plain sort keeps %d %v…", n, temp, topP, topK, len(ids), ids[:min(len(ids), 8)], len(wantIDs), wantIDs[:min(len(wantIDs), 8)])
		}
		for i := range probs {
			if d := math.Abs(float64(probs[i]) - wantProbs[i]); d > 1e-6 {
				t.Fatalf("n %d, T %g, top-p %g, top-k %d: token %d has probability %g, the plain sort %g", n, temp, topP, topK, ids[i], probs[i], wantProbs[i])
			}
		}
	}
}
