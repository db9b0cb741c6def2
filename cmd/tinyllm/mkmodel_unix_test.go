//go:build unix

package main

import (
	"bytes"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/bench"
)

// TestMkmodelCtrlC sends mkmodel a SIGINT while it writes the weights: it
// must stop, say so, and leave nothing in --out that counts as a model.
//
// The model is large enough (about 270 MB of bf16) that the weights take
// seconds to write: the signal is sent as soon as the weight file appears in
// the partial folder, long before it can be complete.
func TestMkmodelCtrlC(t *testing.T) {
	// Received here too, so that the test binary survives the signal even
	// if mkmodel did not catch it (the test then fails below instead).
	caught := make(chan os.Signal, 1)
	signal.Notify(caught, os.Interrupt)
	defer signal.Stop(caught)

	name := testShape(t, 320)
	s := bench.Shapes[name]
	s.HiddenSize, s.IntermediateSize, s.NumHiddenLayers = 1024, 4096, 8
	bench.Shapes[name] = s
	tok := filepath.Dir(testdataDir(t, "tokenizer", "tiny", "tokenizer.json"))

	out := t.TempDir()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runMkmodel([]string{"--shape", name, "--out", out, "--tokenizer-from", tok}, &bytes.Buffer{}, &stderr)
	}()
	deadline := time.After(time.Minute)
	for { // the weights are being written, so the signal handler is in place
		if m, _ := filepath.Glob(filepath.Join(out, ".mkmodel-partial-*", "*.safetensors*")); len(m) > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("mkmodel ended before it was interrupted: %v\n%s", err, stderr.String())
		case <-deadline:
			t.Fatal("mkmodel started no weight file in a partial folder of --out")
		case <-time.After(time.Millisecond):
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-caught
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("got %v, want an error saying mkmodel was interrupted\n%s", err, stderr.String())
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		t.Errorf("%s left in --out", e.Name())
	}
}
