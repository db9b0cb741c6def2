package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// qwen2Pattern is the Split pre-tokenizer pattern of Qwen2 (and Qwen2.5, Qwen3):
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)      1. English contractions, any case
//	[^\r\n\p{L}\p{N}]?\p{L}+          2. a word, with at most one leading non-letter (" the", "(foo")
//	\p{N}                             3. ONE digit: numbers are split digit by digit
//	 ?[^\s\p{L}\p{N}]+[\r\n]*         4. punctuation and symbols, an optional leading space, trailing newlines
//	\s*[\r\n]+                        5. whitespace ending in newlines
//	\s+(?!\S)                         6. whitespace not followed by a non-space (so " " stays for the next word)
//	\s+                               7. any other whitespace
//
// Hugging Face runs it with Oniguruma. Go's regexp has no lookahead (6), so
// splitQwen2 matches the alternatives by hand, in order, at each position:
// the first alternative that matches wins (leftmost-first, like a
// backtracking engine), and each quantifier is greedy with the backtracking
// that the pattern allows spelled out.
//
// Character classes follow Oniguruma's Unicode rules: \p{L} is general
// category L (unicode.IsLetter), \p{N} is Nd, Nl and No (unicode.IsNumber),
// and \s is U+0009-U+000D, U+0085 and categories Zs, Zl, Zp — the same set as
// unicode.IsSpace (so U+00A0 and U+3000 are spaces, U+200B is not). (?i) folds
// case with Unicode simple case folding, so "'ſ" (long s) is a contraction
// too. All of this was checked against tokenizers 0.23 for every code point,
// each in a probe string that exercises every alternative.
const qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// Character classes of the pattern.
const (
	clsOther   = iota // none of the below: punctuation, symbols, marks, controls
	clsLetter         // \p{L}
	clsNumber         // \p{N}
	clsSpace          // \s but not \r or \n
	clsNewline        // \r or \n (also \s)
)

var asciiClass [utf8.RuneSelf]uint8

func init() {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		asciiClass[r] = uint8(slowClass(r))
	}
}

func slowClass(r rune) int {
	switch {
	case r == '\r' || r == '\n':
		return clsNewline
	case unicode.IsSpace(r):
		return clsSpace
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case r >= unicode16Added[0].lo:
		// Binary search the characters that Unicode 16 added.
		lo, hi := 0, len(unicode16Added)
		for lo < hi {
			m := (lo + hi) / 2
			switch e := unicode16Added[m]; {
			case r < e.lo:
				hi = m
			case r > e.hi:
				lo = m + 1
			default:
				return int(e.class)
			}
		}
	}
	return clsOther
}

// unicode16Added lists the letters and numbers that are new in Unicode 16.0.
// Go's unicode tables are Unicode 15.0; the Oniguruma inside Hugging Face
// tokenizers (0.23) knows Unicode 16.0, so without these Go would class,
// say, Todhri letters as symbols and split words differently. The list was
// found by classifying every code point with tokenizers' own Split
// pre-tokenizer and comparing with Go: these are all the differences.
var unicode16Added = [...]struct {
	lo, hi rune
	class  uint8
}{
	{0x1C89, 0x1C8A, clsLetter},
	{0xA7CB, 0xA7CD, clsLetter},
	{0xA7DA, 0xA7DC, clsLetter},
	{0x105C0, 0x105F3, clsLetter},
	{0x10D40, 0x10D49, clsNumber},
	{0x10D4A, 0x10D65, clsLetter},
	{0x10D6F, 0x10D85, clsLetter},
	{0x10EC2, 0x10EC4, clsLetter},
	{0x11380, 0x11389, clsLetter},
	{0x1138B, 0x1138B, clsLetter},
	{0x1138E, 0x1138E, clsLetter},
	{0x11390, 0x113B5, clsLetter},
	{0x113B7, 0x113B7, clsLetter},
	{0x113D1, 0x113D1, clsLetter},
	{0x113D3, 0x113D3, clsLetter},
	{0x116D0, 0x116E3, clsNumber},
	{0x11BC0, 0x11BE0, clsLetter},
	{0x11BF0, 0x11BF9, clsNumber},
	{0x13460, 0x143FA, clsLetter},
	{0x16100, 0x1611D, clsLetter},
	{0x16130, 0x16139, clsNumber},
	{0x16D40, 0x16D6C, clsLetter},
	{0x16D70, 0x16D79, clsNumber},
	{0x18CFF, 0x18CFF, clsLetter},
	{0x1CCF0, 0x1CCF9, clsNumber},
	{0x1E5D0, 0x1E5ED, clsLetter},
	{0x1E5F0, 0x1E5F0, clsLetter},
	{0x1E5F1, 0x1E5FA, clsNumber},
	{0x2EBF0, 0x2EE5D, clsLetter},
}

// runeAt decodes the rune at byte offset i and returns its class and size;
// at the end of s it returns class -1 and size 0.
func runeAt(s string, i int) (r rune, class int, size int) {
	if i >= len(s) {
		return 0, -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), int(asciiClass[c]), 1
	}
	r, size = utf8.DecodeRuneInString(s[i:])
	return r, slowClass(r), size
}

// foldsTo reports whether r equals the ASCII lower-case letter lower under
// simple case folding.
func foldsTo(r rune, lower rune) bool {
	if r == lower || r == lower-'a'+'A' {
		return true
	}
	if r < utf8.RuneSelf {
		return false
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f == lower {
			return true
		}
	}
	return false
}

// contraction matches alternative 1 at s[i] == '\” and returns the match
// length in bytes, or 0.
func contraction(s string, i int) int {
	r1, _, n1 := runeAt(s, i+1)
	if n1 == 0 {
		return 0
	}
	for _, c := range "stmd" {
		if foldsTo(r1, c) {
			return 1 + n1
		}
	}
	r2, _, n2 := runeAt(s, i+1+n1)
	if n2 == 0 {
		return 0
	}
	switch {
	case foldsTo(r1, 'r') && foldsTo(r2, 'e'),
		foldsTo(r1, 'v') && foldsTo(r2, 'e'),
		foldsTo(r1, 'l') && foldsTo(r2, 'l'):
		return 1 + n1 + n2
	}
	return 0
}

// runEnd returns the end of the run of characters starting at i whose class
// satisfies keep.
func runEnd(s string, i int, keep func(int) bool) int {
	for i < len(s) {
		_, c, n := runeAt(s, i)
		if !keep(c) {
			break
		}
		i += n
	}
	return i
}

func isLetter(c int) bool  { return c == clsLetter }
func isOther(c int) bool   { return c == clsOther }
func isWS(c int) bool      { return c == clsSpace || c == clsNewline }
func isNewline(c int) bool { return c == clsNewline }

// splitQwen2 cuts s (valid UTF-8) into the pre-tokens of qwen2Pattern and
// calls emit with each one's byte range. Every character of s lands in
// exactly one pre-token: the pattern matches any character, so there are no
// gaps between matches.
func splitQwen2(s string, emit func(start, end int)) {
	i := 0
	for i < len(s) {
		end := matchAt(s, i)
		emit(i, end)
		i = end
	}
}

// matchAt returns the end of the pattern's match starting at i < len(s).
func matchAt(s string, i int) int {
	r0, c0, n0 := runeAt(s, i)
	_, c1, n1 := runeAt(s, i+n0)

	// 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r0 == '\'' {
		if n := contraction(s, i); n > 0 {
			return i + n
		}
	}
	// 2. [^\r\n\p{L}\p{N}]?\p{L}+
	if c0 == clsLetter {
		return runEnd(s, i+n0, isLetter)
	}
	if c0 != clsNewline && c0 != clsNumber && c1 == clsLetter {
		return runEnd(s, i+n0+n1, isLetter)
	}
	// 3. \p{N}
	if c0 == clsNumber {
		return i + n0
	}
	// 4.  ?[^\s\p{L}\p{N}]+[\r\n]*
	if r0 == ' ' && c1 == clsOther {
		j := runEnd(s, i+n0+n1, isOther)
		return runEnd(s, j, isNewline)
	}
	if c0 == clsOther {
		j := runEnd(s, i+n0, isOther)
		return runEnd(s, j, isNewline)
	}
	// Only whitespace is left: c0 is clsSpace or clsNewline.
	j := runEnd(s, i, isWS)
	// 5. \s*[\r\n]+ — \s* backtracks to the last newline of the run.
	lastNL := -1
	for k := i; k < j; {
		_, c, n := runeAt(s, k)
		if c == clsNewline {
			lastNL = k
		}
		k += n
	}
	if lastNL >= 0 {
		return lastNL + 1 // \r and \n are one byte
	}
	// 6. \s+(?!\S) — the whole run at the end of the text, else all but its
	// last character (which is then free to lead the next word).
	if j == len(s) {
		return j
	}
	_, lastSize := utf8.DecodeLastRuneInString(s[i:j])
	if j-lastSize > i {
		return j - lastSize
	}
	// 7. \s+ — a single whitespace character before a non-space.
	return j
}
