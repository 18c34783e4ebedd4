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
