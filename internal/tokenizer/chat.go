package tokenizer

import "strings"

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
// model's reply begins. Encode the result to get the prompt's ids (the
// markers are added tokens, so they encode to single ids).
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
