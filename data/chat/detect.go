package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownTemplate is returned by Detect for a chat template it does not recognise.
var ErrUnknownTemplate = errors.New("chat: unrecognised chat_template")

// Detect returns the template family of a tokenizer_config.json from its
// chat_template text (a string, or a list of {name, template} where the
// "default" one is used).
func Detect(tokenizerConfigJSON []byte) (family string, err error) {
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(tokenizerConfigJSON, &cfg); err != nil {
		return "", fmt.Errorf("chat: tokenizer_config.json: %w", err)
	}
	var tmpl string
	if len(cfg.ChatTemplate) == 0 || string(cfg.ChatTemplate) == "null" {
		return "", fmt.Errorf("%w: tokenizer_config.json has no chat_template", ErrUnknownTemplate)
	}
	if err := json.Unmarshal(cfg.ChatTemplate, &tmpl); err != nil {
		var named []struct{ Name, Template string }
		if err := json.Unmarshal(cfg.ChatTemplate, &named); err != nil {
			return "", fmt.Errorf("chat: tokenizer_config.json: field chat_template: want a string or a list of {name, template}")
		}
		for _, n := range named {
			if n.Name == "default" {
				tmpl = n.Template
			}
		}
	}
	switch {
	case strings.Contains(tmpl, "<|start_header_id|>") && strings.Contains(tmpl, "Cutting Knowledge Date"):
		// Llama 3.1 dates the system turn "26 Jul 2024" unless told otherwise; Llama 3.2 takes
		// the current date (strftime_now), which no fixed rendering matches.
		if strings.Contains(tmpl, "strftime_now") || !strings.Contains(tmpl, `"26 Jul 2024"`) {
			return "", fmt.Errorf("%w: a Llama 3.x template that dates the system turn otherwise than Llama 3.1 "+
				"(\"Today Date: 26 Jul 2024\"); name the template family (llama3.1 renders that date)", ErrUnknownTemplate)
		}
		return "llama3.1", nil
	case strings.Contains(tmpl, "<|start_header_id|>"):
		return "llama3", nil
	case strings.Contains(tmpl, "<|im_start|>") && strings.Contains(tmpl, "</think>"):
		return "qwen3", nil
	case strings.Contains(tmpl, "<|im_start|>") && strings.Contains(tmpl, qwenDefaultSystem):
		return "qwen2", nil
	case strings.Contains(tmpl, "<|im_start|>"):
		return "chatml", nil
	}
	return "", fmt.Errorf("%w: no known family marker (<|im_start|>, <|start_header_id|>)", ErrUnknownTemplate)
}
