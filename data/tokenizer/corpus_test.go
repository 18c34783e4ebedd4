package tokenizer

import (
	"math/rand/v2"
	"strings"
)

// namedText is one corpus entry.
type namedText struct{ name, text string }

// parityCorpus is the hand-written part of the parity corpus: each entry
// targets one rule of the pipeline.
var parityCorpus = []namedText{
	{"prose", "The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times."},
	{"contractions", "I'm sure we'll see. DON'T STOP! She's, they're, I've, you'd, It'S, WE'LL, We'Re, 'tis 'TWAS o'clock"},
	{"contraction-long-s", "it'ſ and IT'ſ and 's alone '"},
	{"spaces", "a  b   c    d\t\te \t f\u00a0g\u2003h\u3000i \u00a0 j\u2028k\u2029l\u0085m\u1680n\u202fo\u205fp"},
	{"trailing-spaces", "end with spaces   "},
	{"leading-spaces", "   start with spaces"},
	{"newlines", "line1\nline2\r\nline3\n\n\nline4\r\r\n  \n  indented\n\t\ttabs\n \n"},
	{"ws-before-punct", "x  (y)   [z]\n  {w}  ...  !!"},
	{"digits", "1 12 123 1234 12345 1234567890123 3.14159 1,000,000 0x1F 2024-05-01 ٣٤٥ ١٢٣٤ ⅣⅫ ½¾ ²³"},
	{"code", "func main() {\n\tfmt.Println(\"hi\")\n\tfor i := 0; i < 10; i++ {\n\t\tx[i] += y >> 2 // shift\n\t}\n}\n"},
	{"python", "def f(x):\n    return {'a': [1, 2, 3], \"b\": None}  # comment\n\n\nif __name__ == '__main__':\n    f(42)\n"},
	{"url", "See https://example.com/path?q=a+b&x=%20y#frag and mailto:someone@example.org, or ftp://x.y/z."},
	{"emoji", "I ❤️ you 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷 😀😃😄 ☕"},
	{"cjk", "我们今天去公园散步。日本語のテキストです、カタカナも。한국어 문장입니다."},
	{"arabic", "مرحبا بالعالم، كيف حالك؟ العربية من اليمين إلى اليسار."},
	{"hebrew-thai-hindi", "שלום עולם ภาษาไทยง่ายนิดเดียว नमस्ते दुनिया"},
	{"combining", "e\u0301 a\u0300 o\u0308 n\u0303 Å ﬁ ḱ\u0323 Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇"},
	{"nfd", "Cafe\u0301 re\u0301sume\u0301 nai\u0308ve Ångstro\u0308m \u1100\u1161\u11a8"},
	{"special-in-text", "Hello<|im_end|>world <|im_start|>user\nHi<|endoftext|> <|eot_id|><|begin_of_text|><think>x</think> <tool_call>"},
	{"special-partial", "<|im_end <|im_end|<| |> <|endoftext|><|endoftext|>"},
	{"punct-runs", "!!!??? ... --- === *** ### ''' \"\"\" ``` ~~~ ^^^ ||| \\\\ //"},
	{"mixed-scripts", "Ελληνικά Русский текст, Türkçe İı, Ǆemal ŉ ẞ ß"},
	{"apostrophes", "rock'n'roll '' ''s '123 'é ' s ’s ‘t"},
	{"control", "a\x00b\x01c\x7fd\x1be"},
	{"long-words", strings.Repeat("a", 300) + " " + strings.Repeat("=-", 150) + " xyzzy" + strings.Repeat("Pneumonoultramicroscopicsilicovolcanoconiosis", 5) + " " + strings.Repeat("日本", 80) + strings.Repeat("😀", 40)},
	{"single", "a"},
	{"space", " "},
	{"newline", "\n"},
	{"empty", ""},
}

// randomCorpus returns n seeded random strings drawn from runes that
// exercise every class boundary of the split patterns.
func randomCorpus(seed uint64, n, maxLen int) []namedText {
	alphabet := []rune("aZé' \t\n\r\u00a0\u3000\u2003\u0085 0159٣½.,!?()<>|_-+=\"`中ß\u0301\u200d😀ſ")
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]namedText, n)
	for i := range out {
		var b strings.Builder
		for k := r.IntN(maxLen + 1); k > 0; k-- {
			b.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		out[i] = namedText{"random", b.String()}
	}
	return out
}

// longDocument returns about size bytes mixing every corpus entry with
// generated prose, as one document.
func longDocument(size int) string {
	words := strings.Fields("the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when if so no will more can out up")
	r := rand.New(rand.NewPCG(7, 7))
	var b strings.Builder
	for b.Len() < size {
		if r.IntN(20) == 0 {
			b.WriteString(parityCorpus[r.IntN(len(parityCorpus))].text)
		}
		w := words[r.IntN(len(words))]
		if r.IntN(8) == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		b.WriteString(w)
		switch r.IntN(12) {
		case 0:
			b.WriteString(". ")
		case 1:
			b.WriteString(",\n")
		case 2:
			b.WriteString("\n\n")
		default:
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// combiningMarks are the marks of the long-run corpus: classes from 1 to 240,
// the singletons NFC replaces (U+0340, U+0341, U+0343), the marks that
// decompose to two (U+0344, U+0F73, U+0F75, U+0F81) and U+034F, which is a
// starter.
var combiningMarks = []rune("\u0300\u0301\u0301\u0301\u0340\u0341\u0341\u0343\u0344\u0345\u0313\u0314\u0316\u031b" +
	"\u0323\u0327\u0334\u035c\u035d\u05b0\u05b4\u05bc\u05c1\u064b\u0651\u093c\u094d\u0e38\u0e48" +
	"\u0f71\u0f72\u0f73\u0f74\u0f75\u0f80\u0f81\u1dce\u20d0\u302a\u3099\u309a")

// markBases are starters that compose with some of combiningMarks.
var markBases = []rune("aeouAEOnsyαωΑεηιυρ\u0915\u0f40\u304b\u1100\uac00\u0f73 .")

// longRunCorpus returns texts with runs of 20 to 150 combining marks (longer
// than the 30 of Unicode's stream-safe format), alone, after bases, between
// words and at the start, with fixed cases first.
func longRunCorpus(seed uint64, n int) []namedText {
	rep := strings.Repeat
	out := []namedText{
		{"run-0341-among-0301", "e" + rep("\u0301", 40) + "\u0341" + rep("\u0301", 3)},
		{"run-0341-only", "x" + rep("\u0341", 35)},
		{"run-leading", rep("\u0301\u0316", 20) + " start"},
		{"run-unsorted", "a" + rep("\u0316\u0301", 20) + "\u0341 b"},
		{"run-greek", "ω" + rep("\u0343\u0341\u0345", 12) + " Α" + rep("\u0314\u0340", 16)},
		{"run-tibetan", "\u0f40" + rep("\u0f73", 20) + rep("\u0f75", 5) + "\u0f81\u0f77\u0f79"},
		{"run-kana", "\u304b" + rep("\u3099", 31) + "\u304b\u3099"},
		{"run-hangul", "\u1100\u1161" + rep("\u0301", 33) + "\u11a8 \uac00\u11a8"},
		{"run-cgj", "e" + rep("\u0301", 29) + "\u034f" + rep("\u0301", 29) + "\u0341"},
		{"run-30", "o" + rep("\u031b", 1) + rep("\u0301", 29) + " o" + rep("\u0301", 30) + "\u031b o" + rep("\u0301", 31) + "\u031b"},
		{"zalgo", "Z" + rep("\u0334\u035c\u0341\u0323", 15) + "algo " + rep("t\u0344\u0345", 3) + rep("\u0340", 40) + "ext"},
	}
	r := rand.New(rand.NewPCG(seed, 2))
	for i := 0; i < n; i++ {
		var b strings.Builder
		for k := 1 + r.IntN(3); k > 0; k-- {
			if r.IntN(4) > 0 {
				b.WriteRune(markBases[r.IntN(len(markBases))])
			}
			for m := 20 + r.IntN(131); m > 0; m-- {
				b.WriteRune(combiningMarks[r.IntN(len(combiningMarks))])
			}
			if r.IntN(2) == 0 {
				b.WriteString(" word ")
			}
		}
		out = append(out, namedText{"long-run", b.String()})
	}
	return out
}
