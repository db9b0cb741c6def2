package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is one entry of tokenizer.json's added_tokens.
type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// addedMatcher finds added tokens in text: at the leftmost position where any
// token occurs, the longest one (Hugging Face uses an Aho-Corasick automaton
// with leftmost-longest semantics).
type addedMatcher struct {
	first  [256]bool            // bytes that start some token
	byByte map[byte][]addedText // tokens by first byte, longest first
}

type addedText struct {
	text string // what is matched: the content, NFC-normalized for normalized tokens
	tok  *addedToken
}

func newAddedMatcher(toks []*addedToken, text func(*addedToken) string) *addedMatcher {
	if len(toks) == 0 {
		return nil
	}
	m := &addedMatcher{byByte: map[byte][]addedText{}}
	for _, tok := range toks {
		s := text(tok)
		m.first[s[0]] = true
		m.byByte[s[0]] = append(m.byByte[s[0]], addedText{s, tok})
	}
	for _, list := range m.byByte {
		sort.SliceStable(list, func(i, j int) bool { return len(list[i].text) > len(list[j].text) })
	}
	return m
}

// withoutSpecial returns a matcher for the tokens of m that are not special
// (nil when none is left).
func (m *addedMatcher) withoutSpecial() *addedMatcher {
	if m == nil {
		return nil
	}
	var toks []*addedToken
	var texts = map[*addedToken]string{}
	for _, list := range m.byByte {
		for _, at := range list {
			if !at.tok.Special {
				toks = append(toks, at.tok)
				texts[at.tok] = at.text
			}
		}
	}
	// Map iteration order is random; the matcher sorts by length, and equal
	// lengths must keep a fixed order for leftmost-longest ties.
	sort.Slice(toks, func(i, j int) bool { return toks[i].ID < toks[j].ID })
	return newAddedMatcher(toks, func(a *addedToken) string { return texts[a] })
}

// find returns the leftmost-longest token occurrence in s at or after from.
func (m *addedMatcher) find(s string, from int) (start, end int, tok *addedToken) {
	for i := from; i < len(s); i++ {
		if !m.first[s[i]] {
			continue
		}
		for _, a := range m.byByte[s[i]] {
			if strings.HasPrefix(s[i:], a.text) {
				return i, i + len(a.text), a.tok
			}
		}
	}
	return -1, -1, nil
}

// split calls emit for each piece of s in order: runs of text with id -1,
// and added tokens with their id. With lstrip (rstrip) a token also swallows
// the whitespace before (after) it, as in Hugging Face.
func (m *addedMatcher) split(s string, emit func(piece string, id int)) {
	if m == nil {
		if s != "" {
			emit(s, -1)
		}
		return
	}
	prev := 0 // end of the previous token
	pos := 0  // where to search next
	for {
		start, end, tok := m.find(s, pos)
		if tok == nil {
			break
		}
		pos = end
		if tok.LStrip {
			i := start
			for i > prev {
				r, n := utf8.DecodeLastRuneInString(s[:i])
				if !unicode.IsSpace(r) {
					break
				}
				i -= n
			}
			start = i
		}
		if tok.RStrip {
			for end < len(s) {
				r, n := utf8.DecodeRuneInString(s[end:])
				if !unicode.IsSpace(r) {
					break
				}
				end += n
			}
			pos = end
		}
		if start > prev {
			emit(s[prev:start], -1)
		}
		emit(s[start:end], tok.ID)
		prev = end
	}
	if prev < len(s) {
		emit(s[prev:], -1)
	}
}
