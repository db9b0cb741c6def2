package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/tinyllm-go/tinyllm/internal/boundedfile"
)

// MaxJSONBytes is the most that is read of config.json,
// generation_config.json and model.safetensors.index.json. Real ones are a
// few kilobytes; the index of a model with thousands of tensors is a few
// hundred. A longer file is refused rather than read.
const MaxJSONBytes = 16 << 20

// indexName is the file that lists the shards of a sharded checkpoint.
const indexName = "model.safetensors.index.json"

// weightFileNames lists the weight files: those named by the index if there
// is one, else model.safetensors. Nothing else in the folder is opened, so a
// stray *.safetensors file (a download in progress, a different export) is
// never mistaken for part of the model.
func weightFileNames(dir string) ([]string, error) {
	indexPath := filepath.Join(dir, indexName)
	raw, err := boundedfile.Read(indexPath, MaxJSONBytes)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
			return nil, fmt.Errorf("checkpoint: %s has neither model.safetensors nor %s", dir, indexName)
		}
		return []string{"model.safetensors"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	names, err := parseIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", indexPath, err)
	}
	return names, nil
}

// parseIndex returns the distinct file names of an index's weight_map,
// sorted. Each must be a plain name of a .safetensors file in the folder:
// "../x.safetensors", "/abs/x.safetensors" or "sub/x.safetensors" would let
// an index read files outside the model folder, and are refused.
func parseIndex(raw []byte) ([]string, error) {
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, jsonError(err)
	}
	if len(index.WeightMap) == 0 {
		return nil, errors.New("weight_map is missing or empty")
	}
	seen := map[string]bool{}
	var names []string
	for tensor, file := range index.WeightMap {
		if !plainWeightFile(file) {
			return nil, fmt.Errorf("weight_map puts %q in %q: a shard must be a plain file name ending in .safetensors, in the model folder", tensor, file)
		}
		if !seen[file] {
			seen[file] = true
			names = append(names, file)
		}
	}
	slices.Sort(names)
	return names, nil
}

// plainWeightFile reports whether name is a file name with no folder part
// that stays inside the folder it is joined to, on this system and on any
// other (a backslash is a separator on Windows).
func plainWeightFile(name string) bool {
	return strings.HasSuffix(name, ".safetensors") && len(name) > len(".safetensors") &&
		!strings.ContainsAny(name, `/\:`) && filepath.IsLocal(name)
}

// jsonError restates a decoding error in the file's terms: the field and
// what it should hold, rather than the Go type it was decoded into.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		want := "a " + typeErr.Type.Kind().String()
		switch typeErr.Type.Kind() {
		case reflect.Int, reflect.Int64:
			want = "an integer written in digits, within 64 bits"
		case reflect.Float64:
			want = "a finite number"
		case reflect.Bool:
			want = "true or false"
		case reflect.Struct, reflect.Map:
			want = "an object"
		case reflect.Slice:
			want = "a list"
		}
		if typeErr.Field == "" {
			return fmt.Errorf("want %s, got %s", want, typeErr.Value)
		}
		field := typeErr.Field[strings.LastIndexByte(typeErr.Field, '.')+1:]
		return fmt.Errorf("%s must be %s, got %s", field, want, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("not valid JSON at byte %d: %v", syntaxErr.Offset, err)
	}
	return err
}
