package heldout

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tinyllm-go/tinyllm/internal/fixture"
)

func loadSkills(t *testing.T) *Skills {
	t.Helper()
	root, err := fixture.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(filepath.Join(root, "refgen", "chatmodel", "skills.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Like corpus.selftest: every reference answer passes its checker and a
// non-answer fails it.
func TestReferencesPassTheirCheckers(t *testing.T) {
	s := loadSkills(t)
	for _, seed := range []uint64{Seed, 5} {
		for _, it := range s.Questions(seed, 300) {
			if !Check(it, it.Reference) {
				t.Errorf("%s %q: the reference %q fails its checker", it.ID, it.Question, it.Reference)
			}
			if Check(it, "I don't know.") {
				t.Errorf("%s %q: \"I don't know.\" passes the checker", it.ID, it.Question)
			}
		}
	}
}

func TestQuestionsAreDeterministic(t *testing.T) {
	s := loadSkills(t)
	a, b := s.Questions(Seed, 50), s.Questions(Seed, 50)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave different questions")
	}
	if len(a) != 50*len(SkillNames) {
		t.Fatalf("got %d questions, want %d", len(a), 50*len(SkillNames))
	}
	if reflect.DeepEqual(a, s.Questions(Seed+1, 50)) {
		t.Fatal("different seeds gave the same questions")
	}
	// Each skill has its own stream: asking for more questions does not change the first ones.
	more := s.Questions(Seed, 60)
	for k := range SkillNames {
		if !reflect.DeepEqual(a[k*50:(k+1)*50], more[k*60:k*60+50]) {
			t.Fatalf("skill %s: the first 50 questions depend on how many are asked", SkillNames[k])
		}
	}
}

// The ranges of SKILLS.md, checked on the references and the questions.
func TestQuestionsFollowTheRanges(t *testing.T) {
	s := loadSkills(t)
	arith := regexp.MustCompile(`^(\d+) ([+-]) (\d+) = (\d+)\.$`)
	count := regexp.MustCompile(`^Spelled out, ([a-z]+) is ([a-z-]+)\. The letter ([a-z]) appears (\d+) times?\.$`)
	inWords := map[string]bool{}
	for _, w := range s.Words {
		inWords[w] = true
	}
	lowered, truncated := 0, 0
	items := s.Questions(Seed, 2000)
	for _, it := range items {
		q := it.Question
		if q[0] >= 'a' && q[0] <= 'z' {
			lowered++
		}
		if !strings.ContainsAny(q[len(q)-1:], "?.!") {
			truncated++
		}
		switch it.Skill {
		case "add", "sub":
			m := arith.FindStringSubmatch(it.Reference)
			if m == nil {
				t.Fatalf("%s: reference %q", it.ID, it.Reference)
			}
			a, _ := strconv.Atoi(m[1])
			b, _ := strconv.Atoi(m[3])
			if a > 999 || b > 999 || (it.Skill == "sub" && a < b) || !strings.Contains(q, m[1]) || !strings.Contains(q, m[3]) {
				t.Fatalf("%s: %q -> %q out of range", it.ID, q, it.Reference)
			}
		case "sort":
			if n := len(it.Numbers); n < 2 || n > 7 || !slices.IsSorted(it.Numbers) || it.Numbers[0] < 0 || it.Numbers[n-1] > 99 {
				t.Fatalf("%s: %v", it.ID, it.Numbers)
			}
		case "reverse":
			if n := len(it.Items); n < 2 || n > 7 {
				t.Fatalf("%s: %v", it.ID, it.Items)
			}
			letters := true
			for _, x := range it.Items {
				letters = letters && len(x) == 1
				if !inWords[x] && (len(x) < 1 || len(x) > 8) {
					t.Fatalf("%s: item %q", it.ID, x)
				}
			}
			// A list of single letters from the letters branch never gets a
			// template about words (a list of random strings may be short but
			// is never of length 1, since they have 2..8 letters).
			if letters && strings.Contains(q, "words") || !letters && strings.Contains(q, "letters") {
				t.Fatalf("%s: template does not fit the items: %q", it.ID, q)
			}
		case "count":
			m := count.FindStringSubmatch(it.Reference)
			if m == nil {
				t.Fatalf("%s: reference %q", it.ID, it.Reference)
			}
			if n, _ := strconv.Atoi(m[4]); n != it.Value || n != strings.Count(m[1], m[3]) || m[2] != strings.Join(strings.Split(m[1], ""), "-") {
				t.Fatalf("%s: reference %q", it.ID, it.Reference)
			}
			if len(m[1]) < 3 || len(m[1]) > 10 && !inWords[m[1]] {
				t.Fatalf("%s: word %q", it.ID, m[1])
			}
		case "facts", "smalltalk":
			if !strings.Contains(it.Reference, it.Keyword) {
				t.Fatalf("%s: %q lacks %q", it.ID, it.Reference, it.Keyword)
			}
		}
	}
	// The noise: each change has probability 0.15 (the final character can
	// only be dropped from questions that end in punctuation, most of them).
	n := float64(len(items))
	if f := float64(lowered) / n; f < 0.10 || f > 0.20 {
		t.Errorf("first letter lower-cased in %.3f of the questions, want about 0.15", f)
	}
	if f := float64(truncated) / n; f < 0.25 || f > 0.50 {
		t.Errorf("%.3f of the questions end without punctuation", f)
	}
}

// Edge cases of the checkers; each verdict agrees with corpus.check.
func TestCheckers(t *testing.T) {
	add := Item{Skill: "add", Value: 825}
	sub := Item{Skill: "sub", Value: 0}
	cnt := Item{Skill: "count", Value: 1}
	srt := Item{Skill: "sort", Numbers: []int{3, 7, 7, 42}}
	rev := Item{Skill: "reverse", Items: []string{"yellow", "blue", "red"}}
	fact := Item{Skill: "facts", Keyword: "Go"}
	for _, c := range []struct {
		it     Item
		answer string
		want   bool
	}{
		{add, "358 + 467 = 825.", true},
		{add, "825", true},
		{add, "  358 + 467 = 825.\n", true},
		{add, "358 + 467 = 824.", false},
		{add, "825 is 358 + 467", false}, // the last integer counts
		{add, "358 + 467 = 0825.", true}, // as an integer
		{add, "", false},
		{sub, "5 - 5 = 0.", true},
		{sub, "5 - 5 = -0.", true},
		{sub, "5 - 5 = 99999999999999999999999.", false},
		{cnt, "Spelled out, cat is c-a-t. The letter a appears 1 time.", true},
		{cnt, "The letter a appears once.", false},
		{srt, "Here are the numbers in ascending order: 3, 7, 7, 42.", true},
		{srt, "3 7 7 42", true},
		{srt, "Here are the numbers in ascending order: 3, 7, 42.", false},
		{srt, "Here are 4 numbers in ascending order: 3, 7, 7, 42.", false},
		{rev, "Here is the list reversed: yellow, blue, red.", true},
		{rev, "Here is the list reversed: yellow, blue, red", true},
		{rev, "Here is the list reversed: yellow, blue, red..", false},
		{rev, "Here is the list reversed: yellow,blue, red.", false},
		{rev, "Note: x. Here is the list reversed: yellow, blue, red.", true},
		{rev, "yellow, blue, red.", false},
		{fact, "The engine that runs me is written in Go.", true},
		{fact, "The engine that runs me is written in go.", false},
	} {
		if got := Check(c.it, c.answer); got != c.want {
			t.Errorf("Check(%s %v%v, %q) = %v, want %v", c.it.Skill, c.it.Value, c.it.Numbers, c.answer, got, c.want)
		}
	}
}

func TestLoadRefusesOtherVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skills.json")
	if err := os.WriteFile(path, []byte(`{"version": 2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("Load of a version 2 file: err = %v", err)
	}
}
