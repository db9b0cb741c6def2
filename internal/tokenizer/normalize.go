package tokenizer

import (
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Hugging Face's NFC normalizer (the Rust crate unicode-normalization-alignments)
// carries Unicode 9.0 data; Go's norm package carries Unicode 15.0. Normalization
// is stable for characters that already existed, so the two differ only on
// characters added since 9.0 that take part in normalization: combining marks
// (non-zero canonical combining class), which Unicode 15 reorders and composes
// but Hugging Face treats as unknown characters, and the one new composition
// pair (Dives Akuru U+11935 U+11930 -> U+11938). To Hugging Face such a
// character is a starter that nothing reorders across or composes with.
//
// nfc reproduces that: it cuts the text at these characters, normalizes the
// pieces between them with Go's NFC, and keeps the characters as they are.
// The list was found by normalizing, with tokenizers' own NFC normalizer,
// probe strings around every character whose normalization properties are
// not trivial in Unicode 15 and comparing with Go; these are all the
// differences. (Characters new in Unicode 16 are unknown to both.)
var normBarriers = [...]struct{ lo, hi rune }{
	{0x07FD, 0x07FD}, {0x0898, 0x089F}, {0x08CA, 0x08D3}, {0x09FE, 0x09FE},
	{0x0C3C, 0x0C3C}, {0x0D3B, 0x0D3C}, {0x0EBA, 0x0EBA}, {0x1715, 0x1715},
	{0x1ABF, 0x1ACE}, {0x1DF6, 0x1DFA}, {0xA82C, 0xA82C}, {0x10D24, 0x10D27},
	{0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50}, {0x10F82, 0x10F85},
	{0x11070, 0x11070}, {0x1133B, 0x1133B}, {0x1145E, 0x1145E}, {0x11839, 0x1183A},
	{0x11930, 0x11930}, {0x1193D, 0x1193E}, {0x11943, 0x11943}, {0x119E0, 0x119E0},
	{0x11A34, 0x11A34}, {0x11A47, 0x11A47}, {0x11A99, 0x11A99}, {0x11D42, 0x11D42},
	{0x11D44, 0x11D45}, {0x11D97, 0x11D97}, {0x11F41, 0x11F42}, {0x16FF0, 0x16FF1},
	{0x1E08F, 0x1E08F}, {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF},
	{0x1E4EC, 0x1E4EF},
}

// isNormBarrier reports whether r is normalized as an unknown starter.
func isNormBarrier(r rune) bool {
	if r < normBarriers[0].lo {
		return false
	}
	lo, hi := 0, len(normBarriers)
	for lo < hi {
		m := (lo + hi) / 2
		switch e := normBarriers[m]; {
		case r < e.lo:
			hi = m
		case r > e.hi:
			lo = m + 1
		default:
			return true
		}
	}
	return false
}

// nfc normalizes s to NFC as Hugging Face tokenizers does. (The pieces are
// normalized separately: norm's Append functions would normalize across the
// seam.)
func nfc(s string) string {
	first := -1
	for i, r := range s {
		if r >= normBarriers[0].lo && isNormBarrier(r) {
			first = i
			break
		}
	}
	if first < 0 {
		return norm.NFC.String(s)
	}
	out := make([]byte, 0, len(s)+8)
	start := 0
	for i := first; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if isNormBarrier(r) {
			out = append(out, norm.NFC.String(s[start:i])...)
			out = append(out, s[i:i+n]...)
			start = i + n
		}
		i += n
	}
	out = append(out, norm.NFC.String(s[start:])...)
	return string(out)
}
