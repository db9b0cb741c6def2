package w3d5

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

const task2 = "W3D5 Task 2 (stop sequences)"

// stopCases are texts with their stop sequences; each is fed to the
// buffer in many splittings.
var stopCases = []struct {
	name  string
	text  string
	stops []string
}{
	{"none", "no stop sequence here, pass it all through", nil},
	{"absent", "the answer is 623.", []string{"STOP"}},
	{"middle", "first part STOP second part", []string{"STOP"}},
	{"at_start", "STOP and nothing shown", []string{"STOP"}},
	{"at_end", "all shown but the end STOP", []string{"STOP"}},
	{"false_start", "SST STO STOP after", []string{"STOP"}},
	{"prefix_at_end", "ends with a prefix ST", []string{"STOP"}},
	{"two_stops", "a\nUser: b\n\nc", []string{"\n\n", "User:"}},
	{"unicode", "Café ☕ is ☕☕ and 🙂 ends 🙂🙂 here", []string{"☕☕", "🙂🙂"}},
	{"newline", "line one\nline two\n\nline three", []string{"\n\n"}},
}

// splits are the ways a text is cut into pieces (always at character
// boundaries, as a stream decoder cuts it): whole, one character at a
// time, and random pieces of 1 to 6 characters.
func splits(text string) [][]string {
	out := [][]string{{text}}
	var chars []string
	for _, r := range text {
		chars = append(chars, string(r))
	}
	out = append(out, chars)
	rng := rand.New(rand.NewPCG(5, uint64(len(text))))
	for range 8 {
		var pieces []string
		for i := 0; i < len(chars); {
			n := min(1+rng.IntN(6), len(chars)-i)
			pieces = append(pieces, strings.Join(chars[i:i+n], ""))
			i += n
		}
		out = append(out, pieces)
	}
	return out
}

// heldBack is how much of seen a buffer may hold back: its longest end
// that begins some stop sequence.
func heldBack(seen string, stops []string) int {
	best := 0
	for _, s := range stops {
		for k := min(len(seen), len(s)-1); k > best; k-- {
			if strings.HasSuffix(seen, s[:k]) {
				best = k
				break
			}
		}
	}
	return best
}

// Stop feeds each case to a StopBuffer in every splitting and checks, after
// every piece, that it shows all of the text but what could still be the
// start of a stop sequence, and that it cuts at the first stop sequence to
// complete, showing nothing of it or after it.
func Stop(t *testing.T, d Day) {
	t.Helper()
	for _, c := range stopCases {
		stub := false
		t.Run(c.name, func(t *testing.T) {
			stub = run(t, task2, func() {
				for _, pieces := range splits(c.text) {
					if !stopOnce(t, d, c.stops, pieces) {
						return
					}
				}
			})
		})
		if stub {
			return
		}
	}
}

// stopOnce runs one splitting; it reports whether the buffer behaved.
func stopOnce(t *testing.T, d Day, stops []string, pieces []string) bool {
	t.Helper()
	b := d.NewStopBuffer(stops)
	seen, shown := "", ""
	for i, p := range pieces {
		out, stopped := b.Push(p)
		seen += p
		shown += out
		if !utf8.ValidString(out) {
			t.Errorf("stops %q, pieces %q: Push(%q) returned invalid UTF-8 %q", stops, pieces, p, out)
			return false
		}
		if cut := firstStop(seen, stops); cut >= 0 {
			if !stopped || shown != seen[:cut] {
				t.Errorf("stops %q, pieces %q: after piece %d the text so far %q holds a stop sequence: want everything before it, %q, and stopped; got %q, stopped %v",
					stops, pieces, i, seen, seen[:cut], shown, stopped)
				return false
			}
			if more, again := b.Push("more STOP text"); more != "" || !again {
				t.Errorf("stops %q: after a stop, Push returned %q, %v; want \"\", true", stops, more, again)
				return false
			}
			if rest := b.Flush(); rest != "" {
				t.Errorf("stops %q: after a stop, Flush returned %q; want \"\"", stops, rest)
				return false
			}
			return true
		}
		want := seen[:len(seen)-heldBack(seen, stops)]
		if stopped || shown != want {
			t.Errorf("stops %q, pieces %q: after piece %d (%q) the buffer showed %q (stopped %v); want %q: all but an end that could still begin a stop sequence",
				stops, pieces, i, p, shown, stopped, want)
			return false
		}
	}
	shown += b.Flush()
	if shown != seen {
		t.Errorf("stops %q, pieces %q: no stop sequence, yet the text shown with Flush is %q; want all of it, %q", stops, pieces, shown, seen)
		return false
	}
	return true
}
