package checkpoint

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// storedPacked is a packed weight as its file stores it, read without the
// loader: the words and the bf16 bits of its scales and biases.
type storedPacked struct {
	name           string
	words          []uint32
	packedShape    []int
	scales, biases []uint16 // bf16 bits
}

func readPacked(t *testing.T, dir string) []storedPacked {
	t.Helper()
	byName := map[string]storedTensor{}
	for _, s := range readWeights(t, filepath.Join(dir, "model.safetensors")) {
		byName[s.spec.Name] = s
	}
	var out []storedPacked
	for name, s := range byName {
		if s.spec.DType != "U32" {
			continue
		}
		base := strings.TrimSuffix(name, ".weight")
		sc, bi := byName[base+".scales"], byName[base+".biases"]
		if sc.spec.DType != "BF16" || bi.spec.DType != "BF16" {
			t.Fatalf("%s: scales %s, biases %s; this test reads bf16", base, sc.spec.DType, bi.spec.DType)
		}
		p := storedPacked{name: name, packedShape: s.spec.Shape}
		for i := 0; i < len(s.data); i += 4 {
			p.words = append(p.words, binary.LittleEndian.Uint32(s.data[i:]))
		}
		for i := 0; i < len(sc.data); i += 2 {
			p.scales = append(p.scales, binary.LittleEndian.Uint16(sc.data[i:]))
			p.biases = append(p.biases, binary.LittleEndian.Uint16(bi.data[i:]))
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b storedPacked) int { return strings.Compare(a.name, b.name) })
	if len(out) == 0 {
		t.Fatalf("%s holds no packed weights", dir)
	}
	return out
}

// bf16 widens bfloat16 bits.
func bf16(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// referenceDequantize is MLX's affine dequantization of 4-bit values written
// independently of the loader: nibbles are taken byte by byte from the
// little-endian words (the low nibble of each byte first).
func referenceDequantize(p storedPacked, groupSize int) []float32 {
	out, in := p.packedShape[0], p.packedShape[1]*8
	groups := in / groupSize
	w := make([]float32, out*in)
	for r := range out {
		for j := range in {
			word := p.words[r*p.packedShape[1]+j/8]
			b := byte(word >> (8 * ((j % 8) / 2)))
			q := b & 0x0F
			if j%2 == 1 {
				q = b >> 4
			}
			g := r*groups + j/groupSize
			w[r*in+j] = float32(q)*bf16(p.scales[g]) + bf16(p.biases[g])
		}
	}
	return w
}

// TestPackedIsTheStoredForm reads every packed weight of the MLX checkpoint
// through Packed: the words, scales and biases must be the file's, bit for
// bit, and nothing may be dequantized to get them.
func TestPackedIsTheStoredForm(t *testing.T) {
	dir := q4Dir(t)
	stored := readPacked(t, dir)
	ck, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var dequantizedBytes uint64
	var got []*PackedWeight
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, s := range stored {
		p, err := ck.Packed(s.name, s.packedShape[0], s.packedShape[1]*8)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
		dequantizedBytes += uint64(4 * p.Out * p.In)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > dequantizedBytes/8 {
		t.Errorf("Packed allocated %d bytes for %d weights; dequantized they are %d: the packed form must not be a copy",
			alloc, len(stored), dequantizedBytes)
	}
	for i, s := range stored {
		p := got[i]
		if p.Bits != 4 || p.GroupSize != 32 || p.Out != s.packedShape[0] || p.In != s.packedShape[1]*8 {
			t.Errorf("%s: bits %d, group %d, %d x %d; want 4, 32, %d x %d", s.name, p.Bits, p.GroupSize, p.Out, p.In, s.packedShape[0], s.packedShape[1]*8)
		}
		if !slices.Equal(p.Words, s.words) {
			t.Errorf("%s: packed words differ from the file's", s.name)
		}
		if p.Scales.DType() != tensor.BFloat16 || !slices.Equal(p.Scales.Bits(), s.scales) {
			t.Errorf("%s: scales are not the stored bf16 values", s.name)
		}
		if p.Biases.DType() != tensor.BFloat16 || !slices.Equal(p.Biases.Bits(), s.biases) {
			t.Errorf("%s: biases are not the stored bf16 values", s.name)
		}
	}
	if ck.IsPacked("model.norm.weight") {
		t.Error("IsPacked(model.norm.weight) = true for a bf16 tensor")
	}
	if _, err := ck.Packed("model.norm.weight"); err == nil || !strings.Contains(err.Error(), "not stored quantized") {
		t.Errorf("Packed of a bf16 tensor: err = %v", err)
	}
	if _, err := ck.Packed("model.layers.0.mlp.up_proj.weight", 160, 32); err == nil || !strings.Contains(err.Error(), "the config implies [160 32]") {
		t.Errorf("Packed with the wrong shape: err = %v", err)
	}
}

// TestDequantizeOnUse checks that Tensor, which the Week 1 model loads its
// weights with, still gives float32 weights for a quantized checkpoint, equal
// bit for bit to an independent dequantization of the stored values, and
// that each call makes its own copy (nothing is kept by the checkpoint).
func TestDequantizeOnUse(t *testing.T) {
	dir := q4Dir(t)
	ck, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for _, s := range readPacked(t, dir) {
		want := referenceDequantize(s, 32)
		shape := []int{s.packedShape[0], s.packedShape[1] * 8}
		got, err := ck.Tensor(s.name, shape...)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType() != tensor.Float32 || !slices.Equal(got.Shape(), shape) {
			t.Fatalf("%s: %v %v, want float32 %v", s.name, got.DType(), got.Shape(), shape)
		}
		for i, w := range got.Data() {
			if math.Float32bits(w) != math.Float32bits(want[i]) {
				t.Fatalf("%s: element %d is %g, the stored values give %g", s.name, i, w, want[i])
			}
		}
		again, _ := ck.Tensor(s.name)
		if &again.Data()[0] == &got.Data()[0] {
			t.Fatalf("%s: two calls share one dequantized copy", s.name)
		}
	}
}

// TestNegativeScalesAreKept stores a weight whose scales are negative (MLX
// writes such groups when a group's largest magnitude is negative) and
// whose words are 0x76543210: the values 0 … 7 in order, low bits first.
func TestNegativeScalesAreKept(t *testing.T) {
	d := copyCheckpoint(t, q4Dir(t), nil)
	const scale, bias = 0xBF00, 0x4040 // bf16 -0.5 and 3
	editWeights(t, d, func(s *storedTensor) bool {
		var fill func(i int)
		switch s.spec.Name {
		case "model.embed_tokens.weight":
			fill = func(i int) { binary.LittleEndian.PutUint32(s.data[i:], 0x76543210) }
		case "model.embed_tokens.scales":
			fill = func(i int) { binary.LittleEndian.PutUint16(s.data[i:], scale) }
		case "model.embed_tokens.biases":
			fill = func(i int) { binary.LittleEndian.PutUint16(s.data[i:], bias) }
		default:
			return true
		}
		step := 2
		if s.spec.DType == "U32" {
			step = 4
		}
		for i := 0; i < len(s.data); i += step {
			fill(i)
		}
		return true
	})
	ck, err := Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	p, err := ck.Packed("model.embed_tokens.weight")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Scales.Data() {
		if s != -0.5 {
			t.Fatalf("a stored scale of -0.5 reads as %g", s)
		}
	}
	w, err := ck.Tensor("model.embed_tokens.weight")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range w.Data() {
		if want := -0.5*float32(i%8) + 3; v != want {
			t.Fatalf("element %d (row %d, input %d) is %g, want %g", i, i/64, i%64, v, want)
		}
	}
}
