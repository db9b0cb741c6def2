package quantize

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/modelfolder"
	"github.com/tinyllm-go/tinyllm/internal/safetensors"
)

func fixtureCheckpoint(t *testing.T, name string) string {
	t.Helper()
	root, err := fixture.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "quantize", "checkpoints", name)
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func modelFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, name := range listDir(t, dir) {
		if modelfolder.IsModelFile(name) {
			raw, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			files[name] = string(raw)
		}
	}
	return files
}

// TestFolderInterrupted cancels the run as the first weights are written:
// at no moment do the model files of the output folder change, and
// afterwards nothing of the new model is left, beside a model that
// Overwrite would have replaced.
func TestFolderInterrupted(t *testing.T) {
	in := fixtureCheckpoint(t, "bf16_tied")
	for _, overwrite := range []bool{false, true} {
		out := t.TempDir()
		if overwrite {
			if err := Folder(context.Background(), in, out, Options{Bits: 8, GroupSize: 128}); err != nil {
				t.Fatal(err)
			}
		}
		before, names := modelFiles(t, out), listDir(t, out)
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		err := Folder(ctx, in, out, Options{Bits: 4, GroupSize: 64, Overwrite: overwrite, Progress: func(done, total int64) {
			calls++
			if now := modelFiles(t, out); !mapsEqual(now, before) {
				t.Errorf("overwrite %v: the model files of the output changed before the new model was complete", overwrite)
			}
			cancel()
		}})
		cancel()
		if !errors.Is(err, context.Canceled) || calls == 0 {
			t.Fatalf("overwrite %v: got %v after %d progress calls, want context.Canceled", overwrite, err, calls)
		}
		if after := listDir(t, out); !slices.Equal(after, names) || !mapsEqual(modelFiles(t, out), before) {
			t.Errorf("overwrite %v: the output holds %v, want %v as before", overwrite, after, names)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestFolderRefusesToLoseTensors: a tensor the Qwen2 model does not have
// would be lost, so the input is refused by its name; and a folder whose
// weights are already packed is refused before anything is written.
func TestFolderRefusesToLoseTensors(t *testing.T) {
	src := fixtureCheckpoint(t, "bf16_tied")
	in := t.TempDir()
	for _, name := range []string{"config.json", "generation_config.json", "tokenizer.json"} {
		raw, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(in, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := safetensors.Open(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var specs []safetensors.Spec
	var data [][]byte
	for _, name := range f.Names() {
		raw, info, _ := f.Raw(name)
		specs = append(specs, safetensors.Spec{Name: name, DType: info.DType, Shape: info.Shape})
		data = append(data, raw)
	}
	norm, info, _ := f.Raw("model.norm.weight")
	specs = append(specs, safetensors.Spec{Name: "model.vision_tower.proj.weight", DType: info.DType, Shape: info.Shape})
	data = append(data, norm)
	if err := safetensors.WriteFile(filepath.Join(in, "model.safetensors"), specs, nil, func(i int, w io.Writer) error {
		_, err := w.Write(data[i])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	err = Folder(context.Background(), in, out, Options{Bits: 4, GroupSize: 64})
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "model.vision_tower.proj.weight") || !strings.Contains(err.Error(), "would lose it") {
		t.Fatalf("got %v, want a refusal naming model.vision_tower.proj.weight", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused run created %s (%v)", out, err)
	}
}
