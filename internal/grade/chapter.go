package grade

import (
	"regexp"
	"strings"
	"sync"
	"testing"
)

// chapterOverrides maps a task prefix to its chapter where the chapter is not
// simply book/src/weekW-dayD.md.
var chapterOverrides = map[string]string{
	"W1D7 Task 2": "book/src/week1-day7-kernel.md",
}

var dayPrefix = regexp.MustCompile(`^W(\d+)D(\d+)`)

// Chapter returns the guide's chapter for a task named like "W1D3 Task 2 …",
// or "" if the name does not start with a day.
func Chapter(task string) string {
	for prefix, chapter := range chapterOverrides {
		if strings.HasPrefix(task, prefix) {
			return chapter
		}
	}
	m := dayPrefix.FindStringSubmatch(task)
	if m == nil {
		return ""
	}
	return "book/src/week" + m[1] + "-day" + m[2] + ".md"
}

// Pointer is the line a failed task ends with.
func Pointer(task string) string {
	return "see " + Chapter(task) + ", section 'When a check fails'"
}

var (
	pointed sync.Map // *testing.T -> struct{}: PointToChapter already registered
	stubbed sync.Map // top-level test name -> struct{}: it hit a TODO stub
)

// PointToChapter arranges for t, if it fails, to end with one line that
// points to the chapter's troubleshooting section. A test that failed only
// because it hit a TODO stub gets no pointer: its "not implemented yet" line
// says all there is to say. Calling it again for the same t does nothing.
func PointToChapter(t *testing.T, task string) {
	t.Helper()
	if Chapter(task) == "" {
		return
	}
	if _, dup := pointed.LoadOrStore(t, struct{}{}); dup {
		return
	}
	t.Cleanup(func() {
		pointed.Delete(t)
		if _, stub := stubbed.Load(rootName(t)); stub || !t.Failed() {
			return
		}
		t.Log(Pointer(task))
	})
}

// markStub records that the top-level test around t hit a TODO stub.
func markStub(t *testing.T) {
	stubbed.Store(rootName(t), struct{}{})
}

func rootName(t *testing.T) string {
	root, _, _ := strings.Cut(t.Name(), "/")
	return root
}
