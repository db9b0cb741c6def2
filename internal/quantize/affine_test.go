package quantize

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// TestAffineMatchesMLX holds Affine to mx.quantize (CPU) on weights with
// awkward groups, in bf16, f16 and f32, for 4 and 8 bits and groups of 32,
// 64 and 128: every word, scale and bias must be MLX's to the bit, the
// scales and biases after rounding to the weight's dtype as MLX stores them.
func TestAffineMatchesMLX(t *testing.T) {
	cases, err := fixture.Load("quantize", "affine")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 18 {
		t.Fatalf("%d affine cases, want 3 dtypes x 2 bit widths x 3 group sizes = 18", len(cases))
	}
	dtypes := map[string]tensor.DType{"bfloat16": tensor.BFloat16, "float16": tensor.Float16, "float32": tensor.Float32}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			bits, err1 := c.Int("bits")
			group, err2 := c.Int("group_size")
			w, err3 := c.Array("w")
			words, err4 := c.Array("words")
			scales, err5 := c.Array("scales")
			biases, err6 := c.Array("biases")
			for _, err := range []error{err1, err2, err3, err4, err5, err6} {
				if err != nil {
					t.Fatal(err)
				}
			}
			dt, ok := dtypes[c.Params["dtype"].(string)]
			if !ok {
				t.Fatalf("unknown dtype %v", c.Params["dtype"])
			}
			cols := w.Shape[1]
			gotWords, gotScales, gotBiases, err := Affine(w.Float32, group, bits)
			if err != nil {
				t.Fatal(err)
			}
			for i := range gotScales {
				gotScales[i] = roundTo(dt, gotScales[i])
				gotBiases[i] = roundTo(dt, gotBiases[i])
			}
			perWord := 32 / bits
			if msg := firstWordMismatch(gotWords, words.Uint32, bits, cols/perWord, perWord); msg != "" {
				t.Error(msg)
			}
			for _, p := range []struct {
				name      string
				got, want []float32
			}{{"scale", gotScales, scales.Float32}, {"bias", gotBiases, biases.Float32}} {
				if msg := firstFloatMismatch(p.name, p.got, p.want, cols/group, group, w.Float32, cols); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}

// firstWordMismatch describes the first word that differs: its row, the
// inputs it packs and the codes on both sides.
func firstWordMismatch(got, want []uint32, bits, wordsPerRow, perWord int) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d words, MLX has %d", len(got), len(want))
	}
	for i := range got {
		if got[i] == want[i] {
			continue
		}
		codes := func(w uint32) string {
			var s []string
			for k := range perWord {
				s = append(s, fmt.Sprint(w>>(k*bits)&(1<<bits-1)))
			}
			return strings.Join(s, " ")
		}
		r, j := i/wordsPerRow, i%wordsPerRow
		return fmt.Sprintf("word %d (row %d, inputs %d…%d): codes [%s], MLX's [%s]", i, r, j*perWord, (j+1)*perWord-1, codes(got[i]), codes(want[i]))
	}
	return ""
}

// firstFloatMismatch describes the first scale or bias whose bits differ,
// with the group's minimum and maximum.
func firstFloatMismatch(what string, got, want []float32, groupsPerRow, group int, w []float32, cols int) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d %ss, MLX has %d", len(got), what, len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) == math.Float32bits(want[i]) {
			continue
		}
		r, g := i/groupsPerRow, i%groupsPerRow
		vals := w[r*cols+g*group : r*cols+(g+1)*group]
		lo, hi := vals[0], vals[0]
		for _, v := range vals {
			lo, hi = min(lo, v), max(hi, v)
		}
		return fmt.Sprintf("%s of group %d (row %d, inputs %d…%d, min %g, max %g): %g (bits %#08x), MLX's %g (bits %#08x)",
			what, i, r, g*group, (g+1)*group-1, lo, hi, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
	}
	return ""
}

// TestAffineRefusesValuesWithoutCode: NaN and ±Inf have no code; the error
// says where.
func TestAffineRefusesValuesWithoutCode(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		w := make([]float32, 64)
		w[37] = bad
		if _, _, _, err := Affine(w, 32, 4); err == nil || !strings.Contains(err.Error(), "value 37") {
			t.Errorf("%v at 37: got %v, want an error naming value 37", bad, err)
		}
	}
	if _, _, _, err := Affine(make([]float32, 48), 32, 4); err == nil {
		t.Error("48 values in groups of 32: no error")
	}
}
