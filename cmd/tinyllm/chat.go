package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tinyllm-go/tinyllm/internal/tokenizer"
)

// stdin is the chat's input; tests replace it.
var stdin io.Reader = os.Stdin

func runChat(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	var f engineFlags
	f.register(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	e, err := loadEngine(&f, stderr)
	if err != nil {
		return err
	}
	defer e.ck.Close()
	fmt.Fprintln(stderr, "type a message; /reset forgets the conversation, /exit or Ctrl-D leaves")
	var history []tokenizer.Message
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 64<<10), 1<<20)
	for {
		fmt.Fprint(stdout, "> ")
		if !in.Scan() {
			fmt.Fprintln(stdout)
			return in.Err()
		}
		line := strings.TrimSpace(in.Text())
		switch line {
		case "":
			continue
		case "/exit", "/quit":
			return nil
		case "/reset":
			history = nil
			fmt.Fprintln(stderr, "(conversation forgotten)")
			continue
		}
		history = append(history, tokenizer.Message{Role: "user", Content: line})
		answer, err := e.reply(history, stdout, stderr)
		if err != nil {
			// Keep the conversation usable: drop the turn that failed.
			history = history[:len(history)-1]
			fmt.Fprintf(stderr, "error: %v\n", err)
			continue
		}
		history = append(history, tokenizer.Message{Role: "assistant", Content: answer})
	}
}
