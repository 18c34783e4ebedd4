package tokenizer

import (
	"slices"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// TestEncodeOffsets checks that offsets tile the input: on text that the
// normalizer leaves alone each token's bytes are exactly the input bytes up
// to its end; on text it changes, ends are monotone and end at the input's end.
func TestEncodeOffsets(t *testing.T) {
	toks := map[string]*Tokenizer{"generated": demo(t)}
	if p := qwenPath(); p != "" {
		tok, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		toks["qwen3"] = tok
	}
	for name, tok := range toks {
		for _, c := range parityCorpus {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				ids, ends := tok.EncodeOffsets(c.text)
				if !slices.Equal(ids, tok.Encode(c.text)) || len(ends) != len(ids) {
					t.Fatalf("EncodeOffsets ids differ from Encode")
				}
				if len(ids) > 0 && ends[len(ends)-1] != len(c.text) {
					t.Errorf("last end %d, want %d", ends[len(ends)-1], len(c.text))
				}
				exact := name == "generated" || norm.NFC.IsNormalString(c.text)
				var b []byte
				for i, id := range ids {
					if i > 0 && ends[i] < ends[i-1] {
						t.Fatalf("ends not monotone at %d: %v", i, ends)
					}
					b = append(b, tok.decode[id]...)
					if exact && string(b) != c.text[:ends[i]] {
						t.Fatalf("token %d ends at %d but the tokens so far spell %q", i, ends[i], b)
					}
				}
			})
		}
	}
}
