package chat

import (
	"errors"
	"fmt"
	"strings"

	"github.com/msmtrain/msmtrain/data/tokenizer"
)

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Options control what Render trains on.
type Options struct {
	// TrainTurns is "all" (default, also ""): every assistant turn is
	// trained; or "last": only the final assistant turn.
	TrainTurns string
	// StripThinking removes <think>...</think> reasoning from assistant
	// turns before rendering.
	StripThinking bool
}

// Errors that Render and RenderPrompt wrap in a *MessageError; callers count
// rejections with errors.Is.
var (
	ErrUnknownRole  = errors.New("unknown role")
	ErrEmptyContent = errors.New("empty content")
	ErrNoAssistant  = errors.New("no assistant turn to train on")
)

// MessageError reports a chat that cannot be rendered. Index is the message
// at fault, -1 for the chat as a whole.
type MessageError struct {
	Index int
	Role  string
	Err   error
}

func (e *MessageError) Error() string {
	if e.Index < 0 {
		return "chat: " + e.Err.Error()
	}
	return fmt.Sprintf("chat: message %d (role %q): %v", e.Index, e.Role, e.Err)
}

func (e *MessageError) Unwrap() error { return e.Err }

// Template renders chats of one model family with one tokenizer.
type Template struct {
	family string
	tok    *tokenizer.Tokenizer
	render func(b *builder, msgs []Message, o Options, prompt bool)
	eot    int
	eos    int
	ids    map[string]int // special tokens the family uses
}

var families = map[string]struct {
	render   func(b *builder, msgs []Message, o Options, prompt bool)
	eot, eos string
	specials []string
}{
	"chatml": {renderChatML, "<|im_end|>", "<|endoftext|>", []string{"<|im_start|>", "<|im_end|>"}},
	"qwen2":  {renderQwen2, "<|im_end|>", "<|endoftext|>", []string{"<|im_start|>", "<|im_end|>"}},
	"qwen3":  {renderQwen3, "<|im_end|>", "<|endoftext|>", []string{"<|im_start|>", "<|im_end|>"}},
	"llama3": {renderLlama3, "<|eot_id|>", "<|end_of_text|>",
		[]string{"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}},
	"llama3.1": {renderLlama31, "<|eot_id|>", "<|end_of_text|>",
		[]string{"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}},
}

// Families lists the template families, for messages and flag help.
const Families = "qwen2, qwen3, llama3, llama3.1, chatml"

// New returns the template of family (one of Families) for tok, which must
// hold the family's special tokens.
func New(family string, tok *tokenizer.Tokenizer) (*Template, error) {
	f, ok := families[family]
	if !ok {
		return nil, fmt.Errorf("chat: unknown template family %q (want one of %s)", family, Families)
	}
	t := &Template{family: family, tok: tok, render: f.render, ids: map[string]int{}}
	for _, s := range append([]string{f.eot, f.eos}, f.specials...) {
		id, ok := tok.TokenID(s)
		if !ok {
			return nil, fmt.Errorf("chat: tokenizer %s lacks the %s special token %q", tok.Name(), family, s)
		}
		t.ids[s] = id
	}
	t.eot, t.eos = t.ids[f.eot], t.ids[f.eos]
	return t, nil
}

// Family returns the template family name.
func (t *Template) Family() string { return t.family }

// EOT returns the end-of-turn token id (<|im_end|> or <|eot_id|>).
func (t *Template) EOT() int { return t.eot }

// EOS returns the end-of-document id used when packing plain documents
// (<|endoftext|> for Qwen and ChatML, <|end_of_text|> for Llama 3 and 3.1).
func (t *Template) EOS() int { return t.eos }

// Render returns the ids of msgs as the family's chat template renders them
// without a generation prompt, and mask[i] true where ids[i] is trained.
func (t *Template) Render(msgs []Message, o Options) (ids []int, mask []bool, err error) {
	if err := validate(msgs); err != nil {
		return nil, nil, err
	}
	last := -1
	for i, m := range msgs {
		if m.Role == "assistant" {
			last = i
		}
	}
	if last < 0 {
		return nil, nil, &MessageError{Index: -1, Err: ErrNoAssistant}
	}
	switch o.TrainTurns {
	case "", "all", "last":
	default:
		return nil, nil, fmt.Errorf("chat: Options.TrainTurns %q: want \"all\" or \"last\"", o.TrainTurns)
	}
	b := &builder{t: t}
	if o.TrainTurns == "last" {
		b.trainOnly = last
	} else {
		b.trainOnly = -1
	}
	t.render(b, msgs, o, false)
	ids, mask = b.finish()
	return ids, mask, nil
}

// RenderPrompt returns the ids of msgs followed by an opened assistant turn,
// for generation. For qwen3 the assistant may think (enable_thinking true).
func (t *Template) RenderPrompt(msgs []Message) ([]int, error) {
	if err := validate(msgs); err != nil {
		return nil, err
	}
	b := &builder{t: t, trainOnly: -1}
	t.render(b, msgs, Options{}, true)
	ids, _ := b.finish()
	return ids, nil
}

func validate(msgs []Message) error {
	for i, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant":
		default:
			return &MessageError{Index: i, Role: m.Role, Err: ErrUnknownRole}
		}
		if strings.TrimSpace(m.Content) == "" {
			return &MessageError{Index: i, Role: m.Role, Err: ErrEmptyContent}
		}
	}
	return nil
}
