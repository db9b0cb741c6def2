package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tinyllm-go/tinyllm/internal/checkpoint"
	"github.com/tinyllm-go/tinyllm/internal/quantize"
)

// runQuantize writes an MLX affine-quantized copy of a Hugging Face model.
func runQuantize(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quantize", flag.ContinueOnError)
	bits := fs.Int("bits", 4, "bits per weight: 4 or 8")
	group := fs.Int("group-size", 64, "inputs that share a scale and a bias: 32, 64 or 128")
	force := fs.Bool("force", false, "replace a model already in OUT (its config, tokenizer, weights and index; other files stay)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tinyllm quantize [--bits 4] [--group-size 64] [--force] IN OUT")
		fmt.Fprintln(stderr, "\nWrites into OUT the Qwen2 model of IN (bf16, f16 or f32, Hugging Face format) quantized")
		fmt.Fprintln(stderr, "as mlx_lm.convert --quantize does: MLX's affine format, which tinyllm and mlx-lm both load.")
		fs.PrintDefaults()
	}
	// Flags may come before, between or after IN and OUT.
	var pos []string
	for rest := args; ; {
		if err := parseFlagsAndArgs(fs, rest, stderr); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case len(pos) != 2:
		return fmt.Errorf("%w: give two folders, the model IN and the OUT to write (got %q)", errUsage, pos)
	case *bits != 4 && *bits != 8:
		return fmt.Errorf("%w: --bits must be 4 or 8, got %d", errUsage, *bits)
	case !quantize.Supported(*bits, *group):
		return fmt.Errorf("%w: --group-size must be 32, 64 or 128, got %d", errUsage, *group)
	}
	in, out := pos[0], pos[1]

	// Ctrl-C stops the write between chunks of a tensor; the partial model
	// is then removed instead of being left for a later run to take as
	// complete.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start, last := time.Now(), time.Time{}
	started := false
	err := quantize.Folder(ctx, in, out, quantize.Options{
		Bits: *bits, GroupSize: *group, Overwrite: *force,
		Note: func(n string) { fmt.Fprintln(stderr, "note:", n) },
		Progress: func(done, total int64) {
			if !started {
				started = true
				fmt.Fprintf(stderr, "quantizing %s (%.1f MB of weights) to %d bits in groups of %d, into %s\n", in, float64(total)/1e6, *bits, *group, out)
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
	case errors.Is(err, quantize.ErrModelExists):
		return fmt.Errorf("%v; pass --force to replace them (files that are not part of a model stay)", err)
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return fmt.Errorf("interrupted before the model was complete; nothing of it was left in %s", out)
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d-bit weights in groups of %d, %.1f MB of weights (from %.1f MB), in %.1fs\n",
		out, *bits, *group, float64(modelBytes(out))/1e6, float64(modelBytes(in))/1e6, time.Since(start).Seconds())
	return nil
}

// modelBytes is the size of a model's weight files, 0 if it cannot be
// opened.
func modelBytes(dir string) int64 {
	ck, err := checkpoint.Open(dir)
	if err != nil {
		return 0
	}
	defer ck.Close()
	return weightBytes(ck.WeightFiles())
}
