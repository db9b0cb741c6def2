package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
)

// activationBytes estimates the scratch memory one forward pass over tokens
// positions needs, besides the weights: the widest activations of a layer
// (the MLP's gate, up and their product, I wide; q, k, v, the attention
// output and the residual, E wide), in float32, plus one row of logits.
//
// The causal mask, L x L float32, is built once per forward pass (and is
// briefly there twice while it is made); at 16k tokens that alone is 2 GiB.
func activationBytes(c checkpoint.Config, tokens int) float64 {
	perToken := 3*c.IntermediateSize + 6*c.HiddenSize
	l := float64(tokens)
	return 4*(l*float64(perToken)+float64(c.VocabSize)) + 2*4*l*l
}

// naiveAttentionBytes is what attention as Week 1 Day 1 teaches it allocates
// in one layer: the H_q x L x L scores, their softmax, and the L x L mask,
// in float32. The reference engine works in blocks of queries and needs a
// small part of it; a learner's first implementation needs all of it.
func naiveAttentionBytes(c checkpoint.Config, tokens int) float64 {
	l := float64(tokens)
	return 4 * l * l * float64(2*c.NumAttentionHeads+1)
}

// kvCacheBytes is the float32 key/value cache of every layer for tokens
// positions, with room for the cache's doubling growth.
func kvCacheBytes(c checkpoint.Config, tokens int) float64 {
	if c.NumAttentionHeads == 0 {
		return 0
	}
	headDim := c.HiddenSize / c.NumAttentionHeads
	perToken := 2 * c.NumHiddenLayers * c.NumKeyValueHeads * headDim * 4
	return 2 * float64(tokens) * float64(perToken)
}

// checkMemory refuses, before anything is allocated, a run of tokens
// positions (prompt plus the reply budget) whose Week 1 forward pass would
// need more memory than the machine has available, with a line that says how
// much it would need. Where the available memory is unknown it checks nothing.
func checkMemory(impl string, week int, c checkpoint.Config, tokens int) error {
	avail, ok := availableMemory()
	if !ok {
		return nil
	}
	need := activationBytes(c, tokens)
	what := "activations"
	if week >= 2 {
		// The Week 2 engines feed the prompt in pieces: a forward pass
		// holds one piece's activations and a piece × context mask.
		piece := float64(min(tokens, prefillChunk(c)))
		need = activationBytes(c, int(piece)) + 2*4*piece*float64(tokens) + kvCacheBytes(c, tokens)
		what = "activations and the KV cache"
	}
	if impl == "learner" {
		need += naiveAttentionBytes(c, tokens)
		what = fmt.Sprintf("activations and the %d×%d×%d attention scores of one layer", c.NumAttentionHeads, tokens, tokens)
	}
	if need <= float64(avail) {
		return nil
	}
	hint := "shorten the conversation or lower --max-tokens"
	if impl == "learner" {
		hint += ", or run the reference engine (no --impl learner), which computes attention in blocks"
	}
	return fmt.Errorf("%d tokens (prompt plus --max-tokens) need about %.1f GB for %s, more than the %.1f GB this machine has available: %s",
		tokens, need/1e9, what, float64(avail)/1e9, hint)
}

// availableMemory reads MemAvailable from /proc/meminfo (Linux): the memory
// that can be had without swapping. Tests replace it.
var availableMemory = func() (uint64, bool) { return meminfo("MemAvailable") }

// physicalMemory is the machine's memory, MemTotal of /proc/meminfo
// (Linux); false where it cannot be read, and serve's page pool is then not
// checked. Tests replace it.
var physicalMemory = func() (uint64, bool) { return meminfo("MemTotal") }

// meminfo reads one field of /proc/meminfo, in bytes; false where the file
// or the field cannot be read (on macOS, say).
func meminfo(field string) (uint64, bool) {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) >= 2 && string(fields[0]) == field+":" {
			kb, err := strconv.ParseUint(string(fields[1]), 10, 64)
			if err != nil || kb > math.MaxUint64>>10 {
				return 0, false
			}
			return kb << 10, true
		}
	}
	return 0, false
}
