// Command tinyllm is the course's command-line program. Subcommands:
//
//	tinyllm chat --model DIR        talk with a Qwen2 model, multi-turn, streamed
//	tinyllm generate --model DIR --prompt "…"
//	tinyllm tokenize --model DIR "text"
//	tinyllm bench --model DIR       prefill/decode speed, TTFT, peak memory
//	tinyllm bench --throughput      many requests through the Week 3 engine
//	tinyllm mkmodel --shape qwen2-0.5b --out DIR
//	tinyllm quantize --bits 4 --group-size 64 IN OUT
//	tinyllm serve --model DIR --port 8000   the OpenAI API and a chat page
//	tinyllm progress                grade every learner day and print a table
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tinyllm-go/tinyllm/internal/safetensors"
	"github.com/tinyllm-go/tinyllm/internal/tensor"
)

// command is one subcommand: its one-line summary and what it runs.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"chat":     {"talk with a model: multi-turn, streamed replies", runChat},
	"generate": {"answer one --prompt and exit", runGenerate},
	"tokenize": {"show the token ids and pieces of a text", runTokenize},
	"bench":    {"measure prefill and decode speed, time to first token and peak memory", runBench},
	"mkmodel":  {"write a random bf16 Qwen2 checkpoint of a public shape (qwen2-0.5b, -1.5b, -7b)", runMkmodel},
	"quantize": {"write a 4- or 8-bit MLX-format copy of a bf16/f16/f32 model folder (as mlx_lm.convert -q)", runQuantize},
	"serve":    {"serve the OpenAI API (chat, completions, streaming), metrics and a chat page over HTTP", runServe},
	"progress": {"grade every learner day (week1/day1 …) and print which pass, fail or are not started", runProgress},
}

// errUsage marks a mistake in the command line; main prints usage for it.
var errUsage = errors.New("usage")

func main() {
	// The reference Week 2 and Week 3 engines run 4-bit products with 8-bit
	// activations where the kernels have them (amd64 with AVX2): twice as
	// fast, with logits that move by a few tenths (the W2D3 chapter).
	// TINYLLM_INT8=0 keeps the float product the days' checks use.
	tensor.AllowInt8Activations(os.Getenv("TINYLLM_INT8") != "0")
	// Checkpoints are read into huge pages on Linux instead of mapped in
	// 4 KB pages: a decode step streams every weight, and the address
	// translations of small pages cost the 4-bit engine about a tenth of
	// its speed. TINYLLM_HUGEPAGES=0 maps the files instead.
	safetensors.UseHugePages(os.Getenv("TINYLLM_HUGEPAGES") != "0")
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tinyllm: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if wantsLearner(args[1:]) && !learnerLinked() {
		code, err := runLearnerBinary(args, stdout, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "tinyllm %s: %v\n", args[0], err)
			return 1
		}
		return code
	}
	if err := cmd.run(args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "tinyllm %s: %v\n", args[0], err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tinyllm <command> [flags]\n\ncommands:")
	for _, name := range []string{"chat", "generate", "tokenize", "bench", "mkmodel", "quantize", "serve", "progress"} {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
}

// parseFlags parses the flags of a subcommand that takes no other arguments.
// Every subcommand parses through it or parseFlagsAndArgs, so all of them
// answer --help with exit status 0 and a mistake with its usage and status 2.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := parseFlagsAndArgs(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// parseFlagsAndArgs parses a subcommand's flags and leaves its other
// arguments in fs.Args(), printing the usage to stderr on a mistake and
// marking the error as a usage error (exit status 2).
func parseFlagsAndArgs(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
