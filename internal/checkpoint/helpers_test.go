package checkpoint

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/safetensors"
)

// q4Dir is refgen's MLX 4-bit copy of the tied checkpoint (groups of 32).
func q4Dir(t testing.TB) string {
	t.Helper()
	root, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "loader", "checkpoints", "q4")
}

// storedTensor is one tensor of a weight file: its header entry and bytes.
type storedTensor struct {
	spec safetensors.Spec
	data []byte
}

// readWeights returns every tensor of a safetensors file, in name order.
func readWeights(t *testing.T, path string) []storedTensor {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []storedTensor
	for _, name := range f.Names() {
		raw, info, err := f.Raw(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, storedTensor{safetensors.Spec{Name: name, DType: info.DType, Shape: info.Shape}, append([]byte(nil), raw...)})
	}
	return out
}

// writeWeights writes tensors to a safetensors file.
func writeWeights(t *testing.T, path string, ts []storedTensor) {
	t.Helper()
	specs := make([]safetensors.Spec, len(ts))
	for i, s := range ts {
		specs[i] = s.spec
	}
	err := safetensors.WriteFile(path, specs, map[string]string{"format": "pt"}, func(i int, w io.Writer) error {
		_, err := w.Write(ts[i].data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// editWeights rewrites dir/model.safetensors through edit, which may change
// a tensor in place or return false to drop it.
func editWeights(t *testing.T, dir string, edit func(s *storedTensor) bool) {
	t.Helper()
	path := filepath.Join(dir, "model.safetensors")
	var kept []storedTensor
	for _, s := range readWeights(t, path) {
		if edit(&s) {
			kept = append(kept, s)
		}
	}
	writeWeights(t, path, kept)
}

// without drops the named tensor.
func without(name string) func(s *storedTensor) bool {
	return func(s *storedTensor) bool { return s.spec.Name != name }
}
