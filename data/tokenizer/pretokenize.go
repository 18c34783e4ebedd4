package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// word is a pre-token: a piece of a segment, off its byte offset in the
// segment (it may be -1 when ByteLevel prepended a space).
type word struct {
	s   string
	off int
}

// preStep is one pre-tokenizer: it splits w and appends the pieces to dst.
type preStep interface {
	apply(dst []word, w word) []word
}

// matcher finds the regex matches of a split pattern in s, in order,
// non-overlapping, calling fn with byte offsets.
type matcher interface {
	matches(s string, fn func(start, end int))
}

type behavior int

const (
	removed behavior = iota
	isolated
	mergedWithPrevious
	mergedWithNext
	contiguous
)

var behaviors = map[string]behavior{"Removed": removed, "Isolated": isolated,
	"MergedWithPrevious": mergedWithPrevious, "MergedWithNext": mergedWithNext, "Contiguous": contiguous}

// splitStep is the Split pre-tokenizer.
type splitStep struct {
	m        matcher
	behavior behavior
	invert   bool
}

type piece struct {
	start, end int
	match      bool
}

func (p *splitStep) apply(dst []word, w word) []word {
	if p.behavior == isolated && !p.invert {
		if sc, ok := p.m.(*scanner); ok { // hot path: no intermediate slice
			return sc.appendWords(dst, w)
		}
	}
	var ps []piece
	prev := 0
	p.m.matches(w.s, func(b, e int) {
		if prev != b {
			ps = append(ps, piece{prev, b, false})
		}
		ps = append(ps, piece{b, e, true})
		prev = e
	})
	if prev != len(w.s) {
		ps = append(ps, piece{prev, len(w.s), false})
	}
	if p.invert {
		for i := range ps {
			ps[i].match = !ps[i].match
		}
	}
	var out []piece
	switch p.behavior {
	case isolated:
		out = ps
	case removed:
		for _, q := range ps {
			if !q.match {
				out = append(out, q)
			}
		}
	case mergedWithPrevious:
		prevMatch := false
		for _, q := range ps {
			if q.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = q.end
			} else {
				out = append(out, q)
			}
			prevMatch = q.match
		}
	case mergedWithNext:
		prevMatch := false
		for i := len(ps) - 1; i >= 0; i-- {
			q := ps[i]
			if q.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = q.start
			} else {
				out = append(out, q)
			}
			prevMatch = q.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	case contiguous:
		prevMatch := false
		for _, q := range ps {
			if q.match == prevMatch && len(out) > 0 {
				out[len(out)-1].end = q.end
			} else {
				out = append(out, q)
			}
			prevMatch = q.match
		}
	}
	for _, q := range out {
		if q.end > q.start {
			dst = append(dst, word{w.s[q.start:q.end], w.off + q.start})
		}
	}
	return dst
}

// byteLevelStep is the ByteLevel pre-tokenizer. The byte to alphabet mapping
// itself is implicit: the model works on raw bytes.
type byteLevelStep struct {
	prefixSpace bool
	split       *splitStep // GPT-2 pattern when use_regex
}

func (p *byteLevelStep) apply(dst []word, w word) []word {
	if p.prefixSpace && !strings.HasPrefix(w.s, " ") {
		w = word{" " + w.s, w.off - 1}
	}
	if p.split != nil {
		return p.split.apply(dst, w)
	}
	return append(dst, w)
}

// gpt2Pattern is the regex of the ByteLevel pre-tokenizer with use_regex.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// reMatcher runs a pattern on regexp2, which counts in runes.
type reMatcher struct{ re *regexp2.Regexp }

func newReMatcher(pattern string) (*reMatcher, error) {
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, err
	}
	return &reMatcher{re}, nil
}

func (r *reMatcher) matches(s string, fn func(start, end int)) {
	runes := []rune(s)
	offs := make([]int, len(runes)+1) // rune index -> byte offset
	o := 0
	for i, c := range runes {
		offs[i] = o
		if c == utf8.RuneError {
			// Invalid bytes decode to U+FFFD; keep the byte count of the input.
			_, w := utf8.DecodeRuneInString(s[o:])
			o += w
		} else {
			o += utf8.RuneLen(c)
		}
	}
	offs[len(runes)] = o
	m, err := r.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		fn(offs[m.Index], offs[m.Index+m.Length])
		m, err = r.re.FindNextMatch(m)
	}
}

func newMatcher(pattern string) (matcher, error) {
	if sc := scannerFor(pattern); sc != nil {
		return sc, nil
	}
	return newReMatcher(pattern)
}

func parsePre(b json.RawMessage, field string, ferr ferrFunc) ([]preStep, error) {
	if isNull(b) {
		return nil, nil
	}
	var c component
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, ferr(field, "%v", err)
	}
	switch c.Type {
	case "Sequence":
		var steps []preStep
		for i, sub := range c.Pretokenizers {
			s, err := parsePre(sub, fmt.Sprintf("%s.pretokenizers[%d]", field, i), ferr)
			if err != nil {
				return nil, err
			}
			steps = append(steps, s...)
		}
		return steps, nil
	case "Split":
		if c.Pattern == nil || (c.Pattern.Regex == nil && c.Pattern.String == nil) {
			return nil, ferr(field+".pattern", "want {\"Regex\": ...} or {\"String\": ...}")
		}
		var pat string
		if c.Pattern.Regex != nil {
			pat = *c.Pattern.Regex
		} else {
			pat = regexp2.Escape(*c.Pattern.String)
		}
		m, err := newMatcher(pat)
		if err != nil {
			return nil, ferr(field+".pattern", "%v", err)
		}
		bh, ok := behaviors[c.Behavior]
		if !ok {
			return nil, ferr(field+".behavior", "unknown behavior %q", c.Behavior)
		}
		return []preStep{&splitStep{m: m, behavior: bh, invert: c.Invert}}, nil
	case "ByteLevel":
		st := &byteLevelStep{prefixSpace: c.AddPrefixSpace}
		if !st.prefixSpace && c.UseRegex != nil && !*c.UseRegex {
			return nil, nil // the byte mapping alone: nothing to split
		}
		if c.UseRegex == nil || *c.UseRegex { // use_regex defaults to true
			m, err := newMatcher(gpt2Pattern)
			if err != nil {
				return nil, ferr(field, "%v", err)
			}
			st.split = &splitStep{m: m, behavior: isolated}
		}
		return []preStep{st}, nil
	}
	return nil, ferr(field+".type", "unsupported pre-tokenizer %q", c.Type)
}
