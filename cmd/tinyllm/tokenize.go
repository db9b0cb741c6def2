package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
	"github.com/tinyllm-go/tinyllm/models"
)

func runTokenize(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	modelDir := fs.String("model", "", "model folder holding tokenizer.json (default: the shipped "+models.Name+")")
	chat := fs.Bool("chat", false, "wrap the text in the chat template as a user message first")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *modelDir == "" {
		dir, err := models.Dir()
		if err != nil {
			return fmt.Errorf("unpacking the shipped model: %w", err)
		}
		*modelDir = dir
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: give the text to tokenize as an argument", errUsage)
	}
	tok, err := tokenizer.LoadDir(*modelDir)
	if err != nil {
		return err
	}
	text := strings.Join(fs.Args(), " ")
	if *chat {
		text = tok.ApplyChatTemplate([]tokenizer.Message{{Role: "user", Content: text}}, true)
	}
	ids, err := tok.Encode(text)
	if err != nil {
		return err
	}
	for _, id := range ids {
		// A token that ends inside a UTF-8 character decodes to U+FFFD; show
		// its byte-level spelling from the vocabulary instead.
		piece, _ := tok.Decode([]int{id})
		if strings.ContainsRune(piece, utf8.RuneError) {
			piece, _ = tok.Token(id)
		}
		fmt.Fprintf(stdout, "%d\t%q\n", id, piece)
	}
	fmt.Fprintf(stderr, "%d tokens\n", len(ids))
	return nil
}
