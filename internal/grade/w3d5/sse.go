package w3d5

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/serving"
)

const task3 = "W3D5 Task 3 (SSE framing)"

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("the client went away") }

// SSE checks the framing of one event: "data: " + the JSON + a blank line,
// flushed to the client, and the closing "data: [DONE]".
func SSE(t *testing.T, d Day) {
	t.Helper()
	finish := "stop"
	values := []any{
		map[string]string{"text": "two\nlines and a \"quote\""},
		serving.ChatCompletionChunk{ID: "chatcmpl-1", Object: "chat.completion.chunk", Created: 1, Model: modelID,
			Choices: []serving.ChatChunkChoice{{Delta: serving.ChatDelta{Content: "Hi ☕"}, FinishReason: &finish}}},
	}
	for i, v := range values {
		stub := run(t, task3, func() {
			rec := httptest.NewRecorder()
			if err := d.WriteSSE(rec, v); err != nil {
				t.Errorf("WriteSSE(%v): %v", v, err)
				return
			}
			b, _ := json.Marshal(v)
			want := "data: " + string(b) + "\n\n"
			if got := rec.Body.String(); got != want {
				t.Errorf("event %d: WriteSSE wrote %q, want %q", i, got, want)
			}
			if !rec.Flushed {
				t.Errorf("event %d: WriteSSE did not flush: the client would wait for a buffer to fill", i)
			}
		})
		if stub {
			return
		}
	}
	run(t, task3, func() {
		rec := httptest.NewRecorder()
		if err := d.WriteSSE(rec, map[string]any{"bad": make(chan int)}); err == nil {
			t.Errorf("WriteSSE of a value JSON cannot encode returned no error")
		} else if rec.Body.Len() != 0 {
			t.Errorf("WriteSSE of a value JSON cannot encode wrote %q; a half event breaks the stream", rec.Body.String())
		}
		if err := d.WriteSSE(failingWriter{}, map[string]int{"a": 1}); err == nil {
			t.Errorf("WriteSSE to a writer that fails returned no error: the handler would go on generating for nobody")
		}
		rec = httptest.NewRecorder()
		if err := d.WriteSSEDone(rec); err != nil || rec.Body.String() != "data: [DONE]\n\n" || !rec.Flushed {
			t.Errorf("WriteSSEDone wrote %q (flushed %v, err %v); want %q, flushed", rec.Body.String(), rec.Flushed, err, "data: [DONE]\n\n")
		}
	})
}
