package tokenizer_test

import (
	"encoding/json"
	"fmt"

	"github.com/msmtrain/msmtrain/data/tokenizer"
)

// A tiny tokenizer trained on the spot, as the CPU demo does.
func Example() {
	b, err := tokenizer.NewByteLevel(20, []string{"hello hello hello world"}, []string{"<|endoftext|>"})
	if err != nil {
		panic(err)
	}
	tok, err := tokenizer.Parse(b, "demo")
	if err != nil {
		panic(err)
	}
	ids := tok.Encode("hello world<|endoftext|>")
	fmt.Println(tok.Decode(ids))
	eos, _ := tok.TokenID("<|endoftext|>")
	fmt.Println(ids[len(ids)-1] == eos)
	// Output:
	// hello world<|endoftext|>
	// true
}

// A post_processor like Llama 3.1's puts <|begin_of_text|> before the text
// when special tokens are added, as Hugging Face does for documents.
func ExampleTokenizer_EncodeWithSpecialTokens() {
	b, err := tokenizer.NewByteLevel(20, []string{"hello world"}, []string{"<|begin_of_text|>"})
	if err != nil {
		panic(err)
	}
	var f map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		panic(err)
	}
	bos := len(f["model"].(map[string]any)["vocab"].(map[string]any)) // NewByteLevel numbers special tokens last
	f["post_processor"] = map[string]any{"type": "TemplateProcessing",
		"single": []any{
			map[string]any{"SpecialToken": map[string]any{"id": "<|begin_of_text|>", "type_id": 0}},
			map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
		},
		"special_tokens": map[string]any{"<|begin_of_text|>": map[string]any{"id": "<|begin_of_text|>", "ids": []int{bos}}}}
	b, _ = json.Marshal(f)
	tok, err := tokenizer.Parse(b, "demo")
	if err != nil {
		panic(err)
	}
	fmt.Println(tok.Decode(tok.EncodeWithSpecialTokens("hello world")))
	fmt.Println(tok.Decode(tok.Encode("hello world")))
	// Output:
	// <|begin_of_text|>hello world
	// hello world
}
