package tokenizer

import "unicode/utf8"

// byteToRune is GPT-2's byte-level alphabet: every byte maps to a printable
// rune, printable Latin-1 bytes to themselves and the others to U+0100 onwards.
var byteToRune [256]rune

// runeToByte inverts byteToRune; runes outside the alphabet are absent.
var runeToByte = map[rune]byte{}

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// byteLevelDecode maps a byte-level token string back to its bytes. As in the
// Rust ByteLevel decoder, a string holding any rune outside the alphabet is
// returned unchanged (its UTF-8 bytes), and ok reports whether it was mapped.
func byteLevelDecode(s string) (b []byte, ok bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		c, found := runeToByte[r]
		if !found {
			return []byte(s), false
		}
		out = append(out, c)
	}
	return out, true
}

// byteLevelEncode maps raw bytes to the byte-level alphabet.
func byteLevelEncode(b []byte) string {
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = utf8.AppendRune(out, byteToRune[c])
	}
	return string(out)
}
