// Package tokenizer is the Qwen2 tokenizer: byte-level BPE read from a
// Hugging Face tokenizer.json, with the ChatML chat template and a streaming
// decoder.
//
// Encoding a text goes through the same stages as Hugging Face tokenizers:
//
//  1. Added tokens ("<|im_start|>", "<|endoftext|>", ...) are split out of
//     the raw text first, longest match at the leftmost position, and become
//     their ids directly; they are never merged with their neighbours.
//  2. Each remaining piece is normalized to NFC.
//  3. The pre-tokenizer cuts the piece into words with the Qwen2 split
//     pattern (see qwen2Pattern): words with their leading space,
//     single digits, runs of punctuation, runs of whitespace.
//  4. Each word's UTF-8 bytes are merged by BPE into vocabulary tokens. The
//     vocabulary spells bytes as printable characters (the GPT-2 byte table:
//     "Ġ" is a space), so any byte string can be encoded and no text is
//     out of vocabulary.
//
// Decoding concatenates the tokens' bytes (an added token such as
// "<|im_end|>" contributes its text) and turns them into text. Bytes that are
// not valid UTF-8 (a character cut in the middle by the ids) become U+FFFD,
// as in Hugging Face. A StreamDecoder does the same one id
// at a time, holding back an incomplete character until its last byte arrives.
//
//	tok, err := tokenizer.LoadDir("Qwen2-0.5B-Instruct")
//	ids, err := tok.Encode("Hello, world!")   // [9707 11 1879 0]
//	text, err := tok.Decode(ids)
//
// A Tokenizer is safe for concurrent use. Load refuses tokenizer.json features
// it does not implement (another pre-tokenizer, normalizer or model) with an
// error naming the feature, rather than tokenize differently from Hugging Face.
package tokenizer

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// Tokenizer encodes text to token ids and back. Build one with Load or LoadDir.
type Tokenizer struct {
	vocab        map[string]int // vocabulary spelling -> id (model tokens only)
	merges       map[uint64]merge
	byteID       [256]int32 // the token of each single byte
	ignoreMerges bool
	nfc          bool

	tokens []tokenInfo // by id; len is VocabSize

	added     map[string]int // added token content -> id
	rawAdded  *addedMatcher  // added tokens matched in the raw text
	normAdded *addedMatcher  // added tokens matched after normalization (may be nil)

	plainOnce           sync.Once
	plainRaw, plainNorm *addedMatcher // rawAdded and normAdded without the special tokens

	eosID           int // -1 if unknown
	hasChatTemplate bool

	cache wordCache
}

type tokenInfo struct {
	text    string // vocabulary spelling ("Ġworld") or added token content
	bytes   string // what the ByteLevel decoder makes of text
	present bool
	special bool
}

// VocabSize is the number of token ids, added tokens included: the largest
// id plus one. (A model's embedding table may have more rows than this.)
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenID returns the id of a token given as an added token's text
// ("<|im_end|>") or as a vocabulary spelling ("Ġworld").
func (t *Tokenizer) TokenID(token string) (int, bool) {
	if id, ok := t.added[token]; ok {
		return id, true
	}
	id, ok := t.vocab[token]
	return id, ok
}

// Token returns the token of an id: the vocabulary spelling (byte-level
// characters, "Ġworld") or the added token's text.
func (t *Tokenizer) Token(id int) (string, bool) {
	if id < 0 || id >= len(t.tokens) || !t.tokens[id].present {
		return "", false
	}
	return t.tokens[id].text, true
}

// IsSpecial reports whether id is an added token marked special
// ("<|im_end|>", "<|endoftext|>"): a control token, not text.
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.tokens) && t.tokens[id].special
}

// EOSTokenID returns the end-of-sequence token named by eos_token in
// tokenizer_config.json (for Qwen2-Instruct, <|im_end|>). It is known only
// when the tokenizer was loaded with LoadDir from a folder that has one.
func (t *Tokenizer) EOSTokenID() (int, bool) { return t.eosID, t.eosID >= 0 }

// HasChatTemplate reports whether tokenizer_config.json carried a
// chat_template. ApplyChatTemplate always renders ChatML whatever it says.
func (t *Tokenizer) HasChatTemplate() bool { return t.hasChatTemplate }

// Encode returns the token ids of text, with every added token in it, the
// special ones included, encoded as that token: "<|im_end|>" in text becomes
// the single id that ends a chat turn. That is Hugging Face's default, and it
// is what a prompt written by the program itself needs. Text typed by a user
// must go through EncodeText or EncodeChat instead, or the user can forge
// turns. Its only error is text that is not valid UTF-8; the error gives the
// byte offset of the first bad byte.
func (t *Tokenizer) Encode(text string) ([]int, error) {
	if err := checkUTF8(text); err != nil {
		return nil, fmt.Errorf("tokenizer: Encode: %w", err)
	}
	return t.encode(nil, text, t.rawAdded, t.normAdded), nil
}

// EncodeText returns the token ids of text with special tokens treated as
// plain text: "<|im_end|>" typed by a user encodes as the pieces "<", "|",
// "im", ... and can never end a turn. Added tokens that are not special (such
// as "<think>" in newer Qwen vocabularies) are still matched, as in Hugging
// Face's encode with split_special_tokens=True.
func (t *Tokenizer) EncodeText(text string) ([]int, error) {
	if err := checkUTF8(text); err != nil {
		return nil, fmt.Errorf("tokenizer: EncodeText: %w", err)
	}
	raw, norm := t.plainMatchers()
	return t.encode(nil, text, raw, norm), nil
}

// checkUTF8 says where text stops being valid UTF-8.
func checkUTF8(text string) error {
	if utf8.ValidString(text) {
		return nil
	}
	off := invalidOffset(text)
	return &InvalidUTF8Error{Offset: off, Byte: text[off]}
}

// InvalidUTF8Error is the error for text that is not valid UTF-8: Offset is
// the byte offset of the first bad byte in the text that was given.
type InvalidUTF8Error struct {
	Offset int
	Byte   byte
}

func (e *InvalidUTF8Error) Error() string {
	return fmt.Sprintf("text is not valid UTF-8: bad byte 0x%02x at byte offset %d", e.Byte, e.Offset)
}

// encode appends the ids of valid UTF-8 text to out, matching the added
// tokens of raw in the text as given and those of norm after normalization.
func (t *Tokenizer) encode(out []int, text string, raw, norm *addedMatcher) []int {
	if out == nil {
		out = make([]int, 0, len(text)/4+1)
	}
	raw.split(text, func(piece string, id int) {
		if id >= 0 {
			out = append(out, id)
			return
		}
		if t.nfc {
			piece = nfc(piece)
		}
		if norm == nil {
			out = t.encodePiece(out, piece)
			return
		}
		norm.split(piece, func(p string, id int) {
			if id >= 0 {
				out = append(out, id)
			} else {
				out = t.encodePiece(out, p)
			}
		})
	})
	return out
}

// plainMatchers returns the added-token matchers without the special tokens,
// built once on first use.
func (t *Tokenizer) plainMatchers() (raw, norm *addedMatcher) {
	t.plainOnce.Do(func() {
		t.plainRaw = t.rawAdded.withoutSpecial()
		t.plainNorm = t.normAdded.withoutSpecial()
	})
	return t.plainRaw, t.plainNorm
}

// encodePiece pre-tokenizes normalized text without added tokens and BPE-encodes
// each word.
func (t *Tokenizer) encodePiece(out []int, piece string) []int {
	splitQwen2(piece, func(start, end int) {
		word := piece[start:end]
		if len(word) > cacheMaxWord {
			out = t.bpe(out, word)
			return
		}
		if ids, ok := t.cache.get(word); ok {
			out = append(out, ids...)
			return
		}
		n := len(out)
		out = t.bpe(out, word)
		t.cache.put(word, append([]int(nil), out[n:]...))
	})
	return out
}

func invalidOffset(s string) int {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(s)
}

// Decode returns the text of ids. Added tokens, special ones included, give
// their text ("<|im_end|>"). Bytes that do not form valid UTF-8 — ids that
// cut a character in two — become U+FFFD, one per maximal invalid sequence,
// as in Hugging Face. An id that is not a token is an error.
//
// Like Hugging Face's ByteLevel decoder, Decode reads every token, added ones
// too, through the byte table: an added token whose characters are all in
// the table (all of Qwen's are ASCII) stands for those bytes, any other for its
// UTF-8. (So a non-ASCII added token such as "café" decodes, in Hugging Face
// and here, to "caf\uFFFD": é is the table's character for byte 0xE9.)
func (t *Tokenizer) Decode(ids []int) (string, error) {
	var sb strings.Builder
	var pending []byte
	for pos, id := range ids {
		if err := t.checkID(id); err != nil {
			return "", fmt.Errorf("tokenizer: Decode: position %d: %w", pos, err)
		}
		pending = append(pending, t.tokens[id].bytes...)
	}
	decodeLossy(&sb, pending, true)
	return sb.String(), nil
}

// IDError is the error for an id the tokenizer has no token for. A
// program that decodes a model's output matches it (errors.As) to say in
// its own terms that the model and the tokenizer do not belong together.
type IDError struct {
	ID   int // the id
	Size int // the tokenizer's ids are below it (VocabSize)
}

func (e *IDError) Error() string {
	if e.ID < 0 || e.ID >= e.Size {
		return fmt.Sprintf("token id %d is out of range [0, %d)", e.ID, e.Size)
	}
	return fmt.Sprintf("token id %d is not assigned to any token", e.ID)
}

func (t *Tokenizer) checkID(id int) error {
	if id < 0 || id >= len(t.tokens) || !t.tokens[id].present {
		return &IDError{ID: id, Size: len(t.tokens)}
	}
	return nil
}

// StreamDecoder turns ids into text one at a time, as a model generates
// them. A character whose bytes are spread over several tokens (common for
// Chinese and emoji) is held back until it is complete, so every string Add
// returns is valid UTF-8 and can be shown at once. The concatenation of all
// Add results and Flush equals Decode of all the ids.
type StreamDecoder struct {
	t       *Tokenizer
	pending []byte
}

// NewStreamDecoder starts a stream decoder.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder { return &StreamDecoder{t: t} }

// Add decodes one more id and returns the text it completes, possibly "".
func (d *StreamDecoder) Add(id int) (string, error) {
	if err := d.t.checkID(id); err != nil {
		return "", fmt.Errorf("tokenizer: StreamDecoder.Add: %w", err)
	}
	var sb strings.Builder
	d.pending = append(d.pending, d.t.tokens[id].bytes...)
	n := decodeLossy(&sb, d.pending, false)
	d.pending = d.pending[:copy(d.pending, d.pending[n:])]
	return sb.String(), nil
}

// Flush returns the bytes held back, an incomplete character, as U+FFFD, and
// resets the decoder. It returns "" when nothing is held back.
func (d *StreamDecoder) Flush() string {
	var sb strings.Builder
	decodeLossy(&sb, d.pending, true)
	d.pending = d.pending[:0]
	return sb.String()
}
