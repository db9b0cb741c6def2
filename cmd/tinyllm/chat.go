package main

import (
	"bufio"
	"errors"
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
	if err := f.validate(stderr); err != nil {
		return err
	}
	e, err := loadEngine(&f, stderr)
	if err != nil {
		return err
	}
	defer e.close()
	fmt.Fprintln(stderr, "type a message; /reset forgets the conversation, /exit or Ctrl-D leaves")
	var history []tokenizer.Message
	in := bufio.NewReader(stdin)
	for {
		fmt.Fprint(stdout, "> ")
		line, err := readLine(in, maxChatLine)
		if errors.Is(err, errLineTooLong) {
			fmt.Fprintf(stderr, "error: that message is over %d KiB and was not sent; the conversation is unchanged\n", maxChatLine>>10)
			continue
		}
		if err != nil {
			fmt.Fprintln(stdout)
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line = strings.TrimSpace(line)
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

// maxChatLine is the longest message chat reads: far more than any model's
// context holds, small enough that a pasted file cannot exhaust memory.
const maxChatLine = 1 << 20

var errLineTooLong = errors.New("line too long")

// readLine reads one line without its newline. A line longer than max bytes
// is read to its end and dropped, with errLineTooLong, so the next line is
// read normally. At the end of the input it returns the last unterminated
// line, if any, and then io.EOF.
func readLine(r *bufio.Reader, max int) (string, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > max+1 { // +1: the newline itself
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil && (tooLong || len(line) == 0):
			if tooLong {
				return "", errLineTooLong
			}
			return "", err
		case tooLong:
			return "", errLineTooLong
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r"), nil
	}
}
