package devtensor_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/safetensors"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
	"github.com/tinyllm-go/tinyllm/kernels"
	"github.com/tinyllm-go/tinyllm/kernels/devtensor"
	"github.com/tinyllm-go/tinyllm/kernels/kerneltest"
)

// TestModelWeightBytesMatchesAnMLXCheckpoint counts, for the small 4-bit
// checkpoint that mlx-lm wrote for the loader's tests, the bytes of every
// tensor in the file, and compares with what ModelWeightBytes predicts from
// the config alone.
func TestModelWeightBytesMatchesAnMLXCheckpoint(t *testing.T) {
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "testdata", "loader", "checkpoints", "q4")
	ck, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var inFile int64
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		size, _ := safetensors.DTypeSize(info.DType)
		n := int64(size)
		for _, d := range info.Shape {
			n *= int64(d)
		}
		inFile += n
	}
	q := ck.Config.Quantization
	if got := devtensor.ModelWeightBytes(ck.Config, q.Bits, q.GroupSize); got != inFile {
		t.Errorf("ModelWeightBytes = %d, the checkpoint's tensors hold %d bytes", got, inFile)
	}
}

func TestWeightBytes(t *testing.T) {
	for _, c := range []struct {
		n, k, bits, group int
		want              int64
	}{
		{896, 896, 16, 0, 896 * 896 * 2},
		{896, 896, 4, 64, 896*896/2 + 896*14*4},
		{4864, 896, 4, 128, 4864*896/2 + 4864*7*4},
	} {
		if got := devtensor.WeightBytes(c.n, c.k, c.bits, c.group); got != c.want {
			t.Errorf("WeightBytes(%d, %d, %d, %d) = %d, want %d", c.n, c.k, c.bits, c.group, got, c.want)
		}
	}
}

// TestGPUUploadAndCheckFits: weights and activations go up and come back
// bit for bit, bad input is refused, and an allocation larger than the
// device's free memory is refused before anything is allocated.
func TestGPUUploadAndCheckFits(t *testing.T) {
	d := kerneltest.Open(t)
	bits := []uint16{0x3F80, 0xC000, 0x4049, 0x0001, 0x7F7F, 0x8000}
	w, err := devtensor.UploadBF16(d, tensor.FromBF16(bits, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Free()
	got, err := kernels.Download[uint16](w.W, len(bits))
	if err != nil {
		t.Fatal(err)
	}
	for i := range bits {
		if got[i] != bits[i] {
			t.Fatalf("bf16 word %d came back %#x, want %#x", i, got[i], bits[i])
		}
	}
	if _, err := devtensor.UploadBF16(d, tensor.New([]float32{1, 2}, 1, 2)); err == nil {
		t.Error("UploadBF16 of a float32 tensor gave no error")
	}
	a, err := devtensor.NewActivations(d, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Free()
	x := tensor.New([]float32{1.5, -2, 3, 0.25, 7, -8}, 2, 3)
	if err := a.Upload(x); err != nil {
		t.Fatal(err)
	}
	back, err := a.Download()
	if err != nil {
		t.Fatal(err)
	}
	if back.Dim(0) != 2 || back.Data()[5] != -8 || back.Data()[0] != 1.5 {
		t.Errorf("activations came back as %v %v", back.Shape(), back.Data())
	}
	if err := a.Upload(tensor.New(make([]float32, 15), 5, 3)); err == nil {
		t.Error("uploading 5 rows into activations of 4 gave no error")
	}
	before := d.Stats()
	_, total, err := d.MemInfo()
	if err != nil {
		t.Fatal(err)
	}
	err = devtensor.CheckFits(d, total)
	if err == nil || !strings.Contains(err.Error(), "needed") {
		t.Errorf("CheckFits of the whole device: %v, want an error saying what is needed", err)
	}
	if _, err := devtensor.NewActivations(d, int(total/4/1024)+1, 1024); err == nil {
		t.Error("activations larger than the device were allocated")
	}
	if after := d.Stats(); after != before {
		t.Errorf("a refused allocation changed the device's live objects: %+v, then %+v", before, after)
	}
}
