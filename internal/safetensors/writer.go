package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Spec declares one tensor of a file to write: its name, safetensors dtype
// ("BF16", "F32", ...) and shape ([] for a scalar).
type Spec struct {
	Name  string
	DType string
	Shape []int
}

// size returns the tensor's size in bytes.
func (s Spec) size() (int, error) {
	elem, ok := dtypeSizes[s.DType]
	if !ok {
		return 0, fmt.Errorf("tensor %q: unknown dtype %q", s.Name, s.DType)
	}
	n, ok := byteSize(s.Shape, elem)
	if !ok {
		return 0, fmt.Errorf("tensor %q: bad shape %v", s.Name, s.Shape)
	}
	return n, nil
}

// Write writes a safetensors file to w. The header lists specs in the
// order given, their data laid end to end with no gaps (as the reference
// implementation requires); put wider dtypes first to keep every tensor
// aligned to its element size. fill is then called once per spec, in
// order, and must write exactly that tensor's bytes, little-endian and
// row-major: the data is streamed, so a file larger than memory can be
// written. metadata may be nil.
func Write(w io.Writer, specs []Spec, metadata map[string]string, fill func(i int, w io.Writer) error) error {
	sizes := make([]int, len(specs))
	seen := map[string]bool{}
	for i, s := range specs {
		if s.Name == "" || s.Name == "__metadata__" {
			return fmt.Errorf("safetensors: bad tensor name %q", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("safetensors: tensor %q declared twice", s.Name)
		}
		seen[s.Name] = true
		n, err := s.size()
		if err != nil {
			return fmt.Errorf("safetensors: %w", err)
		}
		sizes[i] = n
	}
	header, err := encodeHeader(specs, sizes, metadata)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	if _, err := bw.Write(prefix[:]); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if _, err := bw.Write(header); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	for i, s := range specs {
		cw := &countingWriter{w: bw}
		if err := fill(i, cw); err != nil {
			return fmt.Errorf("safetensors: writing tensor %q: %w", s.Name, err)
		}
		if cw.n != int64(sizes[i]) {
			return fmt.Errorf("safetensors: tensor %q: wrote %d bytes, its dtype and shape need %d", s.Name, cw.n, sizes[i])
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// WriteFile is Write to a file at path. It writes to a temporary file in
// the same folder and renames it into place, so an error (or a crash)
// never leaves a partial file under the final name.
func WriteFile(path string, specs []Spec, metadata map[string]string, fill func(i int, w io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = Write(f, specs, metadata, fill); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil { // CreateTemp made it private
		return fmt.Errorf("safetensors: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// encodeHeader returns the JSON header, padded with spaces to a multiple of
// 8 bytes so that the data section starts aligned.
func encodeHeader(specs []Spec, sizes []int, metadata map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString(`"__metadata__":{`)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(&b, k)
			b.WriteByte(':')
			writeJSON(&b, metadata[k])
		}
		b.WriteByte('}')
	}
	off := 0
	for i, s := range specs {
		if i > 0 || len(metadata) > 0 {
			b.WriteByte(',')
		}
		writeJSON(&b, s.Name)
		shape := s.Shape
		if shape == nil {
			shape = []int{}
		}
		entry := struct {
			DType       string `json:"dtype"`
			Shape       []int  `json:"shape"`
			DataOffsets [2]int `json:"data_offsets"`
		}{s.DType, shape, [2]int{off, off + sizes[i]}}
		b.WriteByte(':')
		writeJSON(&b, entry)
		off += sizes[i]
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: header of %d bytes is larger than the %d allowed", b.Len(), MaxHeaderSize)
	}
	return b.Bytes(), nil
}

func writeJSON(b *bytes.Buffer, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err) // strings, ints and this struct always encode
	}
	b.Write(raw)
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
