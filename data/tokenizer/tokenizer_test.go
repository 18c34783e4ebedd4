package tokenizer

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// demo returns a small generated tokenizer.
func demo(tb testing.TB) *Tokenizer {
	tb.Helper()
	b, err := NewByteLevel(200, []string{longDocument(8 << 10)}, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := Parse(b, "demo.json")
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, json, field string
	}{
		{"model-type", `{"model":{"type":"WordPiece","vocab":{}}}`, "model.type"},
		{"no-vocab", `{"model":{"type":"BPE"}}`, "model.vocab"},
		{"merge-missing-token", `{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}}`, "model.merges[0]"},
		{"merge-no-space", `{"model":{"type":"BPE","vocab":{"a":0},"merges":["ab"]}}`, "model.merges[0]"},
		{"merge-triple", `{"model":{"type":"BPE","vocab":{"a":0},"merges":[["a","a","a"]]}}`, "model.merges[0]"},
		{"normalizer", `{"model":{"type":"BPE","vocab":{}},"normalizer":{"type":"Precompiled"}}`, "normalizer.type"},
		{"nested-normalizer", `{"model":{"type":"BPE","vocab":{}},"normalizer":{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Strip"}]}}`, "normalizer.normalizers[1].type"},
		{"pretokenizer", `{"model":{"type":"BPE","vocab":{}},"pre_tokenizer":{"type":"Metaspace"}}`, "pre_tokenizer.type"},
		{"bad-regex", `{"model":{"type":"BPE","vocab":{}},"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(a"},"behavior":"Isolated"}]}}`, "pre_tokenizer.pretokenizers[0].pattern"},
		{"behavior", `{"model":{"type":"BPE","vocab":{}},"pre_tokenizer":{"type":"Split","pattern":{"String":" "},"behavior":"Sideways"}}`, "pre_tokenizer.behavior"},
		{"decoder", `{"model":{"type":"BPE","vocab":{}},"decoder":{"type":"WordPiece"}}`, "decoder.type"},
		{"added-empty", `{"model":{"type":"BPE","vocab":{}},"added_tokens":[{"id":1,"content":""}]}`, "added_tokens[0].content"},
		{"byte-fallback", `{"model":{"type":"BPE","vocab":{},"byte_fallback":true}}`, "model.byte_fallback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.json), "x.json")
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || fe.File != "x.json" {
				t.Fatalf("err = %v, want a FieldError on %s in x.json", err, tt.field)
			}
		})
	}
	t.Run("bad-json", func(t *testing.T) {
		if _, err := Parse([]byte(`{"model":`), "x.json"); err == nil || !strings.Contains(err.Error(), "x.json") {
			t.Fatalf("err = %v, want one naming x.json", err)
		}
	})
	t.Run("missing-file", func(t *testing.T) {
		if _, err := Load(filepath.Join(t.TempDir(), "nope.json")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v, want ErrNotExist", err)
		}
	})
}

func TestAccessors(t *testing.T) {
	b, err := NewByteLevel(10, []string{"aaaa bbbb aaaa"}, []string{"<|endoftext|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Parse(b, "t.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Model struct{ Vocab map[string]int }
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	n := len(f.Model.Vocab)
	if got := tok.VocabSize(); got != n+2 {
		t.Errorf("VocabSize = %d, want %d", got, n+2)
	}
	if id, ok := tok.TokenID("<|im_end|>"); !ok || id != n+1 {
		t.Errorf("TokenID(<|im_end|>) = %d, %v; want %d", id, ok, n+1)
	}
	if id, ok := tok.TokenID("Ġ"); !ok || id != ' ' { // byte-level spelling of the space byte
		t.Errorf("TokenID(Ġ) = %d, %v; want 32", id, ok)
	}
	if s, ok := tok.Token(n); !ok || s != "<|endoftext|>" {
		t.Errorf("Token(%d) = %q, %v", n, s, ok)
	}
	if _, ok := tok.Token(n + 2); ok {
		t.Errorf("Token(%d) exists", n+2)
	}
	if got := tok.SpecialTokens(); !slices.Equal(got, []string{"<|endoftext|>", "<|im_end|>"}) {
		t.Errorf("SpecialTokens = %q", got)
	}
	if h := tok.Hash(); len(h) != 64 {
		t.Errorf("Hash = %q", h)
	}
}

func TestLossyUTF8(t *testing.T) {
	// Expected counts of U+FFFD follow the Unicode "maximal subpart" rule
	// (Unicode Standard, section 3.9, table 3-8).
	tests := []struct {
		in   string
		want string
	}{
		{"a\xffb", "a\ufffdb"},
		{"\xe2\x82", "\ufffd"},                 // truncated 3-byte sequence: one
		{"\xe0\x80\x80", "\ufffd\ufffd\ufffd"}, // overlong: every byte
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"}, // surrogate
		{"\xf0\x9f\x98", "\ufffd"},
		{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
		{"\xc3\x28", "\ufffd("},
		{"ok", "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := lossyUTF8([]byte(tt.in)); got != tt.want {
				t.Fatalf("lossyUTF8(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
