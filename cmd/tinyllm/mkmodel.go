package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/bench"
	"github.com/tinyllm-go/tinyllm/models"
)

// runMkmodel writes a randomly initialised Qwen2 checkpoint of a public
// shape, for measuring speed and memory without downloading a model.
func runMkmodel(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkmodel", flag.ContinueOnError)
	shape := fs.String("shape", "qwen2-0.5b", "model shape: "+strings.Join(bench.ShapeNames(), ", "))
	out := fs.String("out", "", "folder to write (must not hold model files already, unless --force)")
	tokFrom := fs.String("tokenizer-from", "", "model folder whose tokenizer is copied: tokenizer.json or tokenizer.json.gz, with tokenizer_config.json if any (default: the shipped "+models.Name+")")
	seed := fs.Uint64("seed", 0, "random seed of the weights")
	force := fs.Bool("force", false, "replace a model already in --out (its config, tokenizer, weights and index; other files stay)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tinyllm mkmodel --shape qwen2-0.5b --out DIR [--tokenizer-from DIR] [--force]")
		fmt.Fprintln(stderr, "\nWrites a randomly initialised bf16 Qwen2 checkpoint in Hugging Face format, with the real")
		fmt.Fprintln(stderr, "model's shapes (so its speed and memory) and the tokenizer of --tokenizer-from.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	s, ok := bench.Shapes[*shape]
	switch {
	case !ok:
		return fmt.Errorf("%w: unknown --shape %q (choose %s)", errUsage, *shape, strings.Join(bench.ShapeNames(), ", "))
	case *out == "":
		return fmt.Errorf("%w: --out DIR is required", errUsage)
	}
	if *tokFrom == "" {
		dir, err := modelDir("", stderr)
		if err != nil {
			return err
		}
		*tokFrom = dir
	}

	// Ctrl-C stops the write between chunks; the partial model is then
	// removed instead of being left for a later run to take as complete.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	last := start
	started := false
	err := bench.WriteRandomModel(ctx, *out, s, bench.RandomModelOptions{
		Seed:          *seed,
		TokenizerFrom: *tokFrom,
		Overwrite:     *force,
		Note:          func(n string) { fmt.Fprintln(stderr, "note:", n) },
		Progress: func(done, total int64) {
			if !started {
				started = true
				fmt.Fprintf(stderr, "writing a random %s (%.2fB parameters, %.2f GB in bf16) to %s\n", s.Name, float64(s.Params())/1e9, float64(total)/1e9, *out)
			}
			if time.Since(last) > 250*time.Millisecond || done == total {
				fmt.Fprintf(stderr, "\r  %3.0f%% (%d of %d MB)", 100*float64(done)/float64(total), done>>20, total>>20)
				last = time.Now()
			}
		},
	})
	if started {
		fmt.Fprintln(stderr)
	}
	switch {
	case errors.Is(err, bench.ErrTokenizer):
		return fmt.Errorf("%w: --tokenizer-from: %v", errUsage, err)
	case errors.Is(err, bench.ErrModelExists):
		return fmt.Errorf("%v; pass --force to replace them (files that are not part of a model stay)", err)
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return fmt.Errorf("interrupted before the model was complete; nothing of it was left in %s", *out)
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "wrote %s to %s in %.1fs\n", s.Name, *out, time.Since(start).Seconds())
	return nil
}
