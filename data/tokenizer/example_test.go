package tokenizer_test

import (
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
