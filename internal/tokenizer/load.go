package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/tinyllm-go/tinyllm/internal/boundedfile"
)

// maxTokenID bounds the ids a tokenizer.json may use, so that a malformed
// file cannot make Load allocate without limit.
const maxTokenID = 1 << 24

// Limits on what is read, so that a wrong or hostile file (a tokenizer.json.gz
// that unpacks to gigabytes, a link to /dev/zero) is an error, not an
// out-of-memory crash. Real files are far below them: Qwen2's tokenizer.json
// is 7 MB, its tokenizer_config.json a few kilobytes.
const (
	// MaxFileBytes is the most read of tokenizer.json, and the most a
	// gzip-compressed one may unpack to.
	MaxFileBytes = 64 << 20
	// MaxConfigBytes is the most read of tokenizer_config.json.
	MaxConfigBytes = 16 << 20
)

// Load reads a Hugging Face tokenizer.json (gzip-compressed is fine too).
func Load(path string) (*Tokenizer, error) {
	data, err := readMaybeGzip(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t, nil
}

// LoadDir reads a model folder's dir/tokenizer.json (or tokenizer.json.gz) and,
// if present, dir/tokenizer_config.json: its added_tokens_decoder adds
// tokens missing from tokenizer.json, eos_token names the end-of-sequence
// token (EOSTokenID), and the presence of chat_template is recorded
// (HasChatTemplate).
func LoadDir(dir string) (*Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(path + ".gz"); err == nil {
			path += ".gz"
		}
	}
	data, err := readMaybeGzip(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var cfg *tokenizerConfig
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	raw, err := boundedfile.Read(cfgPath, MaxConfigBytes)
	switch {
	case err == nil:
		cfg = &tokenizerConfig{}
		if err := json.Unmarshal(raw, cfg); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", cfgPath, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	f, err := parseFile(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	if cfg != nil {
		if err := cfg.mergeInto(f); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", cfgPath, err)
		}
	}
	t, err := build(f)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	if cfg != nil {
		for key, a := range cfg.AddedTokensDecoder {
			if id, ok := t.TokenID(a.Content); !ok || strconv.Itoa(id) != key {
				return nil, fmt.Errorf("tokenizer: %s: added_tokens_decoder gives %q id %s, but it is token %d", cfgPath, a.Content, key, id)
			}
		}
		t.hasChatTemplate = len(cfg.ChatTemplate) > 0 && string(cfg.ChatTemplate) != "null"
		if cfg.EOSToken != nil {
			id, ok := t.TokenID(cfg.EOSToken.Content)
			if !ok {
				return nil, fmt.Errorf("tokenizer: %s: eos_token %q is not a token", cfgPath, cfg.EOSToken.Content)
			}
			t.eosID = id
		}
	}
	return t, nil
}

// readMaybeGzip reads a regular file of at most MaxFileBytes, unpacking it
// if it is gzip-compressed, to at most MaxFileBytes again.
func readMaybeGzip(path string) ([]byte, error) {
	data, err := boundedfile.Read(path, MaxFileBytes)
	if err != nil {
		return nil, err
	}
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if data, err = boundedfile.ReadAll(path+" unpacked", zr, MaxFileBytes); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// tokenizerFile is the part of tokenizer.json that is read. Components are
// kept raw and checked one by one in build.
type tokenizerFile struct {
	Truncation    json.RawMessage `json:"truncation"`
	Padding       json.RawMessage `json:"padding"`
	AddedTokens   []*addedToken   `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         *bpeModel       `json:"model"`
}

type bpeModel struct {
	Type                    string    `json:"type"`
	Dropout                 *float64  `json:"dropout"`
	ContinuingSubwordPrefix *string   `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string   `json:"end_of_word_suffix"`
	ByteFallback            bool      `json:"byte_fallback"`
	IgnoreMerges            bool      `json:"ignore_merges"`
	Vocab                   vocabMap  `json:"vocab"`
	Merges                  mergeList `json:"merges"`
}

// The vocab (151k entries) and the merges (151k pairs) are most of
// tokenizer.json. encoding/json decodes them through reflection at about
// half a second; they are instead kept raw (encoding/json has checked their
// syntax) and read by the small scanner below, several times faster.

// jsonScanner reads values from syntactically valid JSON.
type jsonScanner struct {
	data []byte
	pos  int
	what string // for error messages
}

func (s *jsonScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: offset %d: %s", s.what, s.pos, fmt.Sprintf(format, args...))
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *jsonScanner) peek() byte {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		return s.errorf("want %q", c)
	}
	s.pos++
	return nil
}

func (s *jsonScanner) str() (string, error) {
	if s.peek() != '"' {
		return "", s.errorf("want a string")
	}
	start := s.pos
	escaped := false
	for s.pos++; s.pos < len(s.data); s.pos++ {
		switch s.data[s.pos] {
		case '\\':
			escaped = true
			s.pos++
		case '"':
			s.pos++
			if !escaped {
				return string(s.data[start+1 : s.pos-1]), nil
			}
			var out string
			if err := json.Unmarshal(s.data[start:s.pos], &out); err != nil {
				return "", s.errorf("%v", err)
			}
			return out, nil
		}
	}
	return "", s.errorf("unterminated string")
}

func (s *jsonScanner) integer() (int, error) {
	s.skipSpace()
	start := s.pos
	if s.pos < len(s.data) && s.data[s.pos] == '-' {
		s.pos++
	}
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	n, err := strconv.Atoi(string(s.data[start:s.pos]))
	if err != nil || (s.pos < len(s.data) && (s.data[s.pos] == '.' || s.data[s.pos] == 'e' || s.data[s.pos] == 'E')) {
		return 0, s.errorf("want an integer token id")
	}
	return n, nil
}

// list calls item for each element of a JSON array (or, with object, for
// each member of an object after its key has been read into key).
func (s *jsonScanner) each(open, close byte, item func() error) error {
	if err := s.expect(open); err != nil {
		return err
	}
	if s.peek() == close {
		s.pos++
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case close:
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or %q", close)
		}
	}
}

// vocabMap reads model.vocab: {"token": id, ...}.
type vocabMap map[string]int

func (v *vocabMap) UnmarshalJSON(data []byte) error {
	s := &jsonScanner{data: data, what: "model.vocab"}
	m := make(vocabMap, 1<<17)
	err := s.each('{', '}', func() error {
		tok, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		id, err := s.integer()
		if err != nil {
			return err
		}
		n := len(m)
		if m[tok] = id; len(m) == n {
			return s.errorf("token %q appears twice", tok)
		}
		return nil
	})
	*v = m
	return err
}

// mergeList reads model.merges in either spelling of tokenizer.json: legacy
// strings "a b", or pairs ["a", "b"] (tokenizers 0.20 and later), which can
// hold tokens that contain spaces.
type mergeList [][2]string

func (l *mergeList) UnmarshalJSON(data []byte) error {
	s := &jsonScanner{data: data, what: "model.merges"}
	out := make(mergeList, 0, 1<<17)
	err := s.each('[', ']', func() error {
		switch s.peek() {
		case '"':
			m, err := s.str()
			if err != nil {
				return err
			}
			a, b, ok := strings.Cut(m, " ")
			if !ok || strings.Contains(b, " ") {
				return s.errorf("merge %d: %q is not two tokens separated by one space", len(out), m)
			}
			out = append(out, [2]string{a, b})
			return nil
		case '[':
			var pair []string
			err := s.each('[', ']', func() error {
				t, err := s.str()
				pair = append(pair, t)
				return err
			})
			if err != nil {
				return err
			}
			if len(pair) != 2 {
				return s.errorf("merge %d has %d tokens, want 2", len(out), len(pair))
			}
			out = append(out, [2]string{pair[0], pair[1]})
			return nil
		}
		return s.errorf("merge %d is neither \"a b\" nor [\"a\", \"b\"]", len(out))
	})
	*l = out
	return err
}

// tokenizerConfig is the part of tokenizer_config.json that is read.
type tokenizerConfig struct {
	AddedTokensDecoder map[string]*addedToken `json:"added_tokens_decoder"`
	EOSToken           *tokenText             `json:"eos_token"`
	ChatTemplate       json.RawMessage        `json:"chat_template"`
}

// tokenText is a token named in tokenizer_config.json: a string, or an object
// with a "content" field.
type tokenText struct{ Content string }

func (t *tokenText) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		return json.Unmarshal(data, &t.Content)
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("token %s is neither a string nor {\"content\": ...}", data)
	}
	t.Content = obj.Content
	return nil
}

// mergeInto appends the added_tokens_decoder entries whose content
// tokenizer.json lacks, in id order, as transformers adds them. (LoadDir then
// checks that every entry got the id the config gives it.)
func (c *tokenizerConfig) mergeInto(f *tokenizerFile) error {
	have := map[string]bool{}
	for _, a := range f.AddedTokens {
		if a != nil {
			have[a.Content] = true
		}
	}
	type entry struct {
		id int
		a  *addedToken
	}
	var missing []entry
	for k, a := range c.AddedTokensDecoder {
		id, err := strconv.Atoi(k)
		if err != nil {
			return fmt.Errorf("added_tokens_decoder: key %q is not a token id", k)
		}
		if a == nil {
			return fmt.Errorf("added_tokens_decoder: %q is null", k)
		}
		if !have[a.Content] {
			missing = append(missing, entry{id, a})
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].id < missing[j].id })
	for _, e := range missing {
		cp := *e.a
		cp.ID = e.id
		f.AddedTokens = append(f.AddedTokens, &cp)
	}
	return nil
}

func parse(data []byte) (*Tokenizer, error) {
	f, err := parseFile(data)
	if err != nil {
		return nil, err
	}
	return build(f)
}

func parseFile(data []byte) (*tokenizerFile, error) {
	var f tokenizerFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("not a valid tokenizer.json: %w", err)
	}
	if f.Model == nil {
		return nil, errors.New("not a valid tokenizer.json: no \"model\"")
	}
	return &f, nil
}

// component is the "type" of a tokenizer.json component plus its fields.
type component map[string]json.RawMessage

func (c component) typ() string {
	var s string
	_ = json.Unmarshal(c["type"], &s)
	return s
}

func (c component) str(key string) (string, bool) {
	var s string
	if err := json.Unmarshal(c[key], &s); err != nil {
		return "", false
	}
	return s, true
}

func (c component) boolean(key string) bool {
	var b bool
	_ = json.Unmarshal(c[key], &b)
	return b
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func decodeComponent(raw json.RawMessage, what string) (component, error) {
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return c, nil
}

func build(f *tokenizerFile) (*Tokenizer, error) {
	t := &Tokenizer{eosID: -1}
	if !isNull(f.Truncation) || !isNull(f.Padding) {
		return nil, errors.New("truncation and padding are not supported (they must be null)")
	}
	var err error
	if t.nfc, err = checkNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if err := checkPreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if err := checkByteLevel(f.PostProcessor, "post_processor", true); err != nil {
		return nil, err
	}
	if err := checkByteLevel(f.Decoder, "decoder", false); err != nil {
		return nil, err
	}
	if err := t.buildModel(f.Model); err != nil {
		return nil, err
	}
	if err := t.buildAdded(f.AddedTokens); err != nil {
		return nil, err
	}
	return t, nil
}

func checkNormalizer(raw json.RawMessage) (nfc bool, err error) {
	if isNull(raw) {
		return false, nil
	}
	c, err := decodeComponent(raw, "normalizer")
	if err != nil {
		return false, err
	}
	switch c.typ() {
	case "NFC":
		return true, nil
	case "Sequence":
		var list []json.RawMessage
		if err := json.Unmarshal(c["normalizers"], &list); err != nil {
			return false, fmt.Errorf("normalizer: Sequence: %w", err)
		}
		for _, item := range list {
			n, err := checkNormalizer(item)
			if err != nil {
				return false, err
			}
			nfc = nfc || n
		}
		return nfc, nil
	}
	return false, fmt.Errorf("normalizer %q is not supported (only NFC or none)", c.typ())
}

func checkPreTokenizer(raw json.RawMessage) error {
	const want = `a Sequence of Split (the Qwen2 pattern, Isolated) and ByteLevel (add_prefix_space and use_regex false)`
	if isNull(raw) {
		return fmt.Errorf("pre_tokenizer: none is not supported (want %s)", want)
	}
	c, err := decodeComponent(raw, "pre_tokenizer")
	if err != nil {
		return err
	}
	if c.typ() != "Sequence" {
		return fmt.Errorf("pre_tokenizer %q is not supported (want %s)", c.typ(), want)
	}
	var list []component
	if err := json.Unmarshal(c["pretokenizers"], &list); err != nil {
		return fmt.Errorf("pre_tokenizer: Sequence: %w", err)
	}
	if len(list) != 2 || list[0].typ() != "Split" || list[1].typ() != "ByteLevel" {
		types := make([]string, len(list))
		for i, p := range list {
			types[i] = p.typ()
		}
		return fmt.Errorf("pre_tokenizer: Sequence %v is not supported (want %s)", types, want)
	}
	split := list[0]
	var pat struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	}
	if err := json.Unmarshal(split["pattern"], &pat); err != nil || pat.Regex == nil {
		return fmt.Errorf("pre_tokenizer: Split pattern %s is not supported (want the Qwen2 regex)", split["pattern"])
	}
	if *pat.Regex != qwen2Pattern {
		return fmt.Errorf("pre_tokenizer: Split regex %q is not supported (only the Qwen2 pattern %q)", *pat.Regex, qwen2Pattern)
	}
	if b, _ := split.str("behavior"); b != "Isolated" || split.boolean("invert") {
		return fmt.Errorf("pre_tokenizer: Split behavior %q invert %v is not supported (want Isolated, false)", b, split.boolean("invert"))
	}
	bl := list[1]
	if bl.boolean("add_prefix_space") || bl.boolean("use_regex") {
		return errors.New("pre_tokenizer: ByteLevel with add_prefix_space or use_regex is not supported")
	}
	return nil
}

func checkByteLevel(raw json.RawMessage, what string, nullOK bool) error {
	if isNull(raw) {
		if nullOK {
			return nil
		}
		return fmt.Errorf("%s: none is not supported (want ByteLevel)", what)
	}
	c, err := decodeComponent(raw, what)
	if err != nil {
		return err
	}
	if c.typ() != "ByteLevel" {
		return fmt.Errorf("%s %q is not supported (want ByteLevel)", what, c.typ())
	}
	return nil
}

func (t *Tokenizer) buildModel(m *bpeModel) error {
	if m.Type != "BPE" {
		return fmt.Errorf("model type %q is not supported (want BPE)", m.Type)
	}
	switch {
	case m.Dropout != nil && *m.Dropout != 0:
		return errors.New("model: BPE dropout is not supported")
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return errors.New("model: continuing_subword_prefix is not supported")
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return errors.New("model: end_of_word_suffix is not supported")
	case m.ByteFallback:
		return errors.New("model: byte_fallback is not supported (byte-level BPE needs none)")
	case len(m.Vocab) == 0:
		return errors.New("model: empty vocab")
	}
	t.ignoreMerges = m.IgnoreMerges
	t.vocab = m.Vocab
	maxID := -1
	for tok, id := range m.Vocab {
		if id < 0 || id >= maxTokenID {
			return fmt.Errorf("model: vocab token %q has id %d, out of range [0, %d)", tok, id, maxTokenID)
		}
		maxID = max(maxID, id)
	}
	t.tokens = make([]tokenInfo, maxID+1)
	for tok, id := range m.Vocab {
		if t.tokens[id].present {
			return fmt.Errorf("model: id %d is used by both %q and %q", id, t.tokens[id].text, tok)
		}
		t.tokens[id] = tokenInfo{text: tok, bytes: string(tokenBytes(tok)), present: true}
	}
	for b := 0; b < 256; b++ {
		id, ok := m.Vocab[string(byteToRune[b])]
		if !ok {
			return fmt.Errorf("model: vocab lacks the byte-level token %q for byte 0x%02x", string(byteToRune[b]), b)
		}
		t.byteID[b] = int32(id)
	}
	t.merges = make(map[uint64]merge, len(m.Merges))
	for rank, p := range m.Merges {
		a, okA := m.Vocab[p[0]]
		b, okB := m.Vocab[p[1]]
		c, okC := m.Vocab[p[0]+p[1]]
		if !okA || !okB || !okC {
			missing := p[0] + p[1]
			if !okA {
				missing = p[0]
			} else if !okB {
				missing = p[1]
			}
			return fmt.Errorf("model: merge %d [%q %q]: token %q is not in the vocab", rank, p[0], p[1], missing)
		}
		// A repeated pair keeps its last rank, as in Hugging Face.
		t.merges[pairKey(int32(a), int32(b))] = merge{rank: int32(rank), id: int32(c)}
	}
	return nil
}

// buildAdded registers the added tokens. Their ids are assigned the way
// Hugging Face assigns them when it reads tokenizer.json, which ignores the
// "id" fields: in file order, a token that is in the vocab keeps its vocab id,
// any other gets the next id after the vocab and the added tokens so far. For
// a consistent file (every real one) that is the id written in the file.
func (t *Tokenizer) buildAdded(list []*addedToken) error {
	t.added = map[string]int{}
	var raw, normed []*addedToken
	maxAdded := -1
	for _, a := range list {
		switch {
		case a == nil:
			return errors.New("added_tokens: null entry")
		case a.Content == "":
			return fmt.Errorf("added_tokens: id %d has empty content", a.ID)
		case a.SingleWord:
			return fmt.Errorf("added_tokens: %q: single_word is not supported", a.Content)
		}
		if _, dup := t.added[a.Content]; dup {
			return fmt.Errorf("added_tokens: %q appears twice", a.Content)
		}
		id, inVocab := t.vocab[a.Content]
		if !inVocab {
			id = len(t.vocab)
			if maxAdded >= len(t.vocab) {
				id = maxAdded + 1
			}
			if id < len(t.tokens) && t.tokens[id].present {
				return fmt.Errorf("added_tokens: %q would get id %d, which the vocab uses for %q", a.Content, id, t.tokens[id].text)
			}
		}
		maxAdded = max(maxAdded, id)
		for id >= len(t.tokens) {
			t.tokens = append(t.tokens, tokenInfo{})
		}
		t.tokens[id] = tokenInfo{text: a.Content, bytes: string(tokenBytes(a.Content)), present: true, special: a.Special}
		t.added[a.Content] = id
		if a.Normalized && t.nfc {
			normed = append(normed, a)
		} else {
			raw = append(raw, a)
		}
		a.ID = id
	}
	t.rawAdded = newAddedMatcher(raw, func(a *addedToken) string { return a.Content })
	t.normAdded = newAddedMatcher(normed, func(a *addedToken) string { return nfc(a.Content) })
	return nil
}
