package tokenizer

import (
	"errors"
	"fmt"
	"strings"
)

// Message is one turn of a chat: Role is "system", "user" or "assistant".
type Message struct {
	Role, Content string
}

// DefaultSystemPrompt is the system message Qwen2-Instruct's chat template
// puts first when the conversation does not start with one.
const DefaultSystemPrompt = "You are a helpful assistant."

// ApplyChatTemplate renders a conversation in ChatML, the format Qwen2-Instruct
// was trained on, exactly as its chat template does in transformers:
//
//	<|im_start|>system
//	You are a helpful assistant.<|im_end|>
//	<|im_start|>user
//	Hello!<|im_end|>
//	<|im_start|>assistant
//
// Each message is "<|im_start|>{role}\n{content}<|im_end|>\n"; a default
// system message comes first unless the first message is a system one; with
// addGenerationPrompt the text ends with "<|im_start|>assistant\n", where the
// model's reply begins.
//
// The text is for showing and for comparing with other tools. To get the
// prompt's ids use EncodeChat: encoding this text with Encode would turn a
// "<|im_end|>" typed inside a message into a real end of turn.
//
// The Jinja template in tokenizer_config.json is not interpreted: this is the
// Qwen2-Instruct template written in Go (checked against transformers'
// apply_chat_template in the tests). An empty conversation, which
// transformers refuses, gives just the generation prompt (or "").
func (t *Tokenizer) ApplyChatTemplate(msgs []Message, addGenerationPrompt bool) string {
	var sb strings.Builder
	if len(msgs) > 0 && msgs[0].Role != "system" {
		writeTurn(&sb, "system", DefaultSystemPrompt)
	}
	for _, m := range msgs {
		writeTurn(&sb, m.Role, m.Content)
	}
	if addGenerationPrompt {
		sb.WriteString("<|im_start|>assistant\n")
	}
	return sb.String()
}

func writeTurn(sb *strings.Builder, role, content string) {
	sb.WriteString("<|im_start|>")
	sb.WriteString(role)
	sb.WriteString("\n")
	sb.WriteString(content)
	sb.WriteString("<|im_end|>\n")
}

// EncodeChat returns the token ids of the conversation that ApplyChatTemplate
// renders, with one difference that matters for safety: only the template's
// own markers become the control tokens <|im_start|> and <|im_end|>. The
// roles and the contents of the messages are encoded with EncodeText, so a
// message that contains "<|im_end|>\n<|im_start|>system\n..." stays text and
// cannot open a turn of its own. For messages without special tokens the ids
// are exactly those of Encode(ApplyChatTemplate(msgs, addGenerationPrompt)),
// which is what Hugging Face's apply_chat_template gives.
//
// The error for a message that is not valid UTF-8 names the message and wraps
// an *InvalidUTF8Error whose offset is a byte offset into that message's own
// content.
func (t *Tokenizer) EncodeChat(msgs []Message, addGenerationPrompt bool) ([]int, error) {
	start, okStart := t.TokenID("<|im_start|>")
	end, okEnd := t.TokenID("<|im_end|>")
	if !okStart || !okEnd {
		return nil, errors.New("tokenizer: EncodeChat: the vocabulary has no <|im_start|> / <|im_end|> tokens, so it cannot hold a ChatML conversation")
	}
	var out []int
	raw, norm := t.plainMatchers()
	turn := func(i int, role, content string) error {
		if err := checkUTF8(role); err != nil {
			return fmt.Errorf("tokenizer: EncodeChat: message %d: role: %w", i, err)
		}
		if err := checkUTF8(content); err != nil {
			return fmt.Errorf("tokenizer: EncodeChat: message %d (%s): %w", i, role, err)
		}
		// The text between two markers is one piece, as when the rendered
		// template is split at its special tokens: encoding the role and the
		// content apart would pre-tokenize "\n\n" at their seam differently.
		out = append(out, start)
		out = t.encode(out, role+"\n"+content, raw, norm)
		out = append(out, end)
		out = t.encode(out, "\n", raw, norm)
		return nil
	}
	if len(msgs) > 0 && msgs[0].Role != "system" {
		if err := turn(0, "system", DefaultSystemPrompt); err != nil {
			return nil, err
		}
	}
	for i, m := range msgs {
		if err := turn(i+1, m.Role, m.Content); err != nil {
			return nil, err
		}
	}
	if addGenerationPrompt {
		out = append(out, start)
		out = t.encode(out, "assistant\n", raw, norm)
	}
	return out, nil
}
