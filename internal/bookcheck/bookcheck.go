// Package bookcheck checks the course guide (the mdBook in book/) against the
// repository it describes.
//
// mdBook itself renders a broken link without complaint, and nothing stops a
// day chapter from naming a file that was renamed or ending without the command
// that grades the day. The checks here catch that in `go test ./...`:
//
//   - every chapter linked from book/src/SUMMARY.md exists;
//   - every relative link in a chapter resolves to an existing file, a link to
//     another chapter targets one that SUMMARY.md lists (mdBook renders no
//     other), and a #fragment names a heading of the target;
//   - every day chapter (weekN-dayM.md) names at least one existing file under
//     weekN/dayM/, names no missing one, and ends with a fenced code block whose
//     last line is `make check-wNdM`, followed at most by its reading list;
//   - every day chapter (weekN-dayM.md, weekN-dayM-topic.md) ends with a
//     "## Reading" section, and every Reading section of the guide is the last
//     section of its chapter and a plain list of links.
//
// Every check is a function of the repository root, so the tests run them both
// on the real guide and on small synthetic books.
package bookcheck

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// SrcDir is the guide's source folder, relative to the repository root.
const SrcDir = "book/src"

// Problem is one thing wrong with the guide.
type Problem struct {
	File string // repository-relative path of the chapter, e.g. book/src/setup.md
	Line int    // 1-based line of the problem, 0 if it concerns the whole file
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// Entry is one chapter link of SUMMARY.md.
type Entry struct {
	Title string
	Path  string // relative to SrcDir, slash-separated; "" for a draft chapter
	Line  int
}

// summaryLink matches a chapter link in SUMMARY.md: "- [Title](path.md)",
// "[Prefix chapter](path.md)" or a draft "- [Title]()".
var summaryLink = regexp.MustCompile(`^\s*(?:[-*+]\s+|\d+\.\s+)?\[((?:[^\]\\]|\\.)*)\]\(([^)]*)\)\s*$`)

// ReadSummary parses root/book/src/SUMMARY.md into its chapter links, in order.
func ReadSummary(root string) ([]Entry, error) {
	text, err := os.ReadFile(filepath.Join(root, SrcDir, "SUMMARY.md"))
	if err != nil {
		return nil, err
	}
	var entries []Entry
	for i, line := range strings.Split(string(text), "\n") {
		m := summaryLink.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		target := strings.TrimSpace(m[2])
		if target != "" {
			if u, err := url.PathUnescape(target); err == nil {
				target = u
			}
			target = path.Clean(target)
		}
		entries = append(entries, Entry{Title: m[1], Path: target, Line: i + 1})
	}
	return entries, nil
}

// CheckSummary reports chapters that SUMMARY.md links but that do not exist, or
// that it links twice. A missing SUMMARY.md is itself a problem.
func CheckSummary(root string) []Problem {
	const file = SrcDir + "/SUMMARY.md"
	entries, err := ReadSummary(root)
	if err != nil {
		return []Problem{{File: file, Msg: fmt.Sprintf("cannot read the table of contents: %v", err)}}
	}
	if len(entries) == 0 {
		return []Problem{{File: file, Msg: "links no chapters"}}
	}
	var problems []Problem
	seen := map[string]int{}
	for _, e := range entries {
		if e.Path == "" {
			continue // a draft chapter: mdBook shows the title without a page
		}
		if prev, ok := seen[e.Path]; ok {
			problems = append(problems, Problem{file, e.Line, fmt.Sprintf("chapter %q (%s) is already listed on line %d", e.Title, e.Path, prev)})
			continue
		}
		seen[e.Path] = e.Line
		if !isFile(filepath.Join(root, SrcDir, filepath.FromSlash(e.Path))) {
			problems = append(problems, Problem{file, e.Line, fmt.Sprintf("chapter %q links %s, which does not exist", e.Title, e.Path)})
		}
	}
	return problems
}

// chapters returns the existing chapter files that SUMMARY.md lists.
func chapters(root string) ([]Entry, error) {
	entries, err := ReadSummary(root)
	if err != nil {
		return nil, err
	}
	var out []Entry
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Path == "" || seen[e.Path] || !isFile(filepath.Join(root, SrcDir, filepath.FromSlash(e.Path))) {
			continue
		}
		seen[e.Path] = true
		out = append(out, e)
	}
	return out, nil
}

// CheckLinks reports every relative link of every chapter listed in SUMMARY.md
// that does not resolve: a missing file, a chapter SUMMARY.md does not list, an
// absolute path, or a #fragment with no matching heading in the target.
func CheckLinks(root string) []Problem {
	entries, err := chapters(root)
	if err != nil {
		return []Problem{{File: SrcDir + "/SUMMARY.md", Msg: err.Error()}}
	}
	listed := map[string]bool{}
	for _, e := range entries {
		listed[e.Path] = true
	}
	ids := map[string]map[string]bool{} // chapter path -> heading ids, computed on demand
	headingIDs := func(chapter string) map[string]bool {
		if ids[chapter] == nil {
			text, err := os.ReadFile(filepath.Join(root, SrcDir, filepath.FromSlash(chapter)))
			if err != nil {
				return nil
			}
			ids[chapter] = HeadingIDs(string(text))
		}
		return ids[chapter]
	}
	var problems []Problem
	for _, e := range entries {
		file := SrcDir + "/" + e.Path
		text, err := os.ReadFile(filepath.Join(root, SrcDir, filepath.FromSlash(e.Path)))
		if err != nil {
			problems = append(problems, Problem{File: file, Msg: err.Error()})
			continue
		}
		for _, l := range Links(string(text)) {
			if msg := checkLink(root, e.Path, l.Target, listed, headingIDs); msg != "" {
				problems = append(problems, Problem{file, l.Line, fmt.Sprintf("link %q: %s", l.Target, msg)})
			}
		}
	}
	return problems
}

// scheme matches the start of an absolute URL (https:, mailto:, ...).
var scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// checkLink resolves one link target written in chapter and returns what is
// wrong with it, or "".
func checkLink(root, chapter, target string, listed map[string]bool, headingIDs func(string) map[string]bool) string {
	if scheme.MatchString(target) || strings.HasPrefix(target, "//") {
		return "" // an external link: not checked
	}
	p, frag, _ := strings.Cut(target, "#")
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if u, err := url.PathUnescape(p); err == nil {
		p = u
	}
	if strings.HasPrefix(p, "/") {
		return "absolute paths break when the book is served from a subfolder; use a path relative to the chapter"
	}
	dest := chapter // a bare #fragment points into the chapter itself
	if p != "" {
		dest = path.Clean(path.Join(path.Dir(chapter), p))
		full := filepath.Join(root, SrcDir, filepath.FromSlash(dest))
		if _, err := os.Stat(full); err != nil {
			return fmt.Sprintf("%s does not exist", path.Join(SrcDir, dest))
		}
		if strings.HasSuffix(dest, ".md") && !listed[dest] {
			return fmt.Sprintf("%s is not listed in SUMMARY.md, so mdBook does not render it", path.Join(SrcDir, dest))
		}
	}
	if frag == "" || !strings.HasSuffix(dest, ".md") {
		return ""
	}
	if u, err := url.PathUnescape(frag); err == nil {
		frag = u
	}
	if !headingIDs(dest)[frag] {
		return fmt.Sprintf("no heading in %s has the id %q", path.Join(SrcDir, dest), frag)
	}
	return ""
}

// Link is one link or image target found in a chapter.
type Link struct {
	Target string
	Line   int
}

var (
	// inlineLink matches [text](target) and ![alt](target "title"); group 1 is
	// the target, with or without angle brackets.
	inlineLink = regexp.MustCompile(`!?\[(?:[^\[\]\\]|\\.|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)`)
	// refDef matches a reference definition: [label]: target "title".
	refDef = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
)

// Links returns the link and image targets of a markdown text, outside fenced
// code blocks and inline code.
func Links(text string) []Link {
	var links []Link
	for _, ln := range proseLines(text) {
		line := stripCodeSpans(ln.text)
		if m := refDef.FindStringSubmatch(line); m != nil {
			links = append(links, Link{strings.Trim(m[1], "<>"), ln.num})
			continue
		}
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			links = append(links, Link{strings.Trim(m[1], "<>"), ln.num})
		}
	}
	return links
}

// stripCodeSpans removes the inline code spans of a line: a run of backticks,
// the text up to the next run of the same length, and that run. A run with no
// match is kept as literal text, as CommonMark does.
func stripCodeSpans(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); {
		if line[i] != '`' {
			b.WriteByte(line[i])
			i++
			continue
		}
		n := 0
		for i+n < len(line) && line[i+n] == '`' {
			n++
		}
		closeAt := -1
		for j := i + n; j < len(line); {
			if line[j] != '`' {
				j++
				continue
			}
			m := 0
			for j+m < len(line) && line[j+m] == '`' {
				m++
			}
			if m == n {
				closeAt = j + m
				break
			}
			j += m
		}
		if closeAt < 0 {
			b.WriteString(line[i : i+n])
			i += n
			continue
		}
		i = closeAt
	}
	return b.String()
}

// numbered is a line of text with its 1-based line number.
type numbered struct {
	text string
	num  int
}

// fence matches the opening or closing line of a fenced code block.
var fence = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})(.*)$")

// CodeBlock is a fenced code block: its lines, without the fences.
type CodeBlock struct {
	Info      string // the text after the opening fence, e.g. "sh"
	Lines     []string
	Start     int  // line number of the opening fence
	End       int  // line number of the closing fence (the last line if unclosed)
	Unclosed  bool // the file ended before the closing fence
	Remainder bool // non-blank text follows the block
}

// scan splits markdown text into prose lines and fenced code blocks.
func scan(text string) (prose []numbered, blocks []CodeBlock) {
	lines := strings.Split(text, "\n")
	var open *CodeBlock
	var marker string
	for i, line := range lines {
		num := i + 1
		line = strings.TrimRight(line, "\r")
		if open != nil {
			if m := fence.FindStringSubmatch(line); m != nil && m[1][0] == marker[0] &&
				len(m[1]) >= len(marker) && strings.TrimSpace(m[2]) == "" {
				open.End = num
				blocks = append(blocks, *open)
				open = nil
				continue
			}
			open.Lines = append(open.Lines, line)
			continue
		}
		if m := fence.FindStringSubmatch(line); m != nil && !(m[1][0] == '`' && strings.Contains(m[2], "`")) {
			marker = m[1]
			open = &CodeBlock{Info: strings.TrimSpace(m[2]), Start: num}
			continue
		}
		prose = append(prose, numbered{line, num})
		if len(blocks) > 0 && strings.TrimSpace(line) != "" {
			blocks[len(blocks)-1].Remainder = true
		}
	}
	if open != nil {
		open.End, open.Unclosed = len(lines), true
		blocks = append(blocks, *open)
	}
	return prose, blocks
}

func proseLines(text string) []numbered {
	prose, _ := scan(text)
	return prose
}

// CodeBlocks returns the fenced code blocks of a markdown text, in order.
func CodeBlocks(text string) []CodeBlock {
	_, blocks := scan(text)
	return blocks
}

var (
	atxHeading    = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	setextRule    = regexp.MustCompile(`^ {0,3}(=+|-+)[ \t]*$`)
	customID      = regexp.MustCompile(`\s*\{#([^}\s]+)\}\s*$`)
	headingLink   = regexp.MustCompile(`!?\[((?:[^\[\]\\]|\\.)*)\]\([^)]*\)`)
	htmlTag       = regexp.MustCompile(`</?[A-Za-z][^>]*>`)
	emphasisRun   = regexp.MustCompile(`\*+|(?:^|\s)_+|_+(?:\s|$)`)
	backslashEsc  = regexp.MustCompile(`\\([[:punct:]])`)
	listOrQuoteRe = regexp.MustCompile(`^\s*(?:[-*+>]|\d+[.)])\s`)
)

// HeadingIDs returns the ids mdBook gives the headings of a chapter: each
// heading's Slug, or its {#custom-id}, with "-1", "-2", ... appended to repeats.
func HeadingIDs(text string) map[string]bool {
	ids := map[string]bool{}
	add := func(id string) {
		unique := id
		for n := 1; ids[unique]; n++ {
			unique = id + "-" + strconv.Itoa(n)
		}
		ids[unique] = true
	}
	prose := proseLines(text)
	for i, ln := range prose {
		var heading string
		if m := atxHeading.FindStringSubmatch(ln.text); m != nil {
			heading = m[2]
		} else if i > 0 && setextRule.MatchString(ln.text) && prose[i-1].num == ln.num-1 {
			prev := prose[i-1].text
			if strings.TrimSpace(prev) == "" || atxHeading.MatchString(prev) || listOrQuoteRe.MatchString(prev) {
				continue
			}
			heading = prev
		} else {
			continue
		}
		if m := customID.FindStringSubmatch(heading); m != nil {
			add(m[1])
			continue
		}
		add(Slug(heading))
	}
	return ids
}

// Slug turns the markdown of a heading into the id mdBook gives it: the
// heading's plain text (markup removed), lowercased, with whitespace turned
// into '-' and every other character that is not a letter, a digit, '-' or
// '_' dropped. "Task 1: `Softmax`" becomes "task-1-softmax".
func Slug(heading string) string {
	text := headingLink.ReplaceAllString(heading, "$1")
	text = htmlTag.ReplaceAllString(text, "")
	text = strings.ReplaceAll(text, "`", "")
	text = emphasisRun.ReplaceAllStringFunc(text, func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '*' || r == '_' {
				return -1
			}
			return r
		}, s)
	})
	text = backslashEsc.ReplaceAllString(text, "$1")
	text = strings.ToLower(strings.TrimSpace(text))
	var b strings.Builder
	for _, r := range text {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case unicode.IsSpace(r):
			b.WriteByte('-')
		}
	}
	return b.String()
}

// dayChapter matches the file name of a day chapter: week1-day1.md.
var dayChapter = regexp.MustCompile(`^week(\d+)-day(\d+)\.md$`)

// dayPath matches a repository path inside a day folder, such as
// week1/day1/attention.go, but not the same path under solutions/.
var dayPath = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./-])(week\d+/day\d+/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*)`)

// CheckDayChapters reports day chapters (every weekN-dayM.md in book/src) that
// name no existing file under weekN/dayM/, name a file under a day folder that
// does not exist, or do not end with a fenced code block whose last non-empty
// line is `make check-wNdM`.
func CheckDayChapters(root string) []Problem {
	src := filepath.Join(root, SrcDir)
	names, err := os.ReadDir(src)
	if err != nil {
		return []Problem{{File: SrcDir, Msg: err.Error()}}
	}
	var problems []Problem
	for _, de := range names {
		m := dayChapter.FindStringSubmatch(de.Name())
		if m == nil || de.IsDir() {
			continue
		}
		file := SrcDir + "/" + de.Name()
		text, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			problems = append(problems, Problem{File: file, Msg: err.Error()})
			continue
		}
		problems = append(problems, checkDay(root, file, string(text), m[1], m[2])...)
	}
	return problems
}

// checkDay checks one day chapter of week w, day d.
func checkDay(root, file, text, w, d string) []Problem {
	var problems []Problem
	folder := "week" + w + "/day" + d + "/"

	// Files to edit: at least one path in the day's own folder that exists,
	// and no path into any day folder that does not.
	own := 0
	missing := map[string]int{}
	for i, line := range strings.Split(text, "\n") {
		for _, m := range dayPath.FindAllStringSubmatch(line, -1) {
			p := strings.TrimRight(m[1], ".")
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(p))); err != nil {
				if _, dup := missing[p]; !dup {
					missing[p] = i + 1
				}
				continue
			}
			if strings.HasPrefix(p, folder) {
				own++
			}
		}
	}
	var gone []string
	for p := range missing {
		gone = append(gone, p)
	}
	sort.Strings(gone)
	for _, p := range gone {
		problems = append(problems, Problem{file, missing[p], fmt.Sprintf("names %s, which does not exist in the repository", p)})
	}
	if own == 0 {
		problems = append(problems, Problem{File: file, Msg: fmt.Sprintf("names no existing file under %s; say which files the learner edits (for example in a \"Files to edit\" section)", folder)})
	}

	// The grading command closes the chapter.
	want := "make check-w" + w + "d" + d
	blocks := CodeBlocks(text)
	if len(blocks) == 0 {
		return append(problems, Problem{File: file, Msg: fmt.Sprintf("has no fenced code block; it must end with one whose last line is %q", want)})
	}
	last := blocks[len(blocks)-1]
	lastLine := ""
	for _, l := range last.Lines {
		if s := strings.TrimSpace(l); s != "" {
			lastLine = s
		}
	}
	switch {
	case last.Unclosed:
		problems = append(problems, Problem{file, last.Start, "the code block opened here is never closed"})
	case lastLine != want:
		problems = append(problems, Problem{file, last.Start, fmt.Sprintf("the last code block ends with %q; a day chapter's last code block must end with %q", lastLine, want)})
	case last.Remainder && !onlyReadingAfter(text, last.End):
		problems = append(problems, Problem{file, last.End, fmt.Sprintf("text follows the grading command; a day chapter must end with the code block that runs %q, followed at most by a %q section", want, ReadingHeading)})
	}
	return problems
}

// ReadingHeading opens the reading list that closes a chapter: papers, source
// files and API pages, one line each on why to read them.
const ReadingHeading = "## Reading"

// readingChapter matches the file name of any chapter of a day, including a
// day's second chapter such as week1-day7-kernel.md.
var readingChapter = regexp.MustCompile(`^week\d+-day\d+(?:-[A-Za-z0-9-]+)?\.md$`)

// onlyReadingAfter reports whether the prose after line `after` of text is
// nothing but blank lines followed by the Reading heading and what it holds.
func onlyReadingAfter(text string, after int) bool {
	for _, ln := range proseLines(text) {
		if ln.num <= after || strings.TrimSpace(ln.text) == "" {
			continue
		}
		return strings.TrimSpace(ln.text) == ReadingHeading
	}
	return true
}

// CheckReading reports day chapters (weekN-dayM*.md in book/src) without a
// Reading section, and Reading sections anywhere in the guide's chapters that
// are not the chapter's last section or are not a plain list of links: every
// line a list item with at least one link, or the indented continuation of
// one.
func CheckReading(root string) []Problem {
	entries, err := chapters(root)
	if err != nil {
		return []Problem{{File: SrcDir + "/SUMMARY.md", Msg: err.Error()}}
	}
	files := map[string]bool{}
	for _, e := range entries {
		files[e.Path] = true
	}
	names, err := os.ReadDir(filepath.Join(root, SrcDir))
	if err != nil {
		return []Problem{{File: SrcDir, Msg: err.Error()}}
	}
	for _, de := range names {
		if !de.IsDir() && readingChapter.MatchString(de.Name()) {
			files[de.Name()] = true
		}
	}
	var sorted []string
	for f := range files {
		sorted = append(sorted, f)
	}
	sort.Strings(sorted)
	var problems []Problem
	for _, name := range sorted {
		file := SrcDir + "/" + name
		text, err := os.ReadFile(filepath.Join(root, SrcDir, filepath.FromSlash(name)))
		if err != nil {
			problems = append(problems, Problem{File: file, Msg: err.Error()})
			continue
		}
		problems = append(problems, checkReading(file, string(text), readingChapter.MatchString(path.Base(name)))...)
	}
	return problems
}

// listItem matches the first line of a bullet list item.
var listItem = regexp.MustCompile(`^ {0,3}[-*+][ \t]+\S`)

// checkReading checks the Reading section of one chapter; required says
// whether the chapter must have one.
func checkReading(file, text string, required bool) []Problem {
	prose, blocks := scan(text)
	start := -1 // index in prose of the Reading heading
	for i, ln := range prose {
		if strings.TrimSpace(ln.text) == ReadingHeading {
			start = i
			break
		}
	}
	if start < 0 {
		if required {
			return []Problem{{File: file, Msg: fmt.Sprintf("has no %q section; a day chapter ends with its reading list", ReadingHeading)}}
		}
		return nil
	}
	heading := prose[start].num
	var problems []Problem
	for _, b := range blocks {
		if b.Start > heading {
			problems = append(problems, Problem{file, b.Start, "a code block inside the Reading section; it holds only a list of links"})
		}
	}
	// Each item is its first line plus its indented continuation lines, joined
	// so that a link wrapped across lines still counts.
	type item struct {
		text string
		line int
	}
	var items []item
	inItem := false
	for _, ln := range prose[start+1:] {
		line := ln.text
		switch {
		case strings.TrimSpace(line) == "":
			continue
		case atxHeading.MatchString(line):
			problems = append(problems, Problem{file, ln.num, fmt.Sprintf("a heading after %q; the reading list is the chapter's last section", ReadingHeading)})
			inItem = false
		case listItem.MatchString(line):
			items = append(items, item{line, ln.num})
			inItem = true
		case inItem && (line[0] == ' ' || line[0] == '\t'):
			items[len(items)-1].text += " " + strings.TrimSpace(line)
		default:
			problems = append(problems, Problem{file, ln.num, "text outside the list in the Reading section; give each source its own list item"})
			inItem = false
		}
	}
	for _, it := range items {
		if len(Links(it.text)) == 0 {
			problems = append(problems, Problem{file, it.line, "a reading list item without a link"})
		}
	}
	if len(items) == 0 {
		problems = append(problems, Problem{file, heading, "the Reading section lists nothing"})
	}
	return problems
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
