package day6

// The checks live in internal/grade/w2d6, shared with the other tree. The GPU
// checks run where this machine has a GPU and say by name that they did not
// run where it has none.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w2d6"
)

func TestW2D6Task1FlashAttention(t *testing.T) { w2d6.FlashFixtures(t, FlashAttention, BlockK) }

func TestW2D6Task1MatchesWeek1(t *testing.T) { w2d6.MatchesWeek1(t, FlashAttention, BlockK) }

func TestW2D6Task1Misuses(t *testing.T) { w2d6.FlashMisuses(t, FlashAttention) }
