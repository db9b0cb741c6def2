package day5

// StopBuffer cuts a stream of text at the first stop sequence. A stop
// sequence can arrive split over several tokens ("ST" then "OP"), so the
// buffer holds back the end of the text that could still become one, and
// shows it only once it cannot.
type StopBuffer struct {
	// Your code here (W3D5): the stop sequences, the text held back,
	// whether a stop sequence was found.
}

// NewStopBuffer returns a buffer for the given stop sequences; empty ones
// are ignored, and with none the buffer passes text straight through.
func NewStopBuffer(stops []string) *StopBuffer {
	// Your code here (W3D5).
	panic("TODO(W3D5): implement NewStopBuffer")
}

// Push adds the next piece of text and returns what can be shown now. When
// a stop sequence is complete it returns the text before it and stopped =
// true; the stop sequence and everything after it are never returned, and
// later calls return "" and true.
func (b *StopBuffer) Push(text string) (out string, stopped bool) {
	// Your code here (W3D5).
	panic("TODO(W3D5): implement StopBuffer.Push")
}

// Flush ends the stream: the text held back did not become a stop
// sequence, so it is returned. After a stop it returns "".
func (b *StopBuffer) Flush() string {
	// Your code here (W3D5).
	panic("TODO(W3D5): implement StopBuffer.Flush")
}
