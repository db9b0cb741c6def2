package day2

// The checks live in internal/grade/w1d2, shared with the other tree.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w1d2"
)

func TestW1D2Task1RoPETraditional(t *testing.T) { w1d2.Traditional(t, NewRoPE) }

func TestW1D2Task2RoPENonTraditional(t *testing.T) { w1d2.NonTraditional(t, NewRoPE) }
