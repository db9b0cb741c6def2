package day5

// The checks live in internal/grade/w3d5, shared with the other tree.

import (
	"io"
	"net/http"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/grade/w3d5"
	"github.com/tinyllm-go/tinyllm/internal/serving"
)

var day = w3d5.Day{
	ParseChat:       ParseChatRequest,
	ParseCompletion: ParseCompletionRequest,
	NewStopBuffer:   func(stops []string) w3d5.Stopper { return NewStopBuffer(stops) },
	WriteSSE:        func(w io.Writer, v any) error { return WriteSSE(w, v) },
	WriteSSEDone:    WriteSSEDone,
	NewHandler:      func(cfg serving.HandlerConfig) http.Handler { return NewHandler(cfg) },
}

func TestW3D5Task1ParseRecorded(t *testing.T) { w3d5.ParseRecorded(t, day) }

func TestW3D5Task1ParseRejects(t *testing.T) { w3d5.ParseRejects(t, day) }

// FuzzW3D5Task1Parse runs over its seed corpus in every `go test`; fuzz
// it with `go test -run '^$' -fuzz FuzzW3D5Task1Parse ./<this folder>`.
func FuzzW3D5Task1Parse(f *testing.F) {
	w3d5.FuzzSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) { w3d5.Fuzz(t, day, body) })
}

func TestW3D5Task2StopSequences(t *testing.T) { w3d5.Stop(t, day) }

func TestW3D5Task3SSE(t *testing.T) { w3d5.SSE(t, day) }

func TestW3D5Task4RecordedExchanges(t *testing.T) { w3d5.Recorded(t, day) }

func TestW3D5Task4Errors(t *testing.T) { w3d5.Errors(t, day) }

func TestW3D5Task4ControlTokens(t *testing.T) { w3d5.ControlTokens(t, day) }

func TestW3D5Task4GoClient(t *testing.T) { w3d5.GoClient(t, day) }

func TestW3D5Task4Disconnect(t *testing.T) { w3d5.Disconnect(t, day) }
