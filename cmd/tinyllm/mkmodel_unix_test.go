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

// TestMkmodelCtrlC sends mkmodel a SIGINT while it writes: it must stop,
// say so, and leave nothing in --out that counts as a model.
//
// To interrupt it at a known point, the tokenizer folder's
// tokenizer_config.json is a named pipe: each read of it waits until the
// test writes the file's content. mkmodel reads it twice, to load the
// tokenizer and to copy it; the signal goes between the two.
func TestMkmodelCtrlC(t *testing.T) {
	// Received here too, so that the test binary survives the signal even
	// if mkmodel did not catch it (the test then fails below instead).
	caught := make(chan os.Signal, 1)
	signal.Notify(caught, os.Interrupt)
	defer signal.Stop(caught)

	tok := t.TempDir()
	raw, err := os.ReadFile(testdataDir(t, "tokenizer", "tiny", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tok, "tokenizer.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	pipe := filepath.Join(tok, "tokenizer_config.json")
	if err := syscall.Mkfifo(pipe, 0o600); err != nil {
		t.Fatal(err)
	}
	feed := func() { // blocks until mkmodel opens the pipe
		if err := os.WriteFile(pipe, []byte("{}"), 0o600); err != nil {
			t.Error(err)
		}
	}
	// About 30 MB of weights: many chunks after the signal.
	name := testShape(t, 320)
	s := bench.Shapes[name]
	s.HiddenSize, s.IntermediateSize, s.NumHiddenLayers = 512, 2048, 4
	bench.Shapes[name] = s

	out := t.TempDir()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runMkmodel([]string{"--shape", name, "--out", out, "--tokenizer-from", tok}, &bytes.Buffer{}, &stderr)
	}()
	feed() // the tokenizer check
	deadline := time.After(time.Minute)
	for { // the partial folder exists, so the signal handler is in place
		if m, _ := filepath.Glob(filepath.Join(out, ".mkmodel-partial-*")); len(m) > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("mkmodel ended before writing: %v\n%s", err, stderr.String())
		case <-deadline:
			t.Fatal("mkmodel made no partial folder in --out to write the model into")
		case <-time.After(time.Millisecond):
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-caught
	feed() // the copy; the weights come next
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("got %v, want an error saying mkmodel was interrupted\n%s", err, stderr.String())
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		t.Errorf("%s left in --out", e.Name())
	}
}
