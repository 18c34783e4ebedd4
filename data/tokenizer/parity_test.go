package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestParity encodes and decodes the corpus with the Rust reference and with
// this package on the real Qwen3 and Llama 3 tokenizer.json files. Qwen2.5
// ships the same tokenizer model, pre-tokenizer and normalizer as Qwen3 (only
// added tokens differ), so Qwen3 covers it.
func TestParity(t *testing.T) {
	for _, family := range []string{"qwen3", "llama3"} {
		t.Run(family, func(t *testing.T) {
			path := realTokenizer(t, family)
			tok, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			corpus := append([]namedText(nil), parityCorpus...)
			corpus = append(corpus, namedText{"long-document", longDocument(100 << 10)})
			corpus = append(corpus, longRunCorpus(4, 200)...)
			n := 2000
			if testing.Short() {
				n = 200
			}
			corpus = append(corpus, randomCorpus(1, n, 24)...)
			req := refRequest{}
			for _, c := range corpus {
				req.Encode = append(req.Encode, c.text)
			}
			// Decode: the corpus ids, plus random id runs that cut characters.
			want := runRef(t, path, req)
			r := rand.New(rand.NewPCG(3, 3))
			for i := 0; i < 300; i++ {
				ids := make([]int, 1+r.IntN(6))
				for k := range ids {
					ids[k] = r.IntN(tok.VocabSize())
				}
				req.Decode = append(req.Decode, ids)
			}
			req.Decode = append(req.Decode, want.Encode...)
			req.Encode = nil
			wantDec := runRef(t, path, req).Decode

			texts := make([]string, len(corpus))
			for i, c := range corpus {
				texts[i] = c.text
			}
			gotBatch := tok.EncodeBatch(texts)
			for i, c := range corpus {
				got := tok.Encode(c.text)
				if !slices.Equal(got, want.Encode[i]) {
					t.Errorf("%s #%d %q:\n got %v\nwant %v", c.name, i, trunc(c.text), trunc(fmt.Sprint(got)), trunc(fmt.Sprint(want.Encode[i])))
					continue
				}
				if !slices.Equal(gotBatch[i], got) {
					t.Errorf("%s #%d: EncodeBatch differs from Encode", c.name, i)
				}
			}
			for i, ids := range req.Decode {
				if got := tok.Decode(ids); got != wantDec[i] {
					t.Errorf("Decode(%v) = %q, want %q", trunc(fmt.Sprint(ids)), trunc(got), trunc(wantDec[i]))
				}
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
