// Package heldout draws fresh questions for the skills of the shipped TinyQwen
// model and checks the model's answers by program.
//
// It is the Go side of the contract in refgen/chatmodel/SKILLS.md: the same
// templates, word list, facts and small talk (read from
// refgen/chatmodel/skills.json, version 1), the same distributions as
// refgen/chatmodel/corpus.py, the same light noise on the question, and the same
// checkers. Only the random stream differs: Python's random.Random cannot be
// replayed here, so Go draws its own questions from math/rand/v2 (PCG), which
// makes them held out from the training corpus by construction (up to the
// coincidences a small space allows: a fact question, a short list).
package heldout

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Seed is the default seed of the Go held-out questions. It is none of the
// Python seeds (training corpus 1234, tokenizer corpus 11 and 12, Python
// held-out set 777, the set 4242 that chose between training runs), and
// math/rand/v2's PCG is a different generator from Python's Mersenne Twister
// anyway. It changed with the second model (the first one's test seed,
// 20251127, had been looked at when deciding how to train it): questions that
// guided training would not be held out.
const Seed = 20260301

// SkillNames lists the skills in the order corpus.SKILL_NAMES gives them; skill
// k of Questions draws from its own stream, rand.NewPCG(seed, k).
var SkillNames = []string{"add", "sub", "reverse", "sort", "count", "facts", "smalltalk"}

const letters = "abcdefghijklmnopqrstuvwxyz"

// Skills is the content of skills.json.
type Skills struct {
	Version       int      `json:"version"`
	DefaultSystem string   `json:"default_system"`
	Words         []string `json:"words"`
	Add           Template `json:"add"`
	Sub           Template `json:"sub"`
	Reverse       Template `json:"reverse"`
	Sort          Template `json:"sort"`
	Count         Template `json:"count"`
	Facts         []Entry  `json:"facts"`
	Smalltalk     []Entry  `json:"smalltalk"`
}

// Template is a skill's question phrasings and its answer format.
type Template struct {
	Questions []string `json:"questions"`
	Answer    string   `json:"answer"`
}

// Entry is one fact or one kind of small talk: fixed questions, a fixed
// answer, and the keyword an answer must contain.
type Entry struct {
	ID        string   `json:"id"`
	Keyword   string   `json:"keyword"`
	Answer    string   `json:"answer"`
	Questions []string `json:"questions"`
}

// Load reads skills.json (refgen/chatmodel/skills.json in the repository) and
// refuses a version this package was not written for.
func Load(path string) (*Skills, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("heldout: %w", err)
	}
	var s Skills
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("heldout: %s: %w", path, err)
	}
	if s.Version != 1 {
		return nil, fmt.Errorf("heldout: %s is version %d; this generator follows version 1 of corpus.py", path, s.Version)
	}
	for name, t := range map[string]Template{"add": s.Add, "sub": s.Sub, "reverse": s.Reverse, "sort": s.Sort, "count": s.Count} {
		if len(t.Questions) == 0 || t.Answer == "" {
			return nil, fmt.Errorf("heldout: %s: skill %q has no questions or no answer", path, name)
		}
	}
	if len(s.Words) == 0 || len(s.Facts) == 0 || len(s.Smalltalk) == 0 {
		return nil, fmt.Errorf("heldout: %s: words, facts or smalltalk is empty", path)
	}
	return &s, nil
}

// Item is one question with what a correct answer must contain.
type Item struct {
	Skill     string
	ID        string // skill-index, as in corpus.heldout
	Question  string // the user message, noise included
	Reference string // the exact answer the model was trained to give

	Value   int      // add, sub, count: the result
	Numbers []int    // sort: the sorted list
	Items   []string // reverse: the reversed list
	Keyword string   // facts, smalltalk: the substring the answer must contain
}

// Questions returns nPerSkill questions for each skill, in SkillNames order,
// like corpus.heldout: skill k draws from rand.New(rand.NewPCG(seed, k)) a
// template and operands, then the light noise.
func (s *Skills) Questions(seed uint64, nPerSkill int) []Item {
	var items []Item
	for k, skill := range SkillNames {
		rng := rand.New(rand.NewPCG(seed, uint64(k)))
		for i := range nPerSkill {
			it := s.Make(skill, rng)
			it.Question = Vary(rng, it.Question)
			it.ID = fmt.Sprintf("%s-%d", skill, i)
			items = append(items, it)
		}
	}
	return items
}

// Make draws one question of a skill without the noise (corpus.make). It
// panics on an unknown skill.
func (s *Skills) Make(skill string, rng *rand.Rand) Item {
	switch skill {
	case "add":
		a, b := number(rng), number(rng)
		return arith(skill, s.Add, rng, a, b, a+b)
	case "sub":
		a, b := number(rng), number(rng)
		if a < b {
			a, b = b, a
		}
		return arith(skill, s.Sub, rng, a, b, a-b)
	case "reverse":
		return s.makeReverse(rng)
	case "sort":
		return s.makeSort(rng)
	case "count":
		return s.makeCount(rng)
	case "facts":
		return makeFixed(skill, s.Facts, rng)
	case "smalltalk":
		return makeFixed(skill, s.Smalltalk, rng)
	}
	panic(fmt.Sprintf("heldout: unknown skill %q", skill))
}

// randint is Python's random.randint: uniform on [lo, hi], both included.
func randint(rng *rand.Rand, lo, hi int) int { return lo + rng.IntN(hi-lo+1) }

func choice[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// number is corpus.number: a digit count d uniform in 1..3 first, then a number
// uniform among the d-digit ones (0..9 for d = 1).
func number(rng *rand.Rand) int {
	d := randint(rng, 1, 3)
	lo, hi := 0, 9
	if d > 1 {
		lo = pow10(d - 1)
		hi = pow10(d) - 1
	}
	return randint(rng, lo, hi)
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

// randomWord is corpus.random_word: lo..hi letters a..z, each uniform.
func randomWord(rng *rand.Rand, lo, hi int) string {
	b := make([]byte, randint(rng, lo, hi))
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}

// joinQuestionList is corpus.join_question_list: ", " (70%), " " (15%) or ","
// (15%) between the items.
func joinQuestionList(rng *rand.Rand, items []string) string {
	r := rng.Float64()
	sep := ","
	switch {
	case r < 0.70:
		sep = ", "
	case r < 0.85:
		sep = " "
	}
	return strings.Join(items, sep)
}

// Vary is corpus.vary: lower-case the first letter (15%), then drop a final
// '?', '.' or '!' (15%).
func Vary(rng *rand.Rand, text string) string {
	if rng.Float64() < 0.15 {
		if r, size := utf8.DecodeRuneInString(text); size > 0 && unicode.IsLetter(r) {
			text = string(unicode.ToLower(r)) + text[size:]
		}
	}
	if rng.Float64() < 0.15 && len(text) > 1 && strings.ContainsAny(text[len(text)-1:], "?.!") {
		text = text[:len(text)-1]
	}
	return text
}

// fill replaces {name} placeholders, as Python's str.format does for the
// templates of skills.json (which hold no other braces).
func fill(tmpl string, kv ...string) string {
	return strings.NewReplacer(kv...).Replace(tmpl)
}

func arith(skill string, t Template, rng *rand.Rand, a, b, c int) Item {
	as, bs := strconv.Itoa(a), strconv.Itoa(b)
	return Item{
		Skill:     skill,
		Question:  fill(choice(rng, t.Questions), "{a}", as, "{b}", bs),
		Reference: fill(t.Answer, "{a}", as, "{b}", bs, "{c}", strconv.Itoa(c)),
		Value:     c,
	}
}

func (s *Skills) makeReverse(rng *rand.Rand) Item {
	n := randint(rng, 2, 7)
	r := rng.Float64()
	items := make([]string, n)
	for i := range items {
		switch {
		case r < 0.30: // letters
			items[i] = string(letters[rng.IntN(len(letters))])
		case r < 0.90: // words
			items[i] = choice(rng, s.Words)
		default: // random strings, which count as words
			items[i] = randomWord(rng, 2, 8)
		}
	}
	// A template that names letters is only used for letters, one that names
	// words only for words.
	other := "letters"
	if r < 0.30 {
		other = "words"
	}
	var templates []string
	for _, t := range s.Reverse.Questions {
		if !strings.Contains(t, other) {
			templates = append(templates, t)
		}
	}
	q := fill(choice(rng, templates), "{items}", joinQuestionList(rng, items))
	rev := slices.Clone(items)
	slices.Reverse(rev)
	return Item{
		Skill:     "reverse",
		Question:  q,
		Reference: fill(s.Reverse.Answer, "{items}", strings.Join(rev, ", ")),
		Items:     rev,
	}
}

func (s *Skills) makeSort(rng *rand.Rand) Item {
	n := randint(rng, 2, 7)
	nums := make([]int, n)
	strs := make([]string, n)
	for i := range nums {
		nums[i] = randint(rng, 0, 99)
		strs[i] = strconv.Itoa(nums[i])
	}
	q := fill(choice(rng, s.Sort.Questions), "{items}", joinQuestionList(rng, strs))
	slices.Sort(nums)
	for i, x := range nums {
		strs[i] = strconv.Itoa(x)
	}
	return Item{
		Skill:     "sort",
		Question:  q,
		Reference: fill(s.Sort.Answer, "{items}", strings.Join(strs, ", ")),
		Numbers:   nums,
	}
}

func (s *Skills) makeCount(rng *rand.Rand) Item {
	var w string
	if rng.Float64() < 0.6 {
		w = choice(rng, s.Words)
	} else {
		w = randomWord(rng, 3, 10)
	}
	var l string
	if rng.Float64() < 0.75 {
		i := rng.IntN(len(w)) // a position, so a repeated letter is more likely
		l = w[i : i+1]
	} else {
		l = string(letters[rng.IntN(len(letters))])
	}
	n := strings.Count(w, l)
	times := "times"
	if n == 1 {
		times = "time"
	}
	return Item{
		Skill:    "count",
		Question: fill(choice(rng, s.Count.Questions), "{l}", l, "{w}", w),
		Reference: fill(s.Count.Answer, "{w}", w, "{spelled}", strings.Join(strings.Split(w, ""), "-"),
			"{l}", l, "{n}", strconv.Itoa(n), "{times}", times),
		Value: n,
	}
}

func makeFixed(skill string, entries []Entry, rng *rand.Rand) Item {
	e := choice(rng, entries)
	return Item{Skill: skill, Question: choice(rng, e.Questions), Reference: e.Answer, Keyword: e.Keyword}
}

// intRE is SKILLS.md's INT: -?\d+ (Go's \d is ASCII only, as SKILLS.md says).
var intRE = regexp.MustCompile(`-?\d+`)

// Check reports whether answer (the reply with special tokens removed) is a
// correct answer to it, by the checkers of SKILLS.md (corpus.check):
//
//   - add, sub, count: the last INT in the answer equals the result;
//   - sort: all INTs of the answer, in order, equal the sorted list;
//   - reverse: the text after the last ": ", with one final '.' removed, split
//     on ", ", equals the reversed list;
//   - facts, smalltalk: the answer contains the keyword (case-sensitive).
func Check(it Item, answer string) bool {
	answer = strings.TrimSpace(answer)
	switch it.Skill {
	case "add", "sub", "count":
		nums := intRE.FindAllString(answer, -1)
		if len(nums) == 0 {
			return false
		}
		v, err := strconv.Atoi(nums[len(nums)-1])
		return err == nil && v == it.Value // a number too long for an int is wrong anyway
	case "sort":
		nums := intRE.FindAllString(answer, -1)
		if len(nums) != len(it.Numbers) {
			return false
		}
		for i, s := range nums {
			if v, err := strconv.Atoi(s); err != nil || v != it.Numbers[i] {
				return false
			}
		}
		return true
	case "reverse":
		i := strings.LastIndex(answer, ": ")
		if i < 0 {
			return false
		}
		tail := strings.TrimSuffix(answer[i+2:], ".")
		return slices.Equal(strings.Split(tail, ", "), it.Items)
	case "facts", "smalltalk":
		return strings.Contains(answer, it.Keyword)
	}
	panic(fmt.Sprintf("heldout: unknown skill %q", it.Skill))
}
