package npy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// writeNpy writes a version 1.0 .npy file by hand (magic, header dict padded
// to 64 bytes, little-endian payload), so the reader is tested against the
// format itself rather than against the library it wraps.
func writeNpy(t *testing.T, descr string, shape []int, data any) string {
	t.Helper()
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	shapeStr := strings.Join(dims, ", ")
	if len(shape) == 1 {
		shapeStr += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shapeStr)
	total := 10 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	if err := binary.Write(&b, binary.LittleEndian, uint16(len(header))); err != nil {
		t.Fatal(err)
	}
	b.WriteString(header)
	if err := binary.Write(&b, binary.LittleEndian, data); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "a.npy")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadDTypes(t *testing.T) {
	f32 := []float32{1, -2.5, 3, 4, 5, 6}
	a, err := ReadFile(writeNpy(t, "<f4", []int{2, 3}, f32))
	if err != nil {
		t.Fatal(err)
	}
	x, err := a.Tensor()
	if err != nil {
		t.Fatal(err)
	}
	if got := x.Shape(); len(got) != 2 || got[0] != 2 || got[1] != 3 || x.At(0, 1) != -2.5 {
		t.Errorf("float32: shape %v, x[0,1] = %v", got, x.At(0, 1))
	}

	a, err = ReadFile(writeNpy(t, "<i8", []int{3}, []int64{7, -3, 1 << 20}))
	if err != nil {
		t.Fatal(err)
	}
	ints, err := a.Ints()
	if err != nil || ints[1] != -3 || ints[2] != 1<<20 {
		t.Errorf("int64: %v %v", ints, err)
	}

	a, err = ReadFile(writeNpy(t, "<u4", []int{2}, []uint32{1, 2}))
	if err != nil || a.DType != "uint32" || a.Uint32[1] != 2 {
		t.Errorf("uint32: %+v %v", a, err)
	}

	a, err = ReadFile(writeNpy(t, "|b1", []int{3}, []bool{true, false, true}))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := a.Tensor()
	if b.At(0) != 1 || b.At(1) != 0 {
		t.Errorf("bool as tensor: %v", b)
	}
}

func TestReadRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.npy")
	if err := os.WriteFile(bad, []byte("not a numpy file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(bad); err == nil || !strings.Contains(err.Error(), "bad.npy") {
		t.Errorf("garbage file: err = %v, want one naming the file", err)
	}
	if _, err := ReadFile(writeNpy(t, "<f8", []int{2}, []float64{1, 2})); err == nil || !strings.Contains(err.Error(), "<f8") {
		t.Errorf("float64 file: err = %v, want one naming the dtype", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.npy")); err == nil {
		t.Error("missing file gave no error")
	}
	// A header that promises more data than the file holds.
	p := writeNpy(t, "<f4", []int{4}, []float32{1, 2, 3, 4})
	data, _ := os.ReadFile(p)
	if err := os.WriteFile(p, data[:len(data)-8], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(p); err == nil {
		t.Error("truncated file gave no error")
	}
	a := &Array{DType: "int64", Int64: []int64{1 << 30}, Shape: []int{1}}
	if _, err := a.Tensor(); err == nil {
		t.Error("int64 beyond 2^24 converted silently")
	}
}
