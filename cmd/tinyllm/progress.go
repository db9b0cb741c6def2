package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
	"github.com/tinyllm-go/tinyllm/internal/progress"
)

func runProgress(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("progress", flag.ContinueOnError)
	week := fs.Int("week", 0, fmt.Sprintf("only this week (1-%d); 0 means every week", progress.Weeks))
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *week < 0 || *week > progress.Weeks {
		return fmt.Errorf("%w: --week must be between 1 and %d, or 0 for every week; got %d", errUsage, progress.Weeks, *week)
	}
	root, err := fixture.RepoRoot()
	if err != nil {
		return fmt.Errorf("run it inside the course repository: %w", err)
	}
	var days []progress.Day
	for w := 1; w <= progress.Weeks; w++ {
		if *week != 0 && w != *week {
			continue
		}
		for d := 1; d <= progress.DaysPerWeek; d++ {
			days = append(days, progress.Grade(root, w, d))
		}
	}
	fmt.Fprint(stdout, progress.Table(days))
	return nil
}
