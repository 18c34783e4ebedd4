package tokenizer

import (
	"slices"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// golang.org/x/text/unicode/norm writes the Stream-Safe Text Format of UAX #15:
// after 30 consecutive non-starters it inserts U+034F COMBINING GRAPHEME JOINER
// and reorders and composes each part on its own. Hugging Face's tokenizers
// (Rust unicode-normalization) sorts a run of any length and inserts nothing,
// so text with a long run of combining marks is normalized here instead, with
// x/text's tables: full decomposition, canonical ordering of whole runs, then
// canonical composition for the composed forms.

// runLimit is the run length from which normalizeRuns takes over; x/text is
// exact below 30 non-starters, and the count below is an upper bound.
const runLimit = 24

// longRun reports whether s may hold a run of runLimit or more non-starters
// (counted in the full compatibility decomposition, as x/text counts them).
func longRun(s string) bool {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			n = 0
			i++
			continue
		}
		if c < 0xcc { // U+0080..U+02FF: starters, at most two non-starters in their decompositions
			n = 2
			_, sz := utf8.DecodeRuneInString(s[i:])
			i += sz
			continue
		}
		p := norm.NFKD.PropertiesString(s[i:])
		sz := p.Size()
		if sz == 0 { // invalid UTF-8: one byte, a starter
			n, i = 0, i+1
			continue
		}
		d := p.Decomposition()
		if d == nil {
			if p.CCC() == 0 {
				n = 0
			} else {
				n++
			}
		}
		for len(d) > 0 {
			q := norm.NFD.PropertiesString(string(d))
			if q.CCC() == 0 {
				n = 0
			} else {
				n++
			}
			d = d[max(q.Size(), 1):]
		}
		if n >= runLimit {
			return true
		}
		i += sz
	}
	return false
}

// Hangul syllable constants (Unicode 3.12).
const (
	hangulSBase  = 0xAC00
	hangulLBase  = 0x1100
	hangulVBase  = 0x1161
	hangulTBase  = 0x11A7
	hangulTCount = 28
	hangulNCount = 21 * hangulTCount
	hangulSCount = 19 * hangulNCount
)

type cccRune struct {
	r   rune
	ccc uint8
}

// normalizeRuns normalizes s to form without the stream-safe limit: every
// rune is decomposed alone, each run of non-starters is sorted by combining
// class (stable), and NFC/NFKC then compose canonically.
func normalizeRuns(form norm.Form, s string) string {
	dform := norm.NFD
	if form == norm.NFKC || form == norm.NFKD {
		dform = norm.NFKD
	}
	rs := make([]cccRune, 0, len(s))
	push := func(r rune) {
		rs = append(rs, cccRune{r, norm.NFD.PropertiesString(string(r)).CCC()})
	}
	for _, r := range s {
		if r >= hangulSBase && r < hangulSBase+hangulSCount {
			si := r - hangulSBase
			push(hangulLBase + si/hangulNCount)
			push(hangulVBase + (si%hangulNCount)/hangulTCount)
			if t := si % hangulTCount; t != 0 {
				push(hangulTBase + t)
			}
			continue
		}
		d := dform.PropertiesString(string(r)).Decomposition()
		if d == nil {
			push(r)
			continue
		}
		for _, q := range string(d) {
			push(q)
		}
	}
	for i := 0; i < len(rs); {
		if rs[i].ccc == 0 {
			i++
			continue
		}
		j := i
		for j < len(rs) && rs[j].ccc != 0 {
			j++
		}
		slices.SortStableFunc(rs[i:j], func(a, b cccRune) int { return int(a.ccc) - int(b.ccc) })
		i = j
	}
	if form == norm.NFC || form == norm.NFKC {
		rs = compose(rs)
	}
	b := make([]byte, 0, len(s))
	for _, c := range rs {
		b = utf8.AppendRune(b, c.r)
	}
	return string(b)
}

// compose is the canonical composition algorithm of UAX #15 on decomposed,
// canonically ordered runes: each rune not blocked from the last starter is
// replaced, with that starter, by their primary composite when there is one.
func compose(rs []cccRune) []cccRune {
	out := rs[:0]
	starter := -1
	for _, c := range rs {
		if starter >= 0 {
			last := out[len(out)-1]
			if len(out)-1 == starter || last.ccc < c.ccc {
				if p, ok := primaryComposite(out[starter].r, c.r); ok {
					out[starter].r = p
					continue
				}
			}
		}
		if c.ccc == 0 {
			starter = len(out)
		}
		out = append(out, c)
	}
	return out
}

// primaryComposite returns the primary composite of starter a followed by c.
// x/text does not export its composition table, so it composes the pair: a
// is NFC (a decomposed rune or a composite made here), c is decomposed and
// has a combining class no lower than any mark a was composed from, so NFC
// of the two is one rune exactly when the table holds the pair.
func primaryComposite(a, c rune) (rune, bool) {
	var buf [2 * utf8.UTFMax]byte
	in := utf8.AppendRune(utf8.AppendRune(buf[:0], a), c)
	out := norm.NFC.Append(nil, in...)
	r, n := utf8.DecodeRune(out)
	if n == len(out) && r != utf8.RuneError {
		return r, true
	}
	return 0, false
}
