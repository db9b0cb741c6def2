// Package w2d2 holds the checks of Week 2 Day 2 (the cost model of a forward
// pass), shared by week2/day2 and solutions/week2/day2.
package w2d2

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/grade"
)

const day = "w2d2"

// Cost mirrors the day's Cost field for field, so that either tree's value
// converts to it with Cost(c).
type Cost struct {
	LinearFLOPs    int64
	HeadFLOPs      int64
	AttentionFLOPs int64
	WeightBytes    int64
	KVReadBytes    int64
	KVWriteBytes   int64
}

// ForwardCostFunc is the day's ForwardCost with its result converted.
type ForwardCostFunc func(cfg checkpoint.Config, weightBytes, cacheBytes, newTokens, offset int) (Cost, error)

// call is one fixture case: a config, the call's arguments and what
// PyTorch counted.
type call struct {
	cfg                             checkpoint.Config
	weightBytes, cacheBytes, l, off int
	want                            map[string]int64
	describe                        string
}

func load(t *testing.T, c *fixture.Case) call {
	t.Helper()
	get := func(name string) int {
		v, err := c.Int(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tied, err := c.Bool("tie_word_embeddings")
	if err != nil {
		t.Fatal(err)
	}
	cl := call{
		cfg: checkpoint.Config{
			ModelType: "qwen2", VocabSize: get("vocab_size"), HiddenSize: get("hidden_size"),
			IntermediateSize: get("intermediate_size"), NumHiddenLayers: get("num_hidden_layers"),
			NumAttentionHeads: get("num_attention_heads"), NumKeyValueHeads: get("num_key_value_heads"),
			TieWordEmbeddings: tied,
		},
		weightBytes: get("weight_bytes_per_value"), cacheBytes: get("cache_bytes_per_value"),
		l: get("new_tokens"), off: get("offset"), want: map[string]int64{},
	}
	expect, ok := c.Params["expect"].(map[string]any)
	if !ok {
		t.Fatalf("case %s: no expect parameter", c.Name)
	}
	for k, v := range expect {
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			t.Fatalf("case %s: expect.%s = %v is not an integer", c.Name, k, v)
		}
		cl.want[k] = int64(f)
	}
	g := cl.cfg
	cl.describe = fmt.Sprintf("ForwardCost(cfg, %d, %d, newTokens=%d, offset=%d) with V=%d E=%d I=%d layers=%d heads=%d kv_heads=%d tied=%v",
		cl.weightBytes, cl.cacheBytes, cl.l, cl.off, g.VocabSize, g.HiddenSize, g.IntermediateSize, g.NumHiddenLayers,
		g.NumAttentionHeads, g.NumKeyValueHeads, g.TieWordEmbeddings)
	return cl
}

// field is one compared number: its name in Go and in the fixture, and
// hints for the mistakes that give a recognisable wrong value.
type field struct {
	name, key, source string
	get               func(Cost) int64
	hints             func(got int64, cl call) string
}

func check(t *testing.T, task string, fields []field, forwardCost ForwardCostFunc) {
	grade.Cases(t, task, day, "cost", func(t *testing.T, c *fixture.Case) {
		cl := load(t, c)
		got, err := forwardCost(cl.cfg, cl.weightBytes, cl.cacheBytes, cl.l, cl.off)
		if err != nil {
			t.Fatalf("%s: %s returned an error for a valid model: %v", task, cl.describe, err)
		}
		var bad []string
		for _, f := range fields {
			want, ok := cl.want[f.key]
			if !ok {
				t.Fatalf("case %s: the fixture has no %s", c.Name, f.key)
			}
			if g := f.get(got); g != want {
				line := fmt.Sprintf("  %s = %d, want %d (%s); off by %+d", f.name, g, want, f.source, g-want)
				if h := f.hints(g, cl); h != "" {
					line += "\n    " + h
				}
				bad = append(bad, line)
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s, case %s: %s:\n%s", task, c.Name, cl.describe, strings.Join(bad, "\n"))
		}
	})
}

// FLOPs checks Task 1: the three FLOP counts, exactly, against PyTorch's
// FlopCounterMode on Hugging Face's Qwen2ForCausalLM.
func FLOPs(t *testing.T, forwardCost ForwardCostFunc) {
	check(t, "W2D2 Task 1 FLOPs", []field{
		{"LinearFLOPs", "linear_flops", "FlopCounterMode, the q/k/v/o/gate/up/down modules of every layer",
			func(c Cost) int64 { return c.LinearFLOPs }, func(got int64, cl call) string {
				if got*2 == cl.want["linear_flops"] {
					return "exactly half: a multiply-add is 2 FLOPs (2*M*N*K per matrix product)"
				}
				return "each projection is 2 * newTokens * in * out; k and v are num_key_value_heads*head_dim wide, not hidden_size"
			}},
		{"HeadFLOPs", "head_flops", "FlopCounterMode, the lm_head module",
			func(c Cost) int64 { return c.HeadFLOPs }, func(got int64, cl call) string {
				switch {
				case got == 0:
					return "the LM head is missing: the logits of every new position cost 2 * newTokens * hidden * vocab"
				case cl.l > 1 && got*int64(cl.l) == cl.want["head_flops"]:
					return "counted the head for the last position only; Forward (and HF) computes logits for all newTokens positions"
				}
				return ""
			}},
		{"AttentionFLOPs", "attention_flops", "FlopCounterMode, the matrix products inside every self_attn module",
			func(c Cost) int64 { return c.AttentionFLOPs }, func(got int64, cl call) string {
				want := cl.want["attention_flops"]
				s := int64(cl.l + cl.off)
				switch {
				case cl.off > 0 && got*s == want*int64(cl.l):
					return "counted keys of the new tokens only; each query attends to all offset+newTokens keys in the cache"
				case got*int64(cl.cfg.NumAttentionHeads) == want*int64(cl.cfg.NumKeyValueHeads):
					return "counted key/value heads; every query head computes its own scores and weighted sum"
				case got*2 == want:
					return "exactly half: count both q·kᵀ and weights·v, and a multiply-add as 2 FLOPs"
				}
				return "two products per layer and query head, each 2 * newTokens * (offset+newTokens) * head_dim; masked positions count too"
			}},
	}, forwardCost)
}

// Bytes checks Task 2: the weight bytes against the tensors of a written
// checkpoint, and the cache bytes against Hugging Face's DynamicCache.
func Bytes(t *testing.T, forwardCost ForwardCostFunc) {
	check(t, "W2D2 Task 2 Bytes", []field{
		{"WeightBytes", "weight_bytes", "the checkpoint's tensors, each once",
			func(c Cost) int64 { return c.WeightBytes }, func(got int64, cl call) string {
				g := cl.cfg
				e, v := int64(g.HiddenSize), int64(g.VocabSize)
				wb := int64(cl.weightBytes)
				want := cl.want["weight_bytes"]
				switch {
				case got == want-v*e*wb:
					return "the head's vocab x hidden matrix is missing"
				case g.TieWordEmbeddings && got == want+v*e*wb:
					return "counted the tied embedding twice: it is one tensor, read once by the head"
				case !g.TieWordEmbeddings && got == want+(v-int64(cl.l))*e*wb:
					return "counted the whole untied embedding table; a forward pass reads only the new tokens' rows"
				case !g.TieWordEmbeddings && got == want-int64(cl.l)*e*wb:
					return "the new tokens' embedding rows are missing (untied: the head does not read them)"
				}
				return "every layer: the seven matrices, the q/k/v biases and two norm weights; then the final norm and the head"
			}},
		{"KVReadBytes", "kv_read_bytes", "DynamicCache's keys and values after the call",
			func(c Cost) int64 { return c.KVReadBytes }, func(got int64, cl call) string {
				if cl.off > 0 && got == cl.want["kv_write_bytes"] {
					return "counted the new tokens only; attention reads the whole cache, offset+newTokens positions"
				}
				return "layers * 2 (keys and values) * num_key_value_heads * head_dim * (offset+newTokens) * cacheBytes"
			}},
		{"KVWriteBytes", "kv_write_bytes", "how much DynamicCache grew during the call",
			func(c Cost) int64 { return c.KVWriteBytes }, func(got int64, cl call) string {
				if cl.off > 0 && got == cl.want["kv_read_bytes"] {
					return "counted the whole cache; a call appends only its newTokens positions"
				}
				return "layers * 2 (keys and values) * num_key_value_heads * head_dim * newTokens * cacheBytes"
			}},
	}, forwardCost)
}

// RefusesBadInput checks that ForwardCost returns an error, and does not
// panic, for a config or a call that describes nothing.
func RefusesBadInput(t *testing.T, forwardCost ForwardCostFunc) {
	const task = "W2D2 Task 1 RefusesBadInput"
	grade.PointToChapter(t, task)
	good := checkpoint.Config{VocabSize: 256, HiddenSize: 64, IntermediateSize: 160, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, TieWordEmbeddings: true}
	_, err := runCost(t, task, forwardCost, good, 2, 4, 3, 0)
	if t.Failed() {
		return
	}
	if err != nil {
		t.Fatalf("%s: a valid config (hidden 64, 4 heads, 2 kv heads, 3 new tokens at offset 0) was refused: %v", task, err)
	}
	with := func(f func(*checkpoint.Config)) checkpoint.Config { c := good; f(&c); return c }
	cases := []struct {
		what                    string
		cfg                     checkpoint.Config
		wb, cb, newTokens, offs int
	}{
		{"zero new tokens", good, 2, 4, 0, 5},
		{"a negative offset", good, 2, 4, 1, -1},
		{"zero bytes per weight", good, 0, 4, 1, 0},
		{"zero bytes per cached value", good, 2, 0, 1, 0},
		{"hidden 64 with 6 heads", with(func(c *checkpoint.Config) { c.NumAttentionHeads = 6 }), 2, 4, 1, 0},
		{"4 heads with 3 kv heads", with(func(c *checkpoint.Config) { c.NumKeyValueHeads = 3 }), 2, 4, 1, 0},
		{"0 kv heads", with(func(c *checkpoint.Config) { c.NumKeyValueHeads = 0 }), 2, 4, 1, 0},
		{"0 layers", with(func(c *checkpoint.Config) { c.NumHiddenLayers = 0 }), 2, 4, 1, 0},
		{"an empty config", checkpoint.Config{}, 2, 4, 1, 0},
	}
	for _, tc := range cases {
		got, err := runCost(t, task, forwardCost, tc.cfg, tc.wb, tc.cb, tc.newTokens, tc.offs)
		if t.Failed() {
			return
		}
		if err == nil {
			t.Errorf("%s: %s was accepted (got %+v); return an error that names the bad value", task, tc.what, got)
		}
	}
}

// runCost calls forwardCost and turns a panic (a stub's, or a division by
// zero on bad input) into a failure.
func runCost(t *testing.T, task string, f ForwardCostFunc, cfg checkpoint.Config, wb, cb, l, off int) (c Cost, err error) {
	t.Helper()
	grade.Run(t, task, func() { c, err = f(cfg, wb, cb, l, off) })
	return c, err
}
