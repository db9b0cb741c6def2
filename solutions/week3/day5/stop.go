package day5

import "strings"

// StopBuffer cuts a stream of text at the first stop sequence. A stop
// sequence can arrive split over several tokens ("ST" then "OP"), so the
// buffer holds back the end of the text that could still become one, and
// shows it only once it cannot.
type StopBuffer struct {
	stops   []string
	held    string
	stopped bool
}

// NewStopBuffer returns a buffer for the given stop sequences; empty ones
// are ignored, and with none the buffer passes text straight through.
func NewStopBuffer(stops []string) *StopBuffer {
	b := &StopBuffer{}
	for _, s := range stops {
		if s != "" {
			b.stops = append(b.stops, s)
		}
	}
	return b
}

// Push adds the next piece of text and returns what can be shown now. When
// a stop sequence is complete it returns the text before it and stopped =
// true; the stop sequence and everything after it are never returned, and
// later calls return "" and true.
func (b *StopBuffer) Push(text string) (out string, stopped bool) {
	if b.stopped {
		return "", true
	}
	s := b.held + text
	first := -1
	for _, stop := range b.stops {
		if i := strings.Index(s, stop); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first >= 0 {
		b.stopped, b.held = true, ""
		return s[:first], true
	}
	keep := b.heldSuffix(s)
	b.held = s[len(s)-keep:]
	return s[:len(s)-keep], false
}

// heldSuffix is the length of the longest end of s that is the beginning
// of a stop sequence (and not a whole one: that would have been found).
// Such an end starts where a stop sequence starts, at a character
// boundary, so what is shown is always whole UTF-8 characters.
func (b *StopBuffer) heldSuffix(s string) int {
	best := 0
	for _, stop := range b.stops {
		for k := min(len(s), len(stop)-1); k > best; k-- {
			if strings.HasPrefix(stop, s[len(s)-k:]) {
				best = k
				break
			}
		}
	}
	return best
}

// Flush ends the stream: the text held back did not become a stop
// sequence, so it is returned. After a stop it returns "".
func (b *StopBuffer) Flush() string {
	out := b.held
	b.held = ""
	if b.stopped {
		return ""
	}
	return out
}
