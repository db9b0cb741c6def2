package day5

import "io"

// WriteSSE writes v as one server-sent event, "data: <json>\n\n", and
// flushes it to the client at once when w can flush (an
// http.ResponseWriter can), so a streamed token is not held in a buffer.
func WriteSSE(w io.Writer, v any) error {
	// Your code here (W3D5).
	panic("TODO(W3D5): implement WriteSSE")
}

// WriteSSEDone writes the event that ends an OpenAI stream, "data: [DONE]",
// and flushes it.
func WriteSSEDone(w io.Writer) error {
	// Your code here (W3D5).
	panic("TODO(W3D5): implement WriteSSEDone")
}
