package quantize_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/quantize"
	"github.com/tinyllm-go/tinyllm/internal/safetensors"
	"github.com/tinyllm-go/tinyllm/solutions/week1/day5"
)

// logitsTolerance bounds |Go − mlx-lm| for every logit. Both compute in
// float32 on the same dequantized weights (mlx-lm's parameters widened to
// float32, exactly); what remains is the order of the sums, which on these
// models of width 64 and 128 moves a logit by a few units of 1e-6.
const logitsTolerance = 1e-4

// TestFolderMatchesMLXLM quantizes the fixture checkpoints with Folder and
// holds the result to what mlx_lm.convert wrote for them: the same tensors
// (names, dtypes, shapes and every byte), the same index and the same
// config.json. The Week 1 reference engine's logits on Folder's output must
// then match mlx_lm.load's on its own.
func TestFolderMatchesMLXLM(t *testing.T) {
	cases, err := fixture.Load("quantize", "mlx_lm_logits")
	if err != nil {
		t.Fatal(err)
	}
	root, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			bits, err1 := c.Int("bits")
			group, err2 := c.Int("group_size")
			tokens, err3 := c.Array("tokens")
			logits, err4 := c.Array("logits")
			for _, err := range []error{err1, err2, err3, err4} {
				if err != nil {
					t.Fatal(err)
				}
			}
			in := filepath.Join(root, c.Params["checkpoint"].(string))
			want := filepath.Join(root, c.Params["mlx"].(string))
			out := filepath.Join(t.TempDir(), "q")
			if err := quantize.Folder(context.Background(), in, out, quantize.Options{Bits: bits, GroupSize: group}); err != nil {
				t.Fatal(err)
			}
			compareWeights(t, filepath.Join(out, "model.safetensors"), filepath.Join(want, "model.safetensors"))
			compareJSON(t, out, want, "config.json")
			compareJSON(t, out, want, "model.safetensors.index.json")
			for _, name := range []string{"tokenizer.json", "generation_config.json"} {
				a, _ := os.ReadFile(filepath.Join(in, name))
				b, err := os.ReadFile(filepath.Join(out, name))
				if err != nil || !slices.Equal(a, b) {
					t.Errorf("%s is not the input's (%v)", name, err)
				}
			}

			ck, err := checkpoint.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			model, err := day5.NewQwen2ModelWeek1(ck)
			if err != nil {
				t.Fatal(err)
			}
			b, l := tokens.Shape[0], tokens.Shape[1]
			seqs := make([][]int, b)
			for i := range seqs {
				for _, id := range tokens.Int64[i*l : (i+1)*l] {
					seqs[i] = append(seqs[i], int(id))
				}
			}
			got := model.Forward(seqs).Data()
			if len(got) != len(logits.Float32) {
				t.Fatalf("%d logits, mlx-lm has %d", len(got), len(logits.Float32))
			}
			worst, at := 0.0, 0
			for i, w := range logits.Float32 {
				if d := math.Abs(float64(got[i] - w)); d > worst || d != d {
					worst, at = d, i
				}
			}
			vocab := logits.Shape[2]
			t.Logf("largest logit difference from mlx-lm: %.2g", worst)
			if !(worst <= logitsTolerance) {
				t.Errorf("logit of sequence %d, position %d, token %d: %g, mlx-lm's %g (difference %.3g > %g)",
					at/(l*vocab), at/vocab%l, at%vocab, got[at], logits.Float32[at], worst, logitsTolerance)
			}
		})
	}
}

// compareWeights checks that two safetensors files hold the same tensors,
// byte for byte, and names the first difference.
func compareWeights(t *testing.T, gotPath, wantPath string) {
	t.Helper()
	got, err := safetensors.Open(gotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	want, err := safetensors.Open(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	gn, wn := got.Names(), want.Names()
	slices.Sort(gn)
	slices.Sort(wn)
	if !slices.Equal(gn, wn) {
		t.Fatalf("tensors\n  %v\nmlx-lm writes\n  %v", gn, wn)
	}
	if m := got.Metadata(); m["format"] != "mlx" {
		t.Errorf("metadata %v, want format mlx as mlx-lm writes", m)
	}
	for _, name := range wn {
		g, gi, _ := got.Raw(name)
		w, wi, _ := want.Raw(name)
		if gi.DType != wi.DType || !slices.Equal(gi.Shape, wi.Shape) {
			t.Errorf("%s: %s %v, mlx-lm's %s %v", name, gi.DType, gi.Shape, wi.DType, wi.Shape)
			continue
		}
		if i := firstByteDiff(g, w); i >= 0 {
			size := 2
			if wi.DType == "U32" || wi.DType == "F32" {
				size = 4
			}
			e := i / size
			t.Errorf("%s (%s %v): element %d is %x, mlx-lm's %x", name, wi.DType, wi.Shape, e, g[e*size:(e+1)*size], w[e*size:(e+1)*size])
		}
	}
}

func firstByteDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// compareJSON checks that a JSON file of the two folders holds the same
// values (key order and spacing aside).
func compareJSON(t *testing.T, gotDir, wantDir, name string) {
	t.Helper()
	read := func(dir string) map[string]any {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s: %v", filepath.Join(dir, name), err)
		}
		return v
	}
	got, want := read(gotDir), read(wantDir)
	for _, k := range keys(got, want) {
		if !reflect.DeepEqual(got[k], want[k]) {
			t.Errorf("%s: %q is %s, mlx-lm writes %s", name, k, show(got[k]), show(want[k]))
		}
	}
}

func keys(a, b map[string]any) []string {
	var ks []string
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

func show(v any) string {
	if v == nil {
		return "absent or null"
	}
	raw, _ := json.Marshal(v)
	return fmt.Sprintf("%s", raw)
}
