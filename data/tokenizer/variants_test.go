package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestVariantsParity checks the parts of the pipeline that the real Qwen3 and
// Llama 3 files do not use: a tokenizer.json made by NewByteLevel is edited
// into variants (merge formats, normalizers, every Split behavior, invert,
// ByteLevel with its own regex and prefix space, added-token flags) and each
// is encoded and decoded by the Rust reference and by this package.
func TestVariantsParity(t *testing.T) {
	npmModules(t)
	var corpus []string
	for _, c := range parityCorpus {
		corpus = append(corpus, c.text)
	}
	base, err := NewByteLevel(400, append(corpus, longDocument(30<<10)), []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	split := func(behavior string, invert bool, pattern map[string]string) map[string]any {
		return map[string]any{"type": "Split", "pattern": pattern, "behavior": behavior, "invert": invert}
	}
	qwen := map[string]string{"Regex": qwenPattern}
	byteLevel := func(prefix, regex bool) map[string]any {
		return map[string]any{"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": false, "use_regex": regex}
	}
	seq := func(steps ...any) map[string]any { return map[string]any{"type": "Sequence", "pretokenizers": steps} }
	added := func(content string, id int, special, normalized, single, l, r bool) map[string]any {
		return map[string]any{"id": id, "content": content, "special": special, "normalized": normalized,
			"single_word": single, "lstrip": l, "rstrip": r}
	}
	variants := []struct {
		name string
		edit func(f map[string]any)
	}{
		{"generated", func(map[string]any) {}},
		{"merges-as-strings", func(f map[string]any) {
			m := f["model"].(map[string]any)
			var s []string
			for _, p := range m["merges"].([]any) {
				q := p.([]any)
				s = append(s, q[0].(string)+" "+q[1].(string))
			}
			m["merges"] = s
		}},
		{"ignore-merges", func(f map[string]any) { f["model"].(map[string]any)["ignore_merges"] = true }},
		{"nfc", func(f map[string]any) { f["normalizer"] = map[string]any{"type": "NFC"} }},
		{"nfkc", func(f map[string]any) { f["normalizer"] = map[string]any{"type": "NFKC"} }},
		{"nfd-lowercase", func(f map[string]any) {
			f["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "NFD"}, map[string]any{"type": "Lowercase"}}}
		}},
		{"bytelevel-regex", func(f map[string]any) { f["pre_tokenizer"] = byteLevel(false, true) }},
		{"bytelevel-regex-prefix", func(f map[string]any) { f["pre_tokenizer"] = byteLevel(true, true) }},
		{"bytelevel-prefix-no-regex", func(f map[string]any) {
			f["pre_tokenizer"] = seq(split("Isolated", false, qwen), byteLevel(true, false))
		}},
		{"llama-pattern", func(f map[string]any) {
			f["pre_tokenizer"] = seq(split("Isolated", false, map[string]string{"Regex": llamaPattern}), byteLevel(false, false))
		}},
		{"isolated-invert", func(f map[string]any) {
			f["pre_tokenizer"] = seq(split("Isolated", true, qwen), byteLevel(false, false))
		}},
		{"removed", func(f map[string]any) {
			f["pre_tokenizer"] = seq(split("Removed", false, map[string]string{"Regex": `\s+`}), byteLevel(false, false))
		}},
		{"removed-invert", func(f map[string]any) {
			f["pre_tokenizer"] = seq(split("Removed", true, map[string]string{"Regex": `\p{L}+`}), byteLevel(false, false))
		}},
		{"merged-previous", func(f map[string]any) {
			f["pre_tokenizer"] = seq(split("MergedWithPrevious", false, map[string]string{"Regex": `[.,!?]`}), byteLevel(false, true))
		}},
		{"merged-next", func(f map[string]any) {
			f["pre_tokenizer"] = seq(split("MergedWithNext", false, map[string]string{"String": " "}), byteLevel(false, false))
		}},
		{"contiguous", func(f map[string]any) {
			f["pre_tokenizer"] = seq(split("Contiguous", false, map[string]string{"Regex": `\p{N}`}), byteLevel(false, false))
		}},
		{"added-flags", func(f map[string]any) {
			// Ids follow the vocabulary, except for tokens that are in it
			// ("the", and "é" which is the byte-level token of byte 0xE9).
			vocab := f["model"].(map[string]any)["vocab"].(map[string]any)
			n := len(vocab)
			vid := func(s string) int { return int(vocab[s].(float64)) }
			f["added_tokens"] = []any{
				added("<|endoftext|>", n, true, false, false, false, false),
				added("<|im_start|>", n+1, true, false, false, true, true),
				added("<|im_end|>", n+2, true, false, false, true, false),
				added("the", vid("the"), false, true, true, false, false),
				added("é", vid("é"), false, true, false, false, false),
				added("ing", n+3, false, false, false, false, true),
				added("<|im_end|>x", n+4, false, false, false, false, false),
				added("brown fox", n+5, false, false, true, false, false),
			}
			f["normalizer"] = map[string]any{"type": "NFC"}
		}},
	}
	texts := append([]string(nil), corpus...)
	for _, c := range randomCorpus(5, 300, 24) {
		texts = append(texts, c.text)
	}
	for _, c := range longRunCorpus(6, 60) {
		texts = append(texts, c.text)
	}
	texts = append(texts, "the theme; the the, then <|im_end|>x <|im_start|> \n <|im_end|>\t\tsinging the é e\u0301 ÉCOLE")
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			var f map[string]any
			if err := json.Unmarshal(base, &f); err != nil {
				t.Fatal(err)
			}
			v.edit(f)
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
			want := runRef(t, path, refRequest{Encode: texts})
			dec := runRef(t, path, refRequest{Decode: want.Encode}).Decode
			fails := 0
			for i, s := range texts {
				got := tok.Encode(s)
				if !slices.Equal(got, want.Encode[i]) {
					t.Errorf("Encode(%q):\n got %v\nwant %v", trunc(s), trunc(fmt.Sprint(got)), trunc(fmt.Sprint(want.Encode[i])))
					if fails++; fails > 5 {
						t.FailNow()
					}
				}
				if d := tok.Decode(want.Encode[i]); d != dec[i] {
					t.Errorf("Decode: got %q, want %q", trunc(d), trunc(dec[i]))
				}
			}
			if strings.Contains(v.name, "generated") && tok.VocabSize() < 256+100 {
				t.Errorf("NewByteLevel(400) learnt only %d tokens", tok.VocabSize())
			}
		})
	}
}
