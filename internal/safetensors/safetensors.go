// Package safetensors reads .safetensors files, the weight format of Hugging
// Face checkpoints (and of MLX ones).
//
// A safetensors file is three parts:
//
//	[8 bytes]  N, the length of the header, unsigned little-endian
//	[N bytes]  a JSON object: tensor name -> {"dtype", "shape", "data_offsets"},
//	           plus an optional "__metadata__" object of string -> string
//	[rest]     the data section: every tensor's bytes, little-endian, row-major
//
// data_offsets [begin, end] are byte offsets into the data section (not into
// the file). Open memory-maps the file and checks the whole header before it
// returns: a File that opened is consistent, so reading a tensor afterwards
// can only fail for a wrong name or an unsupported dtype.
//
//	f, err := safetensors.Open("model.safetensors")
//	if err != nil { ... }
//	defer f.Close()
//	w, err := f.Tensor("model.norm.weight") // bfloat16, shares the mapped bytes
//
// Tensors are not copied out of the file where that can be avoided: a
// BF16 or F16 tensor (and an aligned F32 one) is a view of the mapping, so a
// multi-gigabyte checkpoint costs page cache, not heap. The mapping is
// private: writing through such a view changes this process's copy only,
// never the file. A view is valid until Close; keep the File open as long as
// any tensor read from it is in use.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tinyllm-go/tinyllm/internal/boundedfile"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// MaxHeaderSize is the largest header Open accepts, as in the reference
// implementation: a header is a few hundred bytes per tensor, so anything
// near this is a corrupt length rather than a real file.
const MaxHeaderSize = 100_000_000

// dtypeSizes lists the element types of the safetensors format with their
// size in bytes. Tensor reads F32, BF16 and F16; the rest are recognised so
// that a file holding them (MLX 4-bit checkpoints store packed weights as
// U32) still opens and can be read raw.
var dtypeSizes = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
	"U16": 2, "I16": 2, "F16": 2, "BF16": 2,
	"U32": 4, "I32": 4, "F32": 4,
	"U64": 8, "I64": 8, "F64": 8, "C64": 8,
}

// DTypeSize returns the size in bytes of one element of a safetensors dtype
// ("BF16" -> 2), and false for a name the format does not define.
func DTypeSize(dtype string) (int, bool) {
	n, ok := dtypeSizes[dtype]
	return n, ok
}

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	DType string // safetensors name: "F32", "BF16", "F16", "U32", ...
	Shape []int  // [] for a scalar
}

// entry is a validated header entry; begin and end are offsets into the data
// section.
type entry struct {
	name       string
	dtype      string
	shape      []int
	begin, end int
}

// header is a parsed and validated JSON header.
type header struct {
	entries  map[string]*entry
	names    []string // sorted
	metadata map[string]string
}

// File is an open safetensors file.
type File struct {
	path       string
	m          mapping
	data       []byte // the data section, a sub-slice of the mapping
	h          *header
	headerSize int
	closed     bool
}

// Open maps the file at path and validates its header: the length is within
// the file and below MaxHeaderSize, the JSON is well formed, every dtype is
// known, every tensor's bytes lie inside the data section and match its shape,
// and no two tensors overlap. Errors name the file and, where there is one,
// the tensor.
func Open(path string) (*File, error) {
	m, err := mapFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	h, start, err := parseFile(path, m.bytes())
	if err != nil {
		m.close()
		return nil, err
	}
	return &File{path: path, m: m, data: m.bytes()[start:], h: h, headerSize: start - 8}, nil
}

// parseFile validates the header of a whole file's bytes and returns it with
// the offset where the data section starts.
func parseFile(path string, buf []byte) (*header, int, error) {
	if len(buf) < 8 {
		return nil, 0, fmt.Errorf("safetensors: %s: file is %d bytes, too short for the 8-byte header length", path, len(buf))
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	if n > MaxHeaderSize {
		return nil, 0, fmt.Errorf("safetensors: %s: header length %d is larger than the %d-byte limit (corrupt, or not a safetensors file)", path, n, MaxHeaderSize)
	}
	if n > uint64(len(buf)-8) {
		return nil, 0, fmt.Errorf("safetensors: %s: header length %d runs past the end of the file (%d bytes after the length)", path, n, len(buf)-8)
	}
	start := 8 + int(n)
	h, err := parseHeader(path, buf[8:start], len(buf)-start)
	if err != nil {
		return nil, 0, err
	}
	return h, start, nil
}

// parseHeader decodes and validates the JSON header of a file whose data
// section is dataLen bytes long. name is the file, for error messages.
func parseHeader(name string, raw []byte, dataLen int) (*header, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("safetensors: %s: "+format, append([]any{name}, args...)...)
	}
	if dataLen < 0 {
		return nil, fail("negative data section length %d", dataLen)
	}
	if !utf8.Valid(raw) {
		return nil, fail("header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fail("header is not valid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fail("header is not a JSON object")
	}
	h := &header{entries: map[string]*entry{}, metadata: map[string]string{}}
	seenMeta := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fail("header is not valid JSON: %v", err)
		}
		key := tok.(string) // object keys are always strings
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fail("header is not valid JSON: %v", err)
		}
		if key == "__metadata__" {
			if seenMeta {
				return nil, fail("__metadata__ appears twice")
			}
			seenMeta = true
			if err := parseMetadata(val, h.metadata); err != nil {
				return nil, fail("__metadata__: %v", err)
			}
			continue
		}
		if _, dup := h.entries[key]; dup {
			return nil, fail("tensor %q appears twice in the header", key)
		}
		e, err := parseEntry(key, val, dataLen)
		if err != nil {
			return nil, fail("tensor %q: %v", key, err)
		}
		h.entries[key] = e
		h.names = append(h.names, key)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fail("header is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		// Whitespace padding after the object is allowed (writers use it to
		// align the data section); anything else is not.
		return nil, fail("header has data after the JSON object")
	}
	slices.Sort(h.names)
	if err := checkOverlaps(h); err != nil {
		return nil, fail("%v", err)
	}
	return h, nil
}

func parseMetadata(raw json.RawMessage, into map[string]string) error {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return errors.New("not a JSON object of strings")
	}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("value of %q is %s, not a string", k, jsonKind(v))
		}
		into[k] = s
	}
	return nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64, json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func parseEntry(name string, raw json.RawMessage, dataLen int) (*entry, error) {
	// Decoded through a map rather than a struct: encoding/json matches
	// struct fields case-insensitively, and "DType" is not "dtype".
	var fields map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &fields) != nil {
		return nil, errors.New("entry is not a JSON object")
	}
	var r struct {
		DType       *string
		Shape       *[]json.Number
		DataOffsets *[]json.Number
	}
	for key, dst := range map[string]any{"dtype": &r.DType, "shape": &r.Shape, "data_offsets": &r.DataOffsets} {
		v, ok := fields[key]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return nil, fmt.Errorf("malformed %q: %s", key, v)
		}
	}
	switch {
	case r.DType == nil:
		return nil, errors.New(`entry has no "dtype"`)
	case r.Shape == nil:
		return nil, errors.New(`entry has no "shape"`)
	case r.DataOffsets == nil:
		return nil, errors.New(`entry has no "data_offsets"`)
	}
	size, ok := dtypeSizes[*r.DType]
	if !ok {
		return nil, fmt.Errorf("unknown dtype %q", *r.DType)
	}
	e := &entry{name: name, dtype: *r.DType, shape: make([]int, len(*r.Shape))}
	for i, d := range *r.Shape {
		v, err := nonNegInt(d)
		if err != nil {
			return nil, fmt.Errorf("shape %v: dimension %d: %v", *r.Shape, i, err)
		}
		e.shape[i] = v
	}
	offs := *r.DataOffsets
	if len(offs) != 2 {
		return nil, fmt.Errorf("data_offsets %v must be two numbers [begin, end]", offs)
	}
	var err error
	if e.begin, err = nonNegInt(offs[0]); err != nil {
		return nil, fmt.Errorf("data_offsets %v: begin: %v", offs, err)
	}
	if e.end, err = nonNegInt(offs[1]); err != nil {
		return nil, fmt.Errorf("data_offsets %v: end: %v", offs, err)
	}
	if e.begin > e.end {
		return nil, fmt.Errorf("data_offsets [%d %d] begin after end", e.begin, e.end)
	}
	if e.end > dataLen {
		return nil, fmt.Errorf("data_offsets [%d %d] run past the end of the data section (%d bytes)", e.begin, e.end, dataLen)
	}
	have := e.end - e.begin
	need, ok := byteSize(e.shape, size)
	if !ok || need != have {
		needs := fmt.Sprint(need)
		if !ok {
			needs = "more bytes than an int holds"
		}
		return nil, fmt.Errorf("data_offsets [%d %d] hold %d bytes, shape %v of %s needs %s", e.begin, e.end, have, e.shape, e.dtype, needs)
	}
	return e, nil
}

// nonNegInt converts a JSON number to a non-negative int, rejecting
// fractions, exponents that do not give an integer, and overflow.
func nonNegInt(n json.Number) (int, error) {
	v, err := n.Int64()
	if err != nil {
		return 0, fmt.Errorf("%s is not an integer", n)
	}
	if v < 0 {
		return 0, fmt.Errorf("%d is negative", v)
	}
	if uint64(v) > uint64(math.MaxInt) {
		return 0, fmt.Errorf("%d does not fit an int", v)
	}
	return int(v), nil
}

// byteSize returns product(shape) * elemSize, and false if that overflows an
// int. A zero dimension makes the size zero whatever the other dimensions are.
func byteSize(shape []int, elemSize int) (int, bool) {
	if slices.Contains(shape, 0) {
		return 0, true
	}
	n := elemSize
	for _, d := range shape {
		if n > math.MaxInt/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// checkOverlaps rejects two non-empty tensors sharing a byte. Gaps between
// tensors are allowed (the format does not need them, but they do no harm).
func checkOverlaps(h *header) error {
	es := make([]*entry, 0, len(h.entries))
	for _, name := range h.names {
		if e := h.entries[name]; e.end > e.begin {
			es = append(es, e)
		}
	}
	slices.SortStableFunc(es, func(a, b *entry) int { return a.begin - b.begin })
	for i := 1; i < len(es); i++ {
		if p, e := es[i-1], es[i]; e.begin < p.end {
			return fmt.Errorf("tensors %q (data_offsets [%d %d]) and %q (data_offsets [%d %d]) overlap",
				p.name, p.begin, p.end, e.name, e.begin, e.end)
		}
	}
	return nil
}

// HeaderSize returns the length in bytes of the file's JSON header. Parsing
// a header costs several times its length in memory, so a reader of many
// files (the shards of one checkpoint) can bound their sum.
func (f *File) HeaderSize() int { return f.headerSize }

// Path returns the path the file was opened with.
func (f *File) Path() string { return f.path }

// Names returns the tensor names in sorted order.
func (f *File) Names() []string { return slices.Clone(f.h.names) }

// Info returns the dtype and shape of a tensor, and false if the file has
// no tensor of that name.
func (f *File) Info(name string) (TensorInfo, bool) {
	e, ok := f.h.entries[name]
	if !ok {
		return TensorInfo{}, false
	}
	return TensorInfo{DType: e.dtype, Shape: slices.Clone(e.shape)}, true
}

// Metadata returns a copy of the header's "__metadata__" (empty if absent);
// Hugging Face writes {"format": "pt"}.
func (f *File) Metadata() map[string]string {
	out := make(map[string]string, len(f.h.metadata))
	for k, v := range f.h.metadata {
		out[k] = v
	}
	return out
}

// lookup finds a tensor, failing with the file and tensor named.
func (f *File) lookup(name string) (*entry, error) {
	if f.closed {
		return nil, fmt.Errorf("safetensors: %s: file is closed", f.path)
	}
	e, ok := f.h.entries[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q%s", f.path, name, f.nearby(name))
	}
	return e, nil
}

// nearby suggests names sharing the requested one's last component, which
// catches the usual mistake of a wrong prefix ("lm_head.weight" in a tied
// checkpoint, "layers.0..." without "model.").
func (f *File) nearby(name string) string {
	last := name[strings.LastIndexByte(name, '.')+1:]
	var near []string
	for _, n := range f.h.names {
		if strings.Contains(n, name) || strings.Contains(name, n) {
			near = append(near, n)
		}
	}
	if len(near) == 0 && last != "" {
		for _, n := range f.h.names {
			if strings.HasSuffix(n, "."+last) && len(near) < 3 {
				near = append(near, n)
			}
		}
	}
	if len(near) == 0 {
		return fmt.Sprintf(" (the file has %d tensors)", len(f.h.names))
	}
	if len(near) > 3 {
		near = near[:3]
	}
	return fmt.Sprintf(" (similar: %s)", strings.Join(near, ", "))
}

// Raw returns the bytes of a tensor exactly as stored (little-endian,
// row-major) together with its info, whatever the dtype. The slice shares
// the mapping.
func (f *File) Raw(name string) ([]byte, TensorInfo, error) {
	e, err := f.lookup(name)
	if err != nil {
		return nil, TensorInfo{}, err
	}
	return f.data[e.begin:e.end:e.end], TensorInfo{DType: e.dtype, Shape: slices.Clone(e.shape)}, nil
}

// Tensor returns a tensor as a tensor.Tensor of the same element type:
// F32 gives a Float32 tensor, BF16 a BFloat16 one and F16 a Float16 one,
// sharing the mapped bytes wherever their alignment allows (see the package
// comment). Other dtypes are an error: read packed weights with Uint32 or Raw.
func (f *File) Tensor(name string) (*tensor.Tensor, error) {
	e, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	b := f.data[e.begin:e.end:e.end]
	var t *tensor.Tensor
	switch e.dtype {
	case "F32":
		t = tensor.New(viewOf[float32](f, b), numelOf(e.shape))
	case "BF16":
		t = tensor.FromBF16(viewOf[uint16](f, b), numelOf(e.shape))
	case "F16":
		t = tensor.FromF16(viewOf[uint16](f, b), numelOf(e.shape))
	default:
		hint := ""
		if e.dtype == "U32" {
			hint = " (packed quantized weights? read them with Uint32)"
		}
		return nil, fmt.Errorf("safetensors: %s: tensor %q has dtype %s; Tensor reads F32, BF16 and F16%s", f.path, name, e.dtype, hint)
	}
	// Built 1-D above, then given its real shape (which may be [] for a scalar).
	return tensor.Reshape(t, e.shape...), nil
}

// Uint32 returns a U32 tensor's elements and shape: the raw form of MLX
// 4-bit packed weights. The slice shares the mapping where alignment allows.
func (f *File) Uint32(name string) ([]uint32, []int, error) {
	e, err := f.lookup(name)
	if err != nil {
		return nil, nil, err
	}
	if e.dtype != "U32" {
		return nil, nil, fmt.Errorf("safetensors: %s: tensor %q has dtype %s, not U32", f.path, name, e.dtype)
	}
	return viewOf[uint32](f, f.data[e.begin:e.end:e.end]), slices.Clone(e.shape), nil
}

// Close unmaps the file. Tensors that share the mapping must not be used
// afterwards. Closing twice is harmless.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.data = nil
	if err := f.m.close(); err != nil {
		return fmt.Errorf("safetensors: %s: %w", f.path, err)
	}
	return nil
}

func numelOf(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// littleEndian reports whether this machine stores numbers the way the file
// does, so that the file's bytes can be reinterpreted in place.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// viewOf is view for bytes of f's data section. When view had to copy, the
// mapped pages of b are handed back to the operating system: they would
// otherwise stay resident beside the copy and count twice towards the
// process's memory (an MLX file whose header leaves its data section
// misaligned would need the checkpoint's size twice over).
func viewOf[E uint16 | uint32 | float32](f *File, b []byte) []E {
	out := view[E](b)
	if len(out) > 0 && unsafe.Pointer(&out[0]) != unsafe.Pointer(&b[0]) {
		f.m.release(b)
	}
	return out
}

// view reinterprets little-endian bytes as a slice of E without copying when
// the bytes are suitably aligned and the machine is little-endian, and
// decodes a copy otherwise. len(b) must be a multiple of E's size (the header
// check guarantees it).
func view[E uint16 | uint32 | float32](b []byte) []E {
	var zero E
	size := int(unsafe.Sizeof(zero))
	n := len(b) / size
	if n == 0 {
		return []E{}
	}
	if littleEndian && uintptr(unsafe.Pointer(&b[0]))%uintptr(size) == 0 {
		return unsafe.Slice((*E)(unsafe.Pointer(&b[0])), n)
	}
	out := make([]E, n)
	for i := range out {
		switch p := any(&out[i]).(type) {
		case *uint16:
			*p = binary.LittleEndian.Uint16(b[2*i:])
		case *uint32:
			*p = binary.LittleEndian.Uint32(b[4*i:])
		case *float32:
			*p = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	}
	return out
}

// mapping is the file's bytes: a memory map where the platform has one, a
// plain read otherwise (see mmap_*.go).
type mapping interface {
	bytes() []byte
	close() error
	// release tells the operating system that the pages wholly inside b,
	// a part of bytes(), are not needed for now; reading them again
	// later still gives the file's bytes.
	release(b []byte)
}

// readMapping is the fallback: the whole file read into memory.
type readMapping struct{ b []byte }

func (r *readMapping) bytes() []byte  { return r.b }
func (r *readMapping) close() error   { r.b = nil; return nil }
func (r *readMapping) release([]byte) {}

func readWhole(path string) (mapping, error) {
	f, st, err := boundedfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := boundedfile.ReadAll(path, f, st.Size())
	if err != nil {
		return nil, err
	}
	return &readMapping{b: b}, nil
}
