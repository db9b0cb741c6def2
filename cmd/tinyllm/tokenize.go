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
	modelFlag := fs.String("model", "", "model folder holding tokenizer.json (default: the shipped "+models.Name+")")
	chat := fs.Bool("chat", false, "encode the text as a user message in the chat template (special tokens in it stay text)")
	plain := fs.Bool("plain", false, "treat special tokens such as <|im_end|> in the text as plain text, as chat messages are")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: tinyllm tokenize [--model DIR] [--chat | --plain] TEXT…")
		fs.PrintDefaults()
	}
	if err := parseFlagsAndArgs(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: give the text to tokenize as an argument", errUsage)
	}
	if *chat && *plain {
		return fmt.Errorf("%w: --chat already encodes the message as plain text; give one of --chat and --plain", errUsage)
	}
	dir, err := modelDir(*modelFlag, stderr)
	if err != nil {
		return err
	}
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		return err
	}
	text := strings.Join(fs.Args(), " ")
	var ids []int
	switch {
	case *chat:
		ids, err = tok.EncodeChat([]tokenizer.Message{{Role: "user", Content: text}}, true)
	case *plain:
		ids, err = tok.EncodeText(text)
	default:
		ids, err = tok.Encode(text)
	}
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
