package tokenizer

import "unicode/utf8"

// Decode returns the text of ids, special tokens included. Ids that are not
// in the vocabulary are skipped. Byte sequences that are not valid UTF-8 (a
// character cut between tokens) become U+FFFD, one per maximal invalid
// subsequence, exactly as Rust's String::from_utf8_lossy does.
func (t *Tokenizer) Decode(ids []int) string {
	var b []byte
	for _, id := range ids {
		b = append(b, t.decode[id]...)
	}
	return lossyUTF8(b)
}

// lossyUTF8 implements String::from_utf8_lossy: an invalid sequence is
// replaced by one U+FFFD per "maximal subpart" (Unicode 6.0, section 3.9).
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		r, w := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || w > 1 {
			out = append(out, b[i:i+w]...)
			i += w
			continue
		}
		out = utf8.AppendRune(out, utf8.RuneError)
		i += maximalSubpart(b[i:])
	}
	return string(out)
}

// maximalSubpart returns the length of the invalid prefix of b that counts
// as one error: a valid lead byte followed by as many valid continuation
// bytes as its sequence allows, but not a whole character.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		if b[n] < lo || b[n] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
		n++
	}
	return n
}
