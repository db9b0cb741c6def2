package bookcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
)

// repoRoot is the root of this repository, found from the test's folder.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func report(t *testing.T, problems []Problem) {
	t.Helper()
	for _, p := range problems {
		t.Error(p)
	}
}

// The checks on the real guide.

func TestBookSummaryChaptersExist(t *testing.T) {
	report(t, CheckSummary(repoRoot(t)))
}

func TestBookLinksResolve(t *testing.T) {
	report(t, CheckLinks(repoRoot(t)))
}

func TestBookReadingSections(t *testing.T) {
	root := repoRoot(t)
	report(t, CheckReading(root))
	// Day chapters must have a reading list; without any, this checks little.
	days, _ := filepath.Glob(filepath.Join(root, SrcDir, "week*-day*.md"))
	if len(days) == 0 {
		t.Errorf("no weekN-dayM.md chapter in %s", SrcDir)
	}
}

func TestBookDayChaptersNameFilesAndGradingCommand(t *testing.T) {
	root := repoRoot(t)
	report(t, CheckDayChapters(root))
	// The guide has at least one day chapter, or this check checks nothing.
	days, _ := filepath.Glob(filepath.Join(root, SrcDir, "week*-day*.md"))
	if len(days) == 0 {
		t.Errorf("no weekN-dayM.md chapter in %s", SrcDir)
	}
}

// The checks on small synthetic books, to show that they catch what they claim.

// goodBook is a minimal repository whose guide passes every check.
func goodBook() map[string]string {
	return map[string]string{
		"go.mod":                  "module example.com/book\n",
		"week1/day1/attention.go": "package day1\n",
		"book/src/SUMMARY.md": "# Summary\n\n[Preface](preface.md)\n\n# Week 1\n\n" +
			"- [Overview](week1-overview.md)\n  - [Day 1: attention](week1-day1.md)\n  - [Day 2: RoPE]()\n\n---\n\n[Glossary](glossary.md)\n",
		"book/src/preface.md": "# Preface\n\nStart with [day 1](week1-day1.md#task-1-softmax) " +
			"or the [glossary][g]. See [below](#why-go) and [PyTorch](https://pytorch.org).\n\n## Why Go?\n\n" +
			"[g]: glossary.md#kv-cache\n",
		"book/src/week1-overview.md": "# Week 1\n\n![diagram](img/qwen2.svg)\n\n" +
			"```text\n[not a link](nowhere.md)\n```\n\nInline `[not a link](nowhere.md)` either.\n",
		"book/src/img/qwen2.svg": "<svg/>",
		"book/src/week1-day1.md": "# Day 1\n\n## Task 1: `Softmax`\n\n## Files to edit\n\n" +
			"- `week1/day1/attention.go` (the reference is in solutions/week1/day1/gone.go)\n\n" +
			"## Grading\n\n```sh\ngo test -run W1D1 ./week1/day1\nmake check-w1d1\n\n```\n\n" +
			"## Reading\n\n- [Attention Is All\n  You Need](https://arxiv.org/abs/1706.03762): a link wrapped across lines.\n" +
			"- [The glossary](glossary.md#kv-cache), [and its\n  preface](preface.md): two links in one item.\n",
		"book/src/glossary.md": "# Glossary\n\n### KV cache\n\nKeys and values kept between steps.\n",
	}
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, text := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestChecksOnSyntheticBooks(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(files map[string]string)
		check  func(root string) []Problem
		want   string // a substring of the single expected problem; "" for none
		wantAt string // the problem's file:line prefix
	}{
		{name: "good book, summary", check: CheckSummary},
		{name: "good book, links", check: CheckLinks},
		{name: "good book, day chapters", check: CheckDayChapters},
		{name: "good book, reading lists", check: CheckReading},
		{
			name:   "missing chapter",
			edit:   func(f map[string]string) { delete(f, "book/src/glossary.md") },
			check:  CheckSummary,
			want:   `chapter "Glossary" links glossary.md, which does not exist`,
			wantAt: "book/src/SUMMARY.md:13:",
		},
		{
			name: "broken link",
			edit: func(f map[string]string) {
				f["book/src/glossary.md"] += "\nSee [setup](setup.md).\n"
			},
			check:  CheckLinks,
			want:   `link "setup.md": book/src/setup.md does not exist`,
			wantAt: "book/src/glossary.md:7:",
		},
		{
			name: "broken anchor",
			edit: func(f map[string]string) {
				f["book/src/glossary.md"] += "\nSee [softmax](week1-day1.md#task-1-soft-max).\n"
			},
			check:  CheckLinks,
			want:   `link "week1-day1.md#task-1-soft-max": no heading in book/src/week1-day1.md has the id "task-1-soft-max"`,
			wantAt: "book/src/glossary.md:7:",
		},
		{
			name: "broken anchor in the same chapter",
			edit: func(f map[string]string) {
				f["book/src/glossary.md"] += "\nSee [above](#kv-caches).\n"
			},
			check: CheckLinks,
			want:  `link "#kv-caches": no heading in book/src/glossary.md has the id "kv-caches"`,
		},
		{
			name: "link to a chapter not in SUMMARY.md",
			edit: func(f map[string]string) {
				f["book/src/orphan.md"] = "# Orphan\n"
				f["book/src/glossary.md"] += "\nSee [orphan](orphan.md).\n"
			},
			check: CheckLinks,
			want:  "book/src/orphan.md is not listed in SUMMARY.md",
		},
		{
			name: "absolute link",
			edit: func(f map[string]string) {
				f["book/src/glossary.md"] += "\nSee [setup](/setup.md).\n"
			},
			check: CheckLinks,
			want:  `link "/setup.md": absolute paths break`,
		},
		{
			name: "day chapter missing its grading command",
			edit: func(f map[string]string) {
				f["book/src/week1-day1.md"] = strings.Replace(f["book/src/week1-day1.md"], "make check-w1d1\n", "", 1)
			},
			check: CheckDayChapters,
			want:  `the last code block ends with "go test -run W1D1 ./week1/day1"; a day chapter's last code block must end with "make check-w1d1"`,
		},
		{
			name: "day chapter grading another day",
			edit: func(f map[string]string) {
				f["book/src/week1-day1.md"] = strings.Replace(f["book/src/week1-day1.md"], "check-w1d1", "check-w1d2", 1)
			},
			check: CheckDayChapters,
			want:  `ends with "make check-w1d2"`,
		},
		{
			name: "day chapter with text after the grading command",
			edit: func(f map[string]string) {
				f["book/src/week1-day1.md"] = strings.Replace(f["book/src/week1-day1.md"], "## Reading", "Next: [day 2](week1-day2.md).\n\n## Reading", 1)
			},
			check: CheckDayChapters,
			want:  "text follows the grading command",
		},
		{
			name: "day chapter with another section after the grading command",
			edit: func(f map[string]string) {
				f["book/src/week1-day1.md"] = strings.Replace(f["book/src/week1-day1.md"], "## Reading", "## Readings", 1)
			},
			check: CheckDayChapters,
			want:  `followed at most by a "## Reading" section`,
		},
		{
			name: "day chapter without a reading list",
			edit: func(f map[string]string) {
				text := f["book/src/week1-day1.md"]
				f["book/src/week1-day1.md"] = text[:strings.Index(text, "## Reading")]
			},
			check:  CheckReading,
			want:   `book/src/week1-day1.md: has no "## Reading" section`,
			wantAt: "book/src/week1-day1.md: has no",
		},
		{
			name: "second chapter of a day without a reading list, even when not in SUMMARY.md",
			edit: func(f map[string]string) {
				f["book/src/week1-day1-kernel.md"] = "# Day 1, Task 2\n\n## Grading\n\n```sh\nmake check-w1d1\n```\n"
			},
			check: CheckReading,
			want:  `book/src/week1-day1-kernel.md: has no "## Reading" section`,
		},
		{
			name: "a section after the reading list",
			edit: func(f map[string]string) {
				f["book/src/week1-day1.md"] += "\n## Exercises\n"
			},
			check:  CheckReading,
			want:   `a heading after "## Reading"`,
			wantAt: "book/src/week1-day1.md:24:",
		},
		{
			name: "prose in the reading list",
			edit: func(f map[string]string) {
				f["book/src/week1-day1.md"] += "\nRead them in order.\n"
			},
			check:  CheckReading,
			want:   "text outside the list in the Reading section",
			wantAt: "book/src/week1-day1.md:24:",
		},
		{
			name: "reading list item without a link",
			edit: func(f map[string]string) {
				f["book/src/week1-day1.md"] += "- The Qwen2 technical report,\n  worth a look.\n"
			},
			check:  CheckReading,
			want:   "a reading list item without a link",
			wantAt: "book/src/week1-day1.md:23:",
		},
		{
			name: "empty reading list",
			edit: func(f map[string]string) {
				text := f["book/src/week1-day1.md"]
				f["book/src/week1-day1.md"] = text[:strings.Index(text, "## Reading")] + "## Reading\n"
			},
			check: CheckReading,
			want:  "the Reading section lists nothing",
		},
		{
			name: "code block in the reading list",
			edit: func(f map[string]string) {
				f["book/src/glossary.md"] += "\n## Reading\n\n- [PyTorch](https://pytorch.org): the reference.\n\n```sh\npip install torch\n```\n"
			},
			check:  CheckReading,
			want:   "a code block inside the Reading section",
			wantAt: "book/src/glossary.md:11:",
		},
		{
			name: "reading list in a chapter that is not a day's is checked too",
			edit: func(f map[string]string) {
				f["book/src/glossary.md"] += "\n## Reading\n\n- [PyTorch](https://pytorch.org): the reference.\n\nSee the papers.\n"
			},
			check:  CheckReading,
			want:   "text outside the list",
			wantAt: "book/src/glossary.md:11:",
		},
		{
			name: "day chapter without code blocks",
			edit: func(f map[string]string) {
				f["book/src/week1-day1.md"] = "# Day 1\n\nEdit week1/day1/attention.go.\n"
			},
			check:  CheckDayChapters,
			want:   `has no fenced code block`,
			wantAt: "book/src/week1-day1.md:",
		},
		{
			name: "day chapter naming no file of its day",
			edit: func(f map[string]string) {
				f["book/src/week1-day1.md"] = strings.ReplaceAll(f["book/src/week1-day1.md"], "`week1/day1/attention.go`", "the attention file")
			},
			check: CheckDayChapters,
			want:  "names no existing file under week1/day1/",
		},
		{
			name: "day chapter naming a file that does not exist",
			edit: func(f map[string]string) {
				f["book/src/week1-day1.md"] = strings.Replace(f["book/src/week1-day1.md"], "(the reference", "and week1/day1/attenton.go (the reference", 1)
			},
			check:  CheckDayChapters,
			want:   "names week1/day1/attenton.go, which does not exist in the repository",
			wantAt: "book/src/week1-day1.md:7:",
		},
		{
			name: "day chapter not listed in SUMMARY.md is still checked",
			edit: func(f map[string]string) {
				f["book/src/week1-day2.md"] = "# Day 2\n\nEdit week1/day1/attention.go.\n\n```sh\nmake check-w1d2\n```\n"
			},
			check: CheckDayChapters,
			want:  "names no existing file under week1/day2/",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := goodBook()
			if tt.edit != nil {
				tt.edit(files)
			}
			problems := tt.check(writeTree(t, files))
			if tt.want == "" {
				report(t, problems)
				return
			}
			if len(problems) != 1 {
				t.Fatalf("got %d problems %v, want one containing %q", len(problems), problems, tt.want)
			}
			got := problems[0].String()
			if !strings.Contains(got, tt.want) {
				t.Errorf("got problem %q, want one containing %q", got, tt.want)
			}
			if !strings.HasPrefix(got, tt.wantAt) {
				t.Errorf("got problem %q, want it to start with %q", got, tt.wantAt)
			}
		})
	}
}

func TestSlug(t *testing.T) {
	// Each id below is what mdBook 0.5.4 renders for the heading.
	tests := []struct{ heading, want string }{
		{"Hello, `World`! x_y", "hello-world-x_y"},
		{"Task 1: `Softmax(x, axis)` — stable", "task-1-softmaxx-axis--stable"},
		{"Ünïcode 2.5 & co.", "ünïcode-25--co"},
		{"A [link](b.md) *em* __b__ x_y", "a-link-em-b-x_y"},
		{"KV cache", "kv-cache"},
		{"MLX affine 4-bit quantization", "mlx-affine-4-bit-quantization"},
		{"TTFT", "ttft"},
	}
	for _, tt := range tests {
		if got := Slug(tt.heading); got != tt.want {
			t.Errorf("Slug(%q) = %q, want %q", tt.heading, got, tt.want)
		}
	}
}

func TestHeadingIDs(t *testing.T) {
	text := "# T\n\n## Hello\n\n## Hello\n\n```md\n## Not a heading\n```\n\n## Custom {#my-id}\n\n## T\n\nSetext\n------\n"
	got := HeadingIDs(text)
	for _, id := range []string{"t", "hello", "hello-1", "my-id", "t-1", "setext"} {
		if !got[id] {
			t.Errorf("no id %q in %v", id, got)
		}
	}
	if got["not-a-heading"] {
		t.Errorf("a line inside a code block counted as a heading: %v", got)
	}
	if len(got) != 6 {
		t.Errorf("got %d ids %v, want 6", len(got), got)
	}
}

func TestLinksSkipCode(t *testing.T) {
	text := "[a](a.md) `[b](b.md)` ``[c](c.md) ` `` [d](d.md \"title\")\n" +
		"~~~\n[e](e.md)\n~~~\n![f](<f g.png>)\n[h]: h.md#x\n"
	var got []string
	for _, l := range Links(text) {
		got = append(got, l.Target)
	}
	want := []string{"a.md", "d.md", "f g.png", "h.md#x"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Links = %q, want %q", got, want)
	}
}
