package safetensors

import "sync/atomic"

var hugePages atomic.Bool

// UseHugePages chooses how files opened from now on hold their bytes. Off
// (the default), a file is memory-mapped: nothing is read until it is
// used. On, where the platform allows it (Linux with transparent huge
// pages not switched off), the whole file is read at Open into anonymous
// memory that the kernel backs with 2 MB pages.
//
// That matters to a program that streams all of its weights on every
// step, as a decode step does: through a map of 4 KB pages the CPU misses
// its address-translation cache about once per 4 KB read, which on a
// 2-core AMD EPYC took a tenth off the 4-bit engine's decode speed. The
// tinyllm command turns it on; a page that Open's copies release (see
// viewOf) is mapped back from the file, so reading it again still gives
// the file's bytes. Elsewhere the setting changes nothing.
func UseHugePages(on bool) { hugePages.Store(on) }
