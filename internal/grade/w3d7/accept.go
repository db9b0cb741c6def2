package w3d7

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade"
	"github.com/tinyllm-go/tinyllm/internal/grade/w2d1"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// AcceptFunc is the day's AcceptGreedy.
type AcceptFunc func(logits *tensor.Tensor, draft []int) (accepted, next int)

// argmax is the grader's own greedy choice (W2D1's grader's): the first
// largest entry.
func argmax(row []float32) int { return w2d1.Greedy{}.Sample(tensor.New(row, len(row))) }

// Accept checks Task 2 on random logits whose proposals are built to agree
// with the target for exactly a tokens, for every a from 0 to k: the answer
// must be a and row a's argmax. A proposal that agrees again after the
// first disagreement must not count, a tie goes to the lower id, and both
// (k+1) x vocab and 1 x (k+1) x vocab logits are accepted.
func Accept(t *testing.T, accept AcceptFunc) {
	const task = "W3D7 Task 2 AcceptGreedy"
	grade.PointToChapter(t, task)
	rng := rand.New(rand.NewPCG(5, 3107))
	const vocab = 50
	for k := 0; k <= 6; k++ {
		for a := 0; a <= k; a++ {
			name := fmt.Sprintf("k%d_agree%d", k, a)
			stubbed := false
			t.Run(name, func(t *testing.T) {
				logits := tensor.RandN(rng, k+1, vocab)
				data := logits.Data()
				best := make([]int, k+1)
				for i := range best {
					best[i] = argmax(data[i*vocab : (i+1)*vocab])
				}
				draft := make([]int, k)
				for i := range draft {
					switch {
					case i < a:
						draft[i] = best[i]
					case i == a:
						draft[i] = (best[i] + 1 + rng.IntN(vocab-1)) % vocab // anything else
					default:
						draft[i] = best[i] // agrees again, too late to count
					}
				}
				if a < k && (a+1)%2 == 0 {
					// A tie at row a: the draft names the later of two
					// equal maxima, which greedy decoding never picks.
					row := data[a*vocab : (a+1)*vocab]
					hi := max(best[a], draft[a])
					lo := min(best[a], draft[a])
					row[lo] = row[best[a]]
					row[hi] = row[lo]
					draft[a] = hi
					best[a] = lo
				}
				shape := []int{k + 1, vocab}
				if k%2 == 1 {
					shape = []int{1, k + 1, vocab}
				}
				in := tensor.New(data, shape...)
				what := fmt.Sprintf("%s, case %s (logits %v, row argmaxes %v, draft %v)", task, name, shape, best, draft)
				stubbed = grade.Run(t, what, func() {
					gotA, gotNext := accept(in, draft)
					if gotA != a || gotNext != best[a] {
						t.Fatalf("%s: AcceptGreedy = (%d, %d), want (%d, %d): the first %d proposals agree with the rows' argmaxes, and the token after them is row %d's argmax",
							what, gotA, gotNext, a, best[a], a, a)
					}
				})
			})
			if stubbed {
				return
			}
		}
	}
}
