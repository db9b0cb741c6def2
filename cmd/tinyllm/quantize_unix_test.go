//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/bench"
)

// TestQuantizeCtrlC sends quantize a SIGINT while it writes the weights: it
// must stop, say so, and leave nothing in OUT.
//
// The input (about 270 MB of bf16) takes seconds to quantize: the signal is
// sent as soon as the weight file appears in the partial folder, long before
// it can be complete.
func TestQuantizeCtrlC(t *testing.T) {
	caught := make(chan os.Signal, 1)
	signal.Notify(caught, os.Interrupt)
	defer signal.Stop(caught)

	name := testShape(t, 320)
	s := bench.Shapes[name]
	s.HiddenSize, s.IntermediateSize, s.NumHiddenLayers = 1024, 4096, 8
	in := t.TempDir()
	tok := filepath.Dir(testdataDir(t, "tokenizer", "tiny", "tokenizer.json"))
	if err := bench.WriteRandomModel(context.Background(), in, s, bench.RandomModelOptions{TokenizerFrom: tok}); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- runQuantize([]string{in, out}, &bytes.Buffer{}, &stderr) }()
	deadline := time.After(time.Minute)
	for {
		if m, _ := filepath.Glob(filepath.Join(out, ".quantize-partial-*", "*.safetensors*")); len(m) > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("quantize ended before it was interrupted: %v\n%s", err, stderr.String())
		case <-deadline:
			t.Fatal("quantize started no weight file in a partial folder of OUT")
		case <-time.After(time.Millisecond):
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-caught
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("got %v, want an error saying quantize was interrupted\n%s", err, stderr.String())
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		t.Errorf("%s left in OUT", e.Name())
	}
}
