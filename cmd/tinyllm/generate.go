package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

func runGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	var f engineFlags
	f.register(fs)
	prompt := fs.String("prompt", "", "the user message to answer")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := f.validate(stderr); err != nil {
		return err
	}
	if *prompt == "" {
		return fmt.Errorf("%w: --prompt is required", errUsage)
	}
	e, err := loadEngine(&f, stderr)
	if err != nil {
		return err
	}
	defer e.close()
	_, err = e.reply([]tokenizer.Message{{Role: "user", Content: *prompt}}, stdout, stderr)
	return err
}
