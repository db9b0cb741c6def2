package day6

// The checks live in internal/grade/w3d6, shared with the other tree.

import (
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w3d3"
	"github.com/tinyllm-go/tinyllm/internal/grade/w3d6"
	w3day3 "github.com/tinyllm-go/tinyllm/solutions/week3/day3"
)

func newManager(s w3d3.Shape) (w3d6.Manager, w3d6.Pool, error) {
	p, err := w3day3.NewPagePool(w3day3.PoolConfig{NumPages: s.NumPages, PageSize: s.PageSize, Layers: s.Layers, KVHeads: s.KVHeads, HeadDim: s.HeadDim})
	if err != nil {
		return nil, nil, err
	}
	return NewPrefixBlockManager(p), p, nil
}

func TestW3D6Task1PageHash(t *testing.T) { w3d6.PageHash(t, PageHash) }

func TestW3D6Task2PrefixCache(t *testing.T) { w3d6.Blocks(t, newManager) }
