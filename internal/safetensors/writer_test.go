package safetensors

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

func TestWriteFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	specs := []Spec{
		{Name: "w.f32", DType: "F32", Shape: []int{2, 3}},
		{Name: "w.bf16", DType: "BF16", Shape: []int{3}},
		{Name: "scalar", DType: "F32"},
		{Name: "empty", DType: "BF16", Shape: []int{0, 4}},
	}
	f32 := []float32{1, 2, 3, 4, 5, 6}
	bf := []uint16{tensor.BF16FromFloat32(1.5), tensor.BF16FromFloat32(-2), 0}
	fill := func(i int, w io.Writer) error {
		switch i {
		case 0:
			return binary.Write(w, binary.LittleEndian, f32)
		case 1:
			return binary.Write(w, binary.LittleEndian, bf)
		case 2:
			return binary.Write(w, binary.LittleEndian, float32(7))
		}
		return nil
	}
	require.NoError(t, WriteFile(path, specs, map[string]string{"format": "pt"}, fill))

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, []string{"empty", "scalar", "w.bf16", "w.f32"}, f.Names())
	require.Equal(t, map[string]string{"format": "pt"}, f.Metadata())
	w, err := f.Tensor("w.f32")
	require.NoError(t, err)
	require.Equal(t, []int{2, 3}, w.Shape())
	require.Equal(t, f32, w.Data())
	w, err = f.Tensor("w.bf16")
	require.NoError(t, err)
	require.Equal(t, tensor.BFloat16, w.DType())
	require.Equal(t, []float32{1.5, -2, 0}, w.Data())
	w, err = f.Tensor("scalar")
	require.NoError(t, err)
	require.Equal(t, float32(7), w.Item())
	info, ok := f.Info("empty")
	require.True(t, ok)
	require.Equal(t, []int{0, 4}, info.Shape)

	// The header is padded so the data section starts 8-byte aligned.
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Zero(t, binary.LittleEndian.Uint64(raw)%8)
}

func TestWriteErrors(t *testing.T) {
	one := []Spec{{Name: "x", DType: "F32", Shape: []int{2}}}
	short := func(int, io.Writer) error { return nil }
	var buf bytes.Buffer
	require.ErrorContains(t, Write(&buf, one, nil, short), `tensor "x": wrote 0 bytes, its dtype and shape need 8`)
	require.ErrorContains(t, Write(&buf, []Spec{{Name: "x", DType: "Q4"}}, nil, short), `unknown dtype "Q4"`)
	require.ErrorContains(t, Write(&buf, append(one, one...), nil, short), `"x" declared twice`)
	require.ErrorContains(t, Write(&buf, []Spec{{Name: "x", DType: "F32", Shape: []int{-1}}}, nil, short), "bad shape")

	// A failed WriteFile leaves nothing behind.
	dir := t.TempDir()
	require.Error(t, WriteFile(filepath.Join(dir, "m.safetensors"), one, nil, short))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries)
}
