package tokenizer

import (
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// TestNormalizeParity compares each Unicode normalizer with the Rust
// library's on text with runs of combining marks longer than the 30 of
// Unicode's stream-safe format (x/text inserts U+034F there and reorders each
// part alone; the reference sorts whole runs), and on the parity corpus.
func TestNormalizeParity(t *testing.T) {
	path := realTokenizer(t, "qwen3") // loaded by ref.js, not used
	var texts []string
	for _, c := range longRunCorpus(11, 400) {
		texts = append(texts, c.text)
	}
	for _, c := range parityCorpus {
		texts = append(texts, c.text)
	}
	for _, c := range randomCorpus(12, 300, 60) {
		texts = append(texts, c.text)
	}
	for _, f := range []struct {
		name string
		form norm.Form
	}{{"NFC", norm.NFC}, {"NFD", norm.NFD}, {"NFKC", norm.NFKC}, {"NFKD", norm.NFKD}} {
		t.Run(f.name, func(t *testing.T) {
			want := runRef(t, path, refRequest{Normalize: &refNormalize{Form: f.name, Texts: texts}}).Normalize
			n := unicodeNorm{f.form}
			fails := 0
			for i, s := range texts {
				if got := n.normalize(s); got != want[i] {
					t.Errorf("%s(%+q):\n got %+q\nwant %+q", f.name, trunc(s), trunc(got), trunc(want[i]))
					if fails++; fails > 5 {
						t.FailNow()
					}
				}
			}
		})
	}
}

// TestLongRun checks the detector of runs that x/text would cut: every run
// of 30 or more non-starters (counted after decomposition) is found.
func TestLongRun(t *testing.T) {
	rep := strings.Repeat
	tests := []struct {
		s    string
		want bool
	}{
		{"plain ascii text", false},
		{"e" + rep("\u0301", 10) + " " + rep("\u0301", 10), false},
		{"e" + rep("\u0301", 30), true},
		{rep("\u0301", 30), true},
		{"x" + rep("\u0344", 15), true}, // two non-starters each
		{"\u0f40" + rep("\u0f73", 15), true},
		{"ǖ" + rep("\u0301", 28), true}, // ǖ decomposes to u + two marks
		{"日本語" + rep("\u3099", 31), true},
		{rep("é", 100), false},
	}
	for _, tt := range tests {
		if got := longRun(tt.s); got != tt.want {
			t.Errorf("longRun(%+q) = %v, want %v", trunc(tt.s), got, tt.want)
		}
	}
}

// BenchmarkNormalize measures the NFC normalizer on English prose, on the
// mixed-script parity document, and on text with long runs of marks (the
// slow path).
//
//	go test -run XXX -bench Normalize ./data/tokenizer
func BenchmarkNormalize(b *testing.B) {
	var runs strings.Builder
	for _, c := range longRunCorpus(13, 50) {
		runs.WriteString(c.text)
	}
	for _, c := range []struct{ name, text string }{
		{"prose", benchText(b, "prose")},
		{"mixed", longDocument(200 << 10)},
		{"long-runs", runs.String()},
	} {
		b.Run(c.name, func(b *testing.B) {
			n := unicodeNorm{norm.NFC}
			b.SetBytes(int64(len(c.text)))
			for b.Loop() {
				n.normalize(c.text)
			}
		})
	}
}
