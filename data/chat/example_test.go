package chat_test

import (
	"fmt"

	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/tokenizer"
)

func ExampleTemplate_Render() {
	b, _ := tokenizer.NewByteLevel(50, []string{"hi there"}, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	tok, _ := tokenizer.Parse(b, "demo")
	tmpl, err := chat.New("chatml", tok)
	if err != nil {
		panic(err)
	}
	ids, mask, err := tmpl.Render([]chat.Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "hi there"}}, chat.Options{})
	if err != nil {
		panic(err)
	}
	var trained []int
	for i, m := range mask {
		if m {
			trained = append(trained, ids[i])
		}
	}
	fmt.Printf("%q\n", tok.Decode(ids))
	fmt.Printf("%q\n", tok.Decode(trained))
	// Output:
	// "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhi there<|im_end|>\n"
	// "hi there<|im_end|>"
}
