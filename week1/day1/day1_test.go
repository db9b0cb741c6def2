package day1

// The checks themselves live in internal/grade/w1d1 and are shared with
// solutions/week1/day1; this file only hands them this folder's functions.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w1d1"
)

func TestW1D1Task1Softmax(t *testing.T) { w1d1.Softmax(t, Softmax) }

func TestW1D1Task2Linear(t *testing.T) { w1d1.Linear(t, Linear) }

func TestW1D1Task3ScaledDotProductAttention(t *testing.T) {
	w1d1.ScaledDotProductAttention(t, ScaledDotProductAttentionSimple)
}

func TestW1D1Task4MultiHeadAttention(t *testing.T) {
	w1d1.MultiHeadAttention(t, NewMultiHeadAttention)
}
