package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// Byte-level BPE works on bytes, but the vocabulary in tokenizer.json is
// written as text. GPT-2 solved this with a fixed bijection from the 256 byte
// values to 256 printable characters: printable Latin-1 bytes map to
// themselves, the others (controls, space, 0x7F-0xA0, 0xAD) to U+0100 onwards.
// So the token "Ġworld" is the bytes " world" (Ġ is U+0120, the image of 0x20).

// byteToRune is the GPT-2 bytes_to_unicode table; runeToByte its inverse.
var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
)

func init() {
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	n := 0
	for b := 0; b < 256; b++ {
		if printable(b) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// byteLevelString maps raw bytes to their vocabulary spelling.
func byteLevelString(raw string) string {
	var sb strings.Builder
	sb.Grow(2 * len(raw))
	for i := 0; i < len(raw); i++ {
		sb.WriteRune(byteToRune[raw[i]])
	}
	return sb.String()
}

// tokenBytes is what the ByteLevel decoder makes of one vocabulary token: the
// bytes its characters stand for, or, as in Hugging Face's decoder, the
// token's own UTF-8 if any character is outside the byte table.
func tokenBytes(tok string) []byte {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return []byte(tok)
		}
		out = append(out, b)
	}
	return out
}

// decodeLossy turns bytes into text the way Rust's String::from_utf8_lossy and
// Python's bytes.decode("utf-8", "replace") do: each maximal ill-formed
// subpart becomes one U+FFFD (Unicode §3.9, "substitution of maximal
// subparts"). Go's own conversions differ (one U+FFFD per bad byte, or one per
// run), so the rule is written out here.
//
// With final false, a sequence cut off by the end of b that could still be
// completed by more bytes is not decoded: n reports how many bytes were
// consumed, and the caller keeps b[n:] for later.
func decodeLossy(sb *strings.Builder, b []byte, final bool) (n int) {
	i := 0
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			sb.WriteByte(c)
			i++
			continue
		}
		size, lo, hi := seqInfo(c)
		if size == 0 { // C0, C1, F5..FF, or a stray continuation byte
			sb.WriteRune(utf8.RuneError)
			i++
			continue
		}
		j := i + 1
		for k := 1; k < size; k++ {
			if j >= len(b) {
				if !final {
					return i
				}
				break
			}
			x := b[j]
			if k == 1 {
				if x < lo || x > hi {
					break
				}
			} else if x < 0x80 || x > 0xBF {
				break
			}
			j++
		}
		if j-i == size {
			sb.Write(b[i:j])
		} else {
			sb.WriteRune(utf8.RuneError)
		}
		i = j
	}
	return i
}

// seqInfo returns the length of the UTF-8 sequence that lead byte c starts
// and the valid range of its second byte (Unicode Table 3-7); size 0 means c
// cannot start a sequence.
func seqInfo(c byte) (size int, lo, hi byte) {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 2, 0x80, 0xBF
	case c == 0xE0:
		return 3, 0xA0, 0xBF
	case c == 0xED:
		return 3, 0x80, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		return 3, 0x80, 0xBF
	case c == 0xF0:
		return 4, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		return 4, 0x80, 0xBF
	case c == 0xF4:
		return 4, 0x80, 0x8F
	}
	return 0, 0, 0
}
