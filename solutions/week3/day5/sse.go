package day5

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// WriteSSE writes v as one server-sent event, "data: <json>\n\n", and
// flushes it to the client at once when w can flush (an
// http.ResponseWriter can), so a streamed token is not held in a buffer.
func WriteSSE(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("day5.WriteSSE: %w", err)
	}
	// One write per event: JSON never contains a raw newline, so the event
	// is a single data line and the blank line after it ends it.
	buf := make([]byte, 0, len(b)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, b...)
	buf = append(buf, "\n\n"...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	flush(w)
	return nil
}

// WriteSSEDone writes the event that ends an OpenAI stream, "data: [DONE]",
// and flushes it.
func WriteSSEDone(w io.Writer) error {
	if _, err := io.WriteString(w, "data: [DONE]\n\n"); err != nil {
		return err
	}
	flush(w)
	return nil
}

func flush(w io.Writer) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}
