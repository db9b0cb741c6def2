package day2

// The checks live in internal/grade/w2d2, shared with the other tree.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/grade/w2d2"
)

func forwardCost(cfg checkpoint.Config, weightBytes, cacheBytes, newTokens, offset int) (w2d2.Cost, error) {
	c, err := ForwardCost(cfg, weightBytes, cacheBytes, newTokens, offset)
	return w2d2.Cost(c), err
}

func TestW2D2Task1FLOPs(t *testing.T) { w2d2.FLOPs(t, forwardCost) }

func TestW2D2Task1RefusesBadInput(t *testing.T) { w2d2.RefusesBadInput(t, forwardCost) }

func TestW2D2Task2Bytes(t *testing.T) { w2d2.Bytes(t, forwardCost) }
