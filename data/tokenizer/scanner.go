package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The split patterns of Qwen2.5/Qwen3 (one digit per pre-token) and Llama 3
// (up to three digits). They differ only in the \p{N} alternative.
const (
	qwenPattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	llamaPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// scanner is a hand-written matcher for qwenPattern and llamaPattern. It
// follows the backtracking semantics of the regex alternative by alternative:
//
//  1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
//  2. [^\r\n\p{L}\p{N}]?\p{L}+    one optional non-letter/digit/newline, then letters
//  3. \p{N}{1,k}
//  4. ' '?[^\s\p{L}\p{N}]+[\r\n]* an optional space, symbols, trailing newlines
//  5. \s*[\r\n]+                  whitespace up to and including its last newline
//  6. \s+(?!\S)                   whitespace at the end, or all but its last rune
//  7. \s+
//
// Every rune starts a match of some alternative, so matches tile the text.
// FuzzScanner checks it against regexp2 running the pattern itself.
type scanner struct{ digits int }

func scannerFor(pattern string) *scanner {
	switch pattern {
	case qwenPattern:
		return &scanner{digits: 1}
	case llamaPattern:
		return &scanner{digits: 3}
	}
	return nil
}

const (
	cL  = 1 << iota // \p{L}
	cN              // \p{N}
	cS              // \s
	cNL             // \r or \n
)

var asciiClass [128]uint8

func init() {
	for c := 0; c < 128; c++ {
		r := rune(c)
		if unicode.IsLetter(r) {
			asciiClass[c] |= cL
		}
		if unicode.IsNumber(r) {
			asciiClass[c] |= cN
		}
		if unicode.IsSpace(r) {
			asciiClass[c] |= cS
		}
		if r == '\r' || r == '\n' {
			asciiClass[c] |= cNL
		}
	}
}

// class returns the class bits and width of the rune at s[i].
func class(s string, i int) (uint8, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	var k uint8
	switch {
	case unicode.IsLetter(r):
		k = cL
	case unicode.IsNumber(r):
		k = cN
	case unicode.IsSpace(r):
		k = cS
	}
	return k, w
}

func lower(c byte) byte { return c | 0x20 }

// next returns the end of the match that starts at s[i], i < len(s).
func (sc *scanner) next(s string, i int) int {
	n := len(s)
	// 1. contractions, ASCII case-insensitive; U+017F (long s) folds to s.
	if s[i] == '\'' && i+1 < n {
		switch lower(s[i+1]) {
		case 's', 't', 'm', 'd':
			if s[i+1] != 0x7F && s[i+1] < utf8.RuneSelf {
				return i + 2
			}
		case 'r', 'v':
			if i+2 < n && lower(s[i+2]) == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < n && lower(s[i+2]) == 'l' {
				return i + 3
			}
		}
		if i+2 < n && s[i+1] == 0xC5 && s[i+2] == 0xBF {
			return i + 3
		}
	}
	k0, w0 := class(s, i)
	// 2. letters, optionally after one rune that is no letter, digit or newline.
	if k0&cL != 0 {
		return sc.letters(s, i+w0)
	}
	if k0&(cN|cNL) == 0 && i+w0 < n {
		if k1, w1 := class(s, i+w0); k1&cL != 0 {
			return sc.letters(s, i+w0+w1)
		}
	}
	// 3. digits.
	if k0&cN != 0 {
		j := i + w0
		for d := 1; d < sc.digits && j < n; d++ {
			k, w := class(s, j)
			if k&cN == 0 {
				break
			}
			j += w
		}
		return j
	}
	// 4. symbols, optionally after one space, then newlines.
	j := -1
	if k0&cS == 0 {
		j = i + w0
	} else if s[i] == ' ' && i+1 < n {
		if k1, w1 := class(s, i+1); k1&(cS|cL|cN) == 0 {
			j = i + 1 + w1
		}
	}
	if j >= 0 {
		for j < n {
			k, w := class(s, j)
			if k&(cS|cL|cN) != 0 {
				break
			}
			j += w
		}
		for j < n && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j
	}
	// 5-7. whitespace run [i, j); last is the start of its last rune.
	j, last, nl := i, i, -1
	for j < n {
		k, w := class(s, j)
		if k&cS == 0 {
			break
		}
		if k&cNL != 0 {
			nl = j
		}
		last = j
		j += w
	}
	switch {
	case nl >= 0:
		return nl + 1
	case j == n || last == i:
		return j
	default:
		return last
	}
}

func (sc *scanner) letters(s string, j int) int {
	for j < len(s) {
		k, w := class(s, j)
		if k&cL == 0 {
			break
		}
		j += w
	}
	return j
}

func (sc *scanner) matches(s string, fn func(start, end int)) {
	for i := 0; i < len(s); {
		e := sc.next(s, i)
		fn(i, e)
		i = e
	}
}

func (sc *scanner) appendWords(dst []word, w word) []word {
	for i := 0; i < len(w.s); {
		e := sc.next(w.s, i)
		dst = append(dst, word{w.s[i:e], w.off + i})
		i = e
	}
	return dst
}
