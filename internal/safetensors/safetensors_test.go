package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// spec is one tensor to write into a test file.
type spec struct {
	name  string
	dtype string
	shape []int
	data  []byte
}

// build lays out a safetensors file the way Hugging Face does: tensors back
// to back in the given order, the header padded with spaces to a multiple of
// 8 bytes so the data section is aligned.
func build(t *testing.T, meta map[string]string, specs ...spec) []byte {
	t.Helper()
	hdr := map[string]any{}
	if meta != nil {
		hdr["__metadata__"] = meta
	}
	var data []byte
	for _, s := range specs {
		begin := len(data)
		data = append(data, s.data...)
		hdr[s.name] = map[string]any{"dtype": s.dtype, "shape": s.shape, "data_offsets": []int{begin, len(data)}}
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	for (8+len(js))%8 != 0 {
		js = append(js, ' ')
	}
	return assemble(js, data)
}

// assemble joins a raw header and a data section into file bytes.
func assemble(header []byte, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func f32Bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func u16Bytes(v ...uint16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, x)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	f32 := []float32{1, -2.5, 3.25, 0, float32(math.Inf(1)), -0.125}
	bf := []float32{1, -2, 0.5, 3.140625}
	f16 := []float32{0.5, -1.5, 65504, 6.1035156e-05}
	var bfBits, f16Bits []uint16
	for _, v := range bf {
		bfBits = append(bfBits, tensor.BF16FromFloat32(v))
	}
	for _, v := range f16 {
		f16Bits = append(f16Bits, tensor.F16FromFloat32(v))
	}
	packed := []uint32{0x76543210, 0xfedcba98}
	var packedBytes []byte
	for _, v := range packed {
		packedBytes = binary.LittleEndian.AppendUint32(packedBytes, v)
	}
	file := build(t, map[string]string{"format": "pt", "note": "round trip"},
		spec{"z.f32", "F32", []int{2, 3}, f32Bytes(f32...)},
		spec{"a.bf16", "BF16", []int{2, 2}, u16Bytes(bfBits...)},
		spec{"m.f16", "F16", []int{4}, u16Bytes(f16Bits...)},
		spec{"packed", "U32", []int{1, 2}, packedBytes},
		spec{"ids", "I64", []int{1}, make([]byte, 8)},
		spec{"scalar", "F32", []int{}, f32Bytes(7)},
		spec{"empty", "BF16", []int{0, 4}, nil},
	)
	f, err := Open(writeTemp(t, "model.safetensors", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	if got, want := f.Names(), []string{"a.bf16", "empty", "ids", "m.f16", "packed", "scalar", "z.f32"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	if got := f.Metadata(); len(got) != 2 || got["format"] != "pt" || got["note"] != "round trip" {
		t.Errorf("Metadata() = %v", got)
	}
	if info, ok := f.Info("a.bf16"); !ok || info.DType != "BF16" || !slices.Equal(info.Shape, []int{2, 2}) {
		t.Errorf("Info(a.bf16) = %+v, %v", info, ok)
	}
	if _, ok := f.Info("nope"); ok {
		t.Error("Info(nope) found a tensor")
	}

	check := func(name string, dt tensor.DType, shape []int, want []float32) {
		t.Helper()
		x, err := f.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if x.DType() != dt || !slices.Equal(x.Shape(), shape) {
			t.Fatalf("%s: dtype %v shape %v, want %v %v", name, x.DType(), x.Shape(), dt, shape)
		}
		if got := x.Data(); !slices.Equal(got, want) {
			t.Errorf("%s: data %v, want %v", name, got, want)
		}
	}
	check("z.f32", tensor.Float32, []int{2, 3}, f32)
	check("a.bf16", tensor.BFloat16, []int{2, 2}, bf)
	check("m.f16", tensor.Float16, []int{4}, f16)
	check("scalar", tensor.Float32, []int{}, []float32{7})
	check("empty", tensor.BFloat16, []int{0, 4}, []float32{})

	u, shape, err := f.Uint32("packed")
	if err != nil || !slices.Equal(u, packed) || !slices.Equal(shape, []int{1, 2}) {
		t.Errorf("Uint32(packed) = %x %v %v", u, shape, err)
	}
	raw, info, err := f.Raw("ids")
	if err != nil || len(raw) != 8 || info.DType != "I64" {
		t.Errorf("Raw(ids) = %v %+v %v", raw, info, err)
	}
	for name, want := range map[string]string{
		"ids":     `tensor "ids" has dtype I64; Tensor reads F32, BF16 and F16`,
		"packed":  "read them with Uint32",
		"missing": `no tensor "missing"`,
	} {
		if _, err := f.Tensor(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Tensor(%s) error %v, want it to contain %q", name, err, want)
		}
	}
	if _, _, err := f.Uint32("a.bf16"); err == nil || !strings.Contains(err.Error(), "has dtype BF16, not U32") {
		t.Errorf("Uint32(a.bf16) error %v", err)
	}
}

// TestZeroCopy checks that aligned 16-bit tensors share the mapping, that a
// misaligned one is copied correctly, and that writing through a view never
// reaches the file.
func TestZeroCopy(t *testing.T) {
	bits := []uint16{tensor.BF16FromFloat32(1), tensor.BF16FromFloat32(2), tensor.BF16FromFloat32(3)}
	// "odd" starts at data offset 1, so its words are not 2-byte aligned.
	hdr := []byte(`{"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},` +
		`"odd":{"dtype":"BF16","shape":[3],"data_offsets":[1,7]},` +
		`"even":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]}}`)
	for (8+len(hdr))%8 != 0 {
		hdr = append(hdr, ' ')
	}
	data := append(append(append([]byte{0xAA}, u16Bytes(bits...)...), 0), u16Bytes(bits...)...)
	file := assemble(hdr, data)
	path := writeTemp(t, "align.safetensors", file)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, name := range []string{"odd", "even"} {
		x, err := f.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := x.Data(); !slices.Equal(got, []float32{1, 2, 3}) {
			t.Errorf("%s: %v", name, got)
		}
	}
	even, _ := f.Tensor("even")
	raw, _, _ := f.Raw("even")
	if &even.Bits()[0] != (*uint16)(ptr(raw)) {
		t.Error("aligned BF16 tensor was copied, want a view of the mapping")
	}
	even.Bits()[0] = 0 // private mapping: changes this process's copy only
	if raw[0] != 0 || raw[1] != 0 {
		t.Error("write through the view did not show in the mapping")
	}
	if onDisk, _ := os.ReadFile(path); !bytes.Equal(onDisk, file) {
		t.Error("writing through a tensor view modified the file")
	}
}

// TestMisalignedCopyReleasesPagesSafely reads a misaligned tensor of
// several pages twice: the first read copies it and hands the mapped pages
// back to the operating system, and the second must still see the file's
// bytes, as must a neighbour that shares the boundary pages. It runs on a
// memory-mapped file and on one read into huge pages (UseHugePages).
func TestMisalignedCopyReleasesPagesSafely(t *testing.T) {
	for _, huge := range []bool{false, true} {
		t.Run(fmt.Sprintf("huge=%v", huge), func(t *testing.T) {
			UseHugePages(huge)
			defer UseHugePages(false)
			misalignedCopyReleasesPagesSafely(t)
		})
	}
}

func misalignedCopyReleasesPagesSafely(t *testing.T) {
	const n = 5000 // 20000 bytes: whole pages inside, partial ones at the ends
	words := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(words[4*i:], uint32(i*2654435761))
	}
	hdr := []byte(fmt.Sprintf(`{"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},`+
		`"w":{"dtype":"U32","shape":[%d],"data_offsets":[1,%d]},`+
		`"tail":{"dtype":"U8","shape":[3],"data_offsets":[%d,%d]}}`, n, 1+4*n, 1+4*n, 4+4*n))
	for (8+len(hdr))%8 != 0 {
		hdr = append(hdr, ' ')
	}
	data := append(append([]byte{0xAB}, words...), 1, 2, 3)
	f, err := Open(writeTemp(t, "misaligned.safetensors", assemble(hdr, data)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The neighbour shares the last page of w's bytes; a write through its
	// view lives only in this process's copy of that page, so handing back
	// a page that is not wholly w's would lose it.
	tail, _, _ := f.Raw("tail")
	tail[0] = 9
	for pass := range 2 {
		got, _, err := f.Uint32("w")
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range got {
			if want := uint32(i * 2654435761); v != want {
				t.Fatalf("pass %d: word %d is %#x, want %#x", pass, i, v, want)
			}
		}
		if raw, _, _ := f.Raw("tail"); !bytes.Equal(raw, []byte{9, 2, 3}) {
			t.Fatalf("pass %d: the neighbouring tensor reads %v", pass, raw)
		}
	}
}

func TestClose(t *testing.T) {
	f, err := Open(writeTemp(t, "c.safetensors", build(t, nil, spec{"x", "F32", []int{1}, f32Bytes(1)})))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.Tensor("x"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Tensor after Close: %v", err)
	}
}

// TestBadFiles builds one broken file per check Open makes and looks for an
// error that names the file and the problem.
func TestBadFiles(t *testing.T) {
	okData := make([]byte, 1792)
	entry := func(dtype, shape, offsets string) string {
		return `{"dtype":` + dtype + `,"shape":` + shape + `,"data_offsets":` + offsets + `}`
	}
	hugeLen := binary.LittleEndian.AppendUint64(nil, MaxHeaderSize+1)
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty file", nil, "file is 0 bytes, too short"},
		{"short file", []byte{1, 2, 3}, "file is 3 bytes, too short"},
		{"header too large", append(hugeLen, "{}"...), "header length 100000001 is larger than the 100000000-byte limit"},
		{"header past end", append(binary.LittleEndian.AppendUint64(nil, 50), "{}"...), "header length 50 runs past the end of the file (2 bytes after the length)"},
		{"invalid json", assemble([]byte(`{"a": `), nil), "header is not valid JSON"},
		{"not an object", assemble([]byte(`[1, 2]`), nil), "header is not a JSON object"},
		{"trailing data", assemble([]byte(`{} {}`), nil), "header has data after the JSON object"},
		{"entry not object", assemble([]byte(`{"w": [1]}`), nil), `tensor "w": entry is not a JSON object`},
		{"unknown dtype", assemble([]byte(`{"w":`+entry(`"F128"`, `[1]`, `[0,16]`)+`}`), make([]byte, 16)), `tensor "w": unknown dtype "F128"`},
		{"dtype not string", assemble([]byte(`{"w":`+entry(`4`, `[1]`, `[0,4]`)+`}`), make([]byte, 4)), `tensor "w": malformed "dtype": 4`},
		{"shape not array", assemble([]byte(`{"w":`+entry(`"F32"`, `{}`, `[0,4]`)+`}`), make([]byte, 4)), `tensor "w": malformed "shape": {}`},
		{"field names case-sensitive", assemble([]byte(`{"w":{"DType":"F32","shape":[1],"data_offsets":[0,4]}}`), make([]byte, 4)), `tensor "w": entry has no "dtype"`},
		{"invalid utf-8", assemble([]byte("{\"\xf9\":{}}"), nil), `header is not valid UTF-8`},
		{"missing dtype", assemble([]byte(`{"w":{"shape":[1],"data_offsets":[0,4]}}`), make([]byte, 4)), `tensor "w": entry has no "dtype"`},
		{"missing shape", assemble([]byte(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`), make([]byte, 4)), `tensor "w": entry has no "shape"`},
		{"missing offsets", assemble([]byte(`{"w":{"dtype":"F32","shape":[1]}}`), make([]byte, 4)), `tensor "w": entry has no "data_offsets"`},
		{"negative dim", assemble([]byte(`{"w":`+entry(`"F32"`, `[-1]`, `[0,4]`)+`}`), make([]byte, 4)), `tensor "w": shape [-1]: dimension 0: -1 is negative`},
		{"fractional dim", assemble([]byte(`{"w":`+entry(`"F32"`, `[1.5]`, `[0,4]`)+`}`), make([]byte, 4)), `dimension 0: 1.5 is not an integer`},
		{"three offsets", assemble([]byte(`{"w":`+entry(`"F32"`, `[1]`, `[0,4,8]`)+`}`), make([]byte, 8)), `data_offsets [0 4 8] must be two numbers`},
		{"negative offset", assemble([]byte(`{"w":`+entry(`"F32"`, `[1]`, `[-4,0]`)+`}`), make([]byte, 4)), `begin: -4 is negative`},
		{"begin after end", assemble([]byte(`{"w":`+entry(`"F32"`, `[0]`, `[4,0]`)+`}`), make([]byte, 4)), `data_offsets [4 0] begin after end`},
		{"past data", assemble([]byte(`{"w":`+entry(`"F32"`, `[2]`, `[0,8]`)+`}`), make([]byte, 4)), `data_offsets [0 8] run past the end of the data section (4 bytes)`},
		{"size mismatch", assemble([]byte(`{"model.norm.weight":`+entry(`"BF16"`, `[896]`, `[0,10]`)+`}`), okData),
			`model.safetensors: tensor "model.norm.weight": data_offsets [0 10] hold 10 bytes, shape [896] of BF16 needs 1792`},
		{"size overflow", assemble([]byte(`{"w":`+entry(`"F32"`, `[4294967296,4294967296]`, `[0,4]`)+`}`), make([]byte, 4)), `needs more bytes than an int holds`},
		{"overlap", assemble([]byte(`{"a":`+entry(`"F32"`, `[2]`, `[0,8]`)+`,"b":`+entry(`"F32"`, `[1]`, `[4,8]`)+`}`), make([]byte, 8)),
			`tensors "a" (data_offsets [0 8]) and "b" (data_offsets [4 8]) overlap`},
		{"duplicate name", assemble([]byte(`{"a":`+entry(`"F32"`, `[1]`, `[0,4]`)+`,"a":`+entry(`"F32"`, `[1]`, `[4,8]`)+`}`), make([]byte, 8)),
			`tensor "a" appears twice`},
		{"metadata not strings", assemble([]byte(`{"__metadata__":{"format":1}}`), nil), `__metadata__: value of "format" is a number, not a string`},
		{"metadata not object", assemble([]byte(`{"__metadata__":"pt"}`), nil), `__metadata__: not a JSON object of strings`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "model.safetensors", c.file)
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatalf("Open succeeded, want an error containing %q", c.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "safetensors: "+path+": ") {
				t.Errorf("error does not start with the file: %s", msg)
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q\ndoes not contain %q", msg, c.want)
			}
		})
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("Open of a missing file: %v", err)
	}
	if _, err := Open(t.TempDir()); err == nil {
		t.Error("Open of a directory succeeded")
	}
}

// TestGoodEdgeCases are files that look odd but are valid.
func TestGoodEdgeCases(t *testing.T) {
	cases := map[string][]byte{
		"no tensors":        assemble([]byte(`{}`), nil),
		"metadata only":     assemble([]byte(`{"__metadata__":{}}`), nil),
		"space padding":     assemble([]byte(`{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}      `), []byte{1, 2}),
		"gap and trailer":   assemble([]byte(`{"w":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}`), make([]byte, 10)),
		"empty at same pos": assemble([]byte(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`), make([]byte, 4)),
		"unknown field":     assemble([]byte(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":true}}`), []byte{1}),
	}
	for name, file := range cases {
		f, err := Open(writeTemp(t, "ok.safetensors", file))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		f.Close()
	}
}

// TestPythonCheckpoint reads a checkpoint written by Hugging Face
// transformers through the Python safetensors library (refgen/w1d5.py) and
// compares layer 0 with the float32 copies refgen stored beside it.
func TestPythonCheckpoint(t *testing.T) {
	root, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	layer := func(i int, rest string) string { return "model.layers." + string(rune('0'+i)) + "." + rest }
	var want []string
	for i := range 2 {
		for _, r := range []string{
			"input_layernorm.weight", "mlp.down_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
			"post_attention_layernorm.weight",
			"self_attn.k_proj.bias", "self_attn.k_proj.weight", "self_attn.o_proj.weight",
			"self_attn.q_proj.bias", "self_attn.q_proj.weight", "self_attn.v_proj.bias", "self_attn.v_proj.weight",
		} {
			want = append(want, layer(i, r))
		}
	}
	want = append([]string{"model.embed_tokens.weight"}, append(want, "model.norm.weight")...)

	for _, tc := range []struct {
		dir  string
		tied bool
	}{{"tied", true}, {"untied", false}} {
		f, err := Open(filepath.Join(root, "w1d5", "checkpoints", tc.dir, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		names := want
		if !tc.tied {
			names = append([]string{"lm_head.weight"}, want...)
		}
		if got := f.Names(); !slices.Equal(got, names) {
			t.Errorf("%s: names\n%v\nwant\n%v", tc.dir, got, names)
		}
		if got := f.Metadata(); got["format"] != "pt" {
			t.Errorf("%s: metadata %v, want format pt", tc.dir, got)
		}
		for name, shape := range map[string][]int{
			"model.embed_tokens.weight":              {256, 64},
			"model.layers.1.self_attn.k_proj.weight": {32, 64},
			"model.layers.1.mlp.down_proj.weight":    {64, 160},
			"model.norm.weight":                      {64},
		} {
			x, err := f.Tensor(name)
			if err != nil {
				t.Fatal(err)
			}
			if x.DType() != tensor.BFloat16 || !slices.Equal(x.Shape(), shape) {
				t.Errorf("%s: %s is %v %v, want bfloat16 %v", tc.dir, name, x.DType(), x.Shape(), shape)
			}
		}
		if tc.tied {
			checkLayer0(t, f)
		}
		f.Close()
	}
}

// checkLayer0 compares the bf16 weights of layer 0 with the float32 arrays of
// the W1D5 block fixture, which refgen took from the same checkpoint.
func checkLayer0(t *testing.T, f *File) {
	cases, err := fixture.Load("w1d5", "block")
	if err != nil {
		t.Fatal(err)
	}
	c := cases[0]
	for arr, name := range map[string]string{
		"wq": "self_attn.q_proj.weight", "bq": "self_attn.q_proj.bias",
		"wk": "self_attn.k_proj.weight", "bk": "self_attn.k_proj.bias",
		"wv": "self_attn.v_proj.weight", "bv": "self_attn.v_proj.bias",
		"wo": "self_attn.o_proj.weight", "w_gate": "mlp.gate_proj.weight",
		"w_up": "mlp.up_proj.weight", "w_down": "mlp.down_proj.weight",
		"w_input_norm": "input_layernorm.weight", "w_post_attention_norm": "post_attention_layernorm.weight",
	} {
		ref, err := c.Tensor(arr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.Tensor("model.layers.0." + name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Shape(), ref.Shape()) || !slices.Equal(got.Data(), ref.Data()) {
			t.Errorf("model.layers.0.%s (shape %v) differs from fixture %s (shape %v)", name, got.Shape(), arr, ref.Shape())
		}
	}
}
