package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/bench"
)

// defaultTokenizerDir is the shipped model whose tokenizer mkmodel copies.
const defaultTokenizerDir = "models/tinyqwen-chat"

// runMkmodel writes a randomly initialised Qwen2 checkpoint of a public
// shape, for measuring speed and memory without downloading a model.
func runMkmodel(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkmodel", flag.ContinueOnError)
	shape := fs.String("shape", "qwen2-0.5b", "model shape: "+strings.Join(bench.ShapeNames(), ", "))
	out := fs.String("out", "", "folder to write (must not hold a model already)")
	tokFrom := fs.String("tokenizer-from", defaultTokenizerDir, "model folder whose tokenizer files are copied")
	seed := fs.Uint64("seed", 0, "random seed of the weights")
	force := fs.Bool("force", false, "overwrite a model already in --out")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tinyllm mkmodel --shape qwen2-0.5b --out DIR [--tokenizer-from DIR]")
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
	if _, err := os.Stat(filepath.Join(*tokFrom, "tokenizer.json")); err != nil {
		if *tokFrom == defaultTokenizerDir {
			return fmt.Errorf("%w: the shipped model %s is not here; give a model folder with a tokenizer.json as --tokenizer-from DIR", errUsage, defaultTokenizerDir)
		}
		return fmt.Errorf("%w: --tokenizer-from %s has no tokenizer.json", errUsage, *tokFrom)
	}
	if _, err := os.Stat(filepath.Join(*out, "config.json")); err == nil && !*force {
		return fmt.Errorf("%s already holds a model (config.json); pass --force to overwrite it", *out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	gb := float64(2*s.Params()) / 1e9
	fmt.Fprintf(stderr, "writing a random %s (%.2fB parameters, %.2f GB in bf16) to %s\n", s.Name, float64(s.Params())/1e9, gb, *out)
	start := time.Now()
	last := start
	err := bench.WriteRandomModel(*out, s, bench.RandomModelOptions{
		Seed:          *seed,
		TokenizerFrom: *tokFrom,
		Progress: func(done, total int64) {
			if time.Since(last) > 250*time.Millisecond || done == total {
				fmt.Fprintf(stderr, "\r  %3.0f%% (%d of %d MB)", 100*float64(done)/float64(total), done>>20, total>>20)
				last = time.Now()
			}
		},
	})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s to %s in %.1fs\n", s.Name, *out, time.Since(start).Seconds())
	return nil
}
