package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

type addedToken struct {
	content                    string
	id                         int
	singleWord, lstrip, rstrip bool
}

// addedMatcher finds added tokens in text leftmost-longest, as the Rust
// library's Aho-Corasick automaton (MatchKind::LeftmostLongest) does, and
// applies single_word, lstrip and rstrip like AddedVocabulary::find_matches.
type addedMatcher struct {
	first [256]bool
	byB   [256][]addedToken // by first byte, longest first
}

func newAddedMatcher(toks []addedToken) *addedMatcher {
	if len(toks) == 0 {
		return nil
	}
	m := &addedMatcher{}
	for _, a := range toks {
		c := a.content[0]
		m.first[c] = true
		m.byB[c] = append(m.byB[c], a)
	}
	for i := range m.byB {
		l := m.byB[i]
		sort.SliceStable(l, func(x, y int) bool { return len(l[x].content) > len(l[y].content) })
	}
	return m
}

// segment is a piece of text (id < 0) or an added token (id >= 0).
type segment struct {
	text string
	off  int // byte offset of text in the string that was split
	id   int
	om   *offMap // set by EncodeOffsets when text is normalized: maps off back to the input
}

// toRaw maps an offset in the segment's coordinates to the encoded input.
func (s *segment) toRaw(k int) int {
	if s.om == nil {
		return k
	}
	return s.om.toRaw(k)
}

// split appends the segments of s to dst; off is added to every offset.
func (m *addedMatcher) split(dst []segment, s string, off int) []segment {
	if m == nil {
		return append(dst, segment{text: s, off: off, id: -1})
	}
	start := 0 // end of the previous split
	for i := 0; i < len(s); i++ {
		if !m.first[s[i]] {
			continue
		}
		var hit *addedToken
		for k := range m.byB[s[i]] {
			if strings.HasPrefix(s[i:], m.byB[s[i]][k].content) {
				hit = &m.byB[s[i]][k]
				break
			}
		}
		if hit == nil {
			continue
		}
		b, e := i, i+len(hit.content)
		if hit.singleWord {
			r0, _ := utf8.DecodeLastRuneInString(s[:b])
			r1, _ := utf8.DecodeRuneInString(s[e:])
			if (b > 0 && isWordRune(r0)) || (e < len(s) && isWordRune(r1)) {
				i = e - 1
				continue
			}
		}
		if hit.lstrip {
			nb := strings.LastIndexFunc(s[:b], func(r rune) bool { return !unicode.IsSpace(r) })
			if nb < 0 {
				nb = 0
			} else {
				_, w := utf8.DecodeRuneInString(s[nb:])
				nb += w
			}
			b = max(nb, start)
		}
		if hit.rstrip {
			ne := strings.IndexFunc(s[e:], func(r rune) bool { return !unicode.IsSpace(r) })
			if ne < 0 {
				e = len(s)
			} else {
				e += ne
			}
		}
		if start < b {
			dst = append(dst, segment{text: s[start:b], off: off + start, id: -1})
		}
		dst = append(dst, segment{text: s[b:e], off: off + b, id: hit.id})
		start = e
		i = e - 1
	}
	if start < len(s) {
		dst = append(dst, segment{text: s[start:], off: off + start, id: -1})
	}
	return dst
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }
