package safetensors

import "testing"

// TestHugePagesReadTheFile checks that UseHugePages takes effect on Linux
// (unless the kernel's huge pages are off): the file is held in a
// huge-page mapping, with the file's bytes.
func TestHugePagesReadTheFile(t *testing.T) {
	UseHugePages(true)
	defer UseHugePages(false)
	f, err := Open(writeTemp(t, "h.safetensors", build(t, nil, spec{"x", "F32", []int{3}, f32Bytes(1, 2, 3)})))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.m.(*hugeMapping); !ok && !thpOff {
		t.Fatalf("the file is held in a %T, want a *hugeMapping", f.m)
	}
	x, err := f.Tensor("x")
	if err != nil {
		t.Fatal(err)
	}
	if got := x.Data(); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Fatalf("x reads %v, want [1 2 3]", got)
	}
}

// TestFitsInMemory checks the guard that keeps a checkpoint too large for
// the machine's free memory mapped rather than copied.
func TestFitsInMemory(t *testing.T) {
	if !fitsInMemory(1 << 20) {
		t.Error("a 1 MB file does not fit in memory by /proc/meminfo's MemAvailable")
	}
	if fitsInMemory(1 << 62) {
		t.Error("a 4 EB file fits in memory")
	}
}
