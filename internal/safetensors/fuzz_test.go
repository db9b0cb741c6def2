package safetensors

import (
	"slices"
	"testing"
	"unsafe"
)

// FuzzParseHeader feeds arbitrary headers and data-section lengths to the
// header parser. It must never panic, and whatever it accepts must satisfy
// every promise Open makes about a header. The seed corpus is in
// testdata/fuzz/FuzzParseHeader (real Hugging Face headers among them); run
// more with `go test -fuzz FuzzParseHeader ./internal/safetensors`.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte(`{}`), uint32(0))
	f.Add([]byte(`{"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}}`), uint32(12))
	f.Fuzz(func(t *testing.T, raw []byte, dataLen uint32) {
		h, err := parseHeader("fuzz", raw, int(dataLen))
		if err != nil {
			return
		}
		if !slices.IsSorted(h.names) || len(h.names) != len(h.entries) {
			t.Fatalf("names %v do not match entries", h.names)
		}
		for _, name := range h.names {
			e := h.entries[name]
			size, ok := dtypeSizes[e.dtype]
			if !ok {
				t.Fatalf("%q: accepted unknown dtype %q", name, e.dtype)
			}
			if e.begin < 0 || e.begin > e.end || e.end > int(dataLen) {
				t.Fatalf("%q: accepted offsets [%d %d] with %d data bytes", name, e.begin, e.end, dataLen)
			}
			n := size
			for _, d := range e.shape {
				if d < 0 {
					t.Fatalf("%q: accepted shape %v", name, e.shape)
				}
				n *= d
			}
			if n != e.end-e.begin {
				t.Fatalf("%q: accepted shape %v of %s in %d bytes", name, e.shape, e.dtype, e.end-e.begin)
			}
		}
		for _, a := range h.entries {
			for _, b := range h.entries {
				if a != b && a.begin < b.end && b.begin < a.end {
					t.Fatalf("accepted overlapping %q [%d %d] and %q [%d %d]", a.name, a.begin, a.end, b.name, b.begin, b.end)
				}
			}
		}
	})
}

func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
