package chat

import (
	"strings"
	"unicode"
)

const qwenDefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

// stripThinking drops the reasoning of an assistant turn: what follows the
// last </think>, leading newlines removed (the rule of Qwen3's template).
func stripThinking(s string) string {
	if i := strings.LastIndex(s, "</think>"); i >= 0 {
		return strings.TrimLeft(s[i+len("</think>"):], "\n")
	}
	return s
}

func content(m Message, o Options) string {
	if m.Role == "assistant" && o.StripThinking {
		return stripThinking(m.Content)
	}
	return m.Content
}

// chatmlTurn renders <|im_start|>role\ncontent<|im_end|>\n.
func chatmlTurn(b *builder, i int, role, text string) {
	tr := b.trains(i, role)
	b.special("<|im_start|>", false)
	b.text(role+"\n", false)
	b.text(text, tr)
	b.special("<|im_end|>", tr)
	b.text("\n", false)
}

func renderChatML(b *builder, msgs []Message, o Options, prompt bool) {
	for i, m := range msgs {
		chatmlTurn(b, i, m.Role, content(m, o))
	}
	if prompt {
		b.special("<|im_start|>", false)
		b.text("assistant\n", false)
	}
}

// renderQwen2 follows Qwen2.5-Instruct's template (without tools): ChatML
// with a default system turn when the chat does not start with one.
func renderQwen2(b *builder, msgs []Message, o Options, prompt bool) {
	if msgs[0].Role != "system" {
		chatmlTurn(b, -1, "system", qwenDefaultSystem)
	}
	renderChatML(b, msgs, o, prompt)
}

// renderQwen3 follows Qwen3's template (without tools): assistant turns after
// the last user query carry their reasoning in <think>...</think> (the final
// message always gets a think block, empty if it has none); earlier ones have
// it removed.
func renderQwen3(b *builder, msgs []Message, o Options, prompt bool) {
	lastQuery := len(msgs) - 1
	for i := len(msgs) - 1; i >= 0; i-- {
		c := msgs[i].Content
		if msgs[i].Role == "user" && !(strings.HasPrefix(c, "<tool_response>") && strings.HasSuffix(c, "</tool_response>")) {
			lastQuery = i
			break
		}
	}
	for i, m := range msgs {
		if m.Role != "assistant" {
			chatmlTurn(b, i, m.Role, m.Content)
			continue
		}
		text, reasoning := content(m, o), ""
		if strings.Contains(text, "</think>") {
			parts := strings.Split(text, "</think>")
			text = strings.TrimLeft(parts[len(parts)-1], "\n")
			r := strings.Split(strings.TrimRight(parts[0], "\n"), "<think>")
			reasoning = strings.TrimLeft(r[len(r)-1], "\n")
		}
		if i > lastQuery && (i == len(msgs)-1 || reasoning != "") {
			text = "<think>\n" + strings.Trim(reasoning, "\n") + "\n</think>\n\n" + strings.TrimLeft(text, "\n")
		}
		chatmlTurn(b, i, m.Role, text)
	}
	if prompt {
		b.special("<|im_start|>", false)
		b.text("assistant\n", false)
	}
}

// renderLlama3 follows Llama 3 Instruct's template: <|begin_of_text|>, then
// per message a role header, the content trimmed and <|eot_id|>. That
// template appends the assistant header even without add_generation_prompt;
// Render leaves it out (it is a generation prompt, never trained) and
// RenderPrompt keeps it.
func renderLlama3(b *builder, msgs []Message, o Options, prompt bool) {
	b.special("<|begin_of_text|>", false)
	for i, m := range msgs {
		llamaTurn(b, i, m.Role, pyStrip(content(m, o)))
	}
	if prompt {
		llamaHeader(b, "assistant")
	}
}

// llama31Dates opens the system turn of Llama 3.1 Instruct's template.
// "Today Date" is the template's default, which transformers keeps unless
// apply_chat_template is given a date_string.
const llama31Dates = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"

// renderLlama31 follows Llama 3.1 Instruct's template without tools: a system
// turn always comes first, holding llama31Dates and the chat's first message
// when that is a system message (trimmed); then the other messages as in
// Llama 3; the assistant header only for a generation prompt.
func renderLlama31(b *builder, msgs []Message, o Options, prompt bool) {
	b.special("<|begin_of_text|>", false)
	system, first := "", 0
	if len(msgs) > 0 && msgs[0].Role == "system" {
		system, first = pyStrip(msgs[0].Content), 1
	}
	llamaTurn(b, -1, "system", llama31Dates+system)
	for i := first; i < len(msgs); i++ {
		llamaTurn(b, i, msgs[i].Role, pyStrip(content(msgs[i], o)))
	}
	if prompt {
		llamaHeader(b, "assistant")
	}
}

func llamaHeader(b *builder, role string) {
	b.special("<|start_header_id|>", false)
	b.text(role, false)
	b.special("<|end_header_id|>", false)
	b.text("\n\n", false)
}

// llamaTurn renders message i (-1: one the template adds) of role.
func llamaTurn(b *builder, i int, role, text string) {
	tr := b.trains(i, role)
	llamaHeader(b, role)
	b.text(text, tr)
	b.special("<|eot_id|>", tr)
}

// pyStrip is Python's str.strip(), which Jinja's trim filter calls: it also
// strips the separators U+001C..U+001F that Go does not count as space.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
	})
}
