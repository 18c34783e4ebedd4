package loader

import (
	"fmt"
	"strings"
)

// DefaultWindow is the number of documents pack mode chooses from when
// Config.Window is 0. On uniform lengths of 300-6,000 tokens in rows of
// 8,192 it fills 98% of the slots (64: 97.9%, 256: 98.5%); see fill_test.go.
const DefaultWindow = 128

// MaxWindow bounds Config.Window, so a State stays small (Taken is at most
// 2*MaxWindow bits, 256 hex digits).
const MaxWindow = 512

// entry is one document of the window.
type entry struct {
	global int64
	pairs  int  // length - 1
	taken  bool // wholly placed
	tokens []int32
	mask   []bool
}

// window holds the documents at positions [pos, pos+span) of a rank's
// sequence, the first one (the head, pos) possibly cut at off. Its content
// is a pure function of a State (Pos, Offset, Taken), so a packer rebuilt
// from a State continues exactly.
type window struct {
	c       *cursor
	size    int   // candidates: the first size untaken documents with pairs
	span    int64 // positions held: 2*size
	content bool  // copy tokens (building) or lengths only (sizing)
	n       int64 // documents of the rank
	pos     int64
	off     int
	ents    []entry // positions pos, pos+1, ...
	last    State   // the state the window is at after the last build
}

// reset rebuilds the window at s.
func (w *window) reset(c *cursor, s State, size int, content bool) error {
	w.c, w.size, w.span, w.content, w.n = c, size, 2*int64(size), content, c.count()
	w.pos, w.off, w.ents = s.Pos, s.Offset, w.ents[:0]
	if err := w.load(); err != nil {
		return err
	}
	bits, err := decodeTaken(s.Taken)
	if err != nil {
		return err
	}
	for i, b := range bits {
		if !b {
			continue
		}
		if 1+i >= len(w.ents) {
			return fmt.Errorf("loader: state taken %q marks position %d beyond the window", s.Taken, w.pos+1+int64(i))
		}
		w.ents[1+i].taken = true
	}
	w.last = s
	return nil
}

// at reports whether the window is at s (the loader asks for the batch
// after the one it built last, the usual case), so it can be reused.
func (w *window) at(c *cursor, s State) bool {
	return w.c == c && w.last.Pos == s.Pos && w.last.Offset == s.Offset && w.last.Taken == s.Taken
}

// load reads the documents up to the end of the span.
func (w *window) load() error {
	for q := w.pos + int64(len(w.ents)); q < min(w.pos+w.span, w.n); q++ {
		d := w.c.at(q)
		e := entry{global: d.global, pairs: d.length - 1}
		if w.content && e.pairs > 0 {
			tokens, mask, err := w.c.content(d)
			if err != nil {
				return err
			}
			// Copied: slices of the decoded block would keep every block the
			// span touches alive.
			e.tokens, e.mask = append([]int32(nil), tokens...), append([]bool(nil), mask...)
		}
		w.ents = append(w.ents, e)
	}
	return nil
}

// normalize drops the taken and one-token documents at the head, so the
// head is the oldest document not wholly placed, and refills the span.
func (w *window) normalize(ps *packStats) error {
	for {
		k := 0
		for k < len(w.ents) && (w.ents[k].taken || w.ents[k].pairs <= 0) {
			if !w.ents[k].taken {
				ps.skipped++
			}
			k++
			w.pos, w.off = w.pos+1, 0
		}
		if k > 0 {
			n := copy(w.ents, w.ents[k:])
			clear(w.ents[n:])
			w.ents = w.ents[:n]
		}
		if err := w.load(); err != nil {
			return err
		}
		if len(w.ents) == 0 || (!w.ents[0].taken && w.ents[0].pairs > 0) {
			return nil
		}
	}
}

// head returns the pairs left of the head document, at most seqLen.
func (w *window) head(seqLen int) int { return min(w.ents[0].pairs-w.off, seqLen) }

// bestFit returns the window document with the most pairs that fit in
// space, the earliest on ties, or -1. Documents longer than a row are
// taken only from the head (see packer.buildPack).
func (w *window) bestFit(space, seqLen int) (int, int) {
	best, size, seen := -1, 0, 0
	for i := range w.ents {
		e := &w.ents[i]
		if e.taken || e.pairs <= 0 {
			continue
		}
		if seen == w.size {
			break
		}
		seen++
		p := e.pairs
		if i == 0 {
			p = w.head(seqLen)
		} else if p > seqLen {
			continue
		}
		if p <= space && p > size {
			best, size = i, p
		}
	}
	return best, size
}

// take marks take pairs of document i placed (from w.off for the head).
func (w *window) take(i, take int) {
	if i > 0 {
		w.ents[i].taken = true
		return
	}
	if w.off += take; w.off >= w.ents[0].pairs {
		w.ents[0].taken = true
	}
}

// state returns s at the window's position. Call normalize first.
func (w *window) state(s State) State {
	s.Pos, s.Offset, s.Taken = w.pos, w.off, ""
	if len(w.ents) > 1 {
		bits := make([]bool, len(w.ents)-1)
		for i := range bits {
			bits[i] = w.ents[1+i].taken
		}
		s.Taken = encodeTaken(bits)
	}
	return s
}

// encodeTaken writes bits as hex digits, four bits each, the first bit the
// lowest of the first digit, trailing zero digits dropped.
func encodeTaken(bits []bool) string {
	var b strings.Builder
	zeros := 0
	for i := 0; i < len(bits); i += 4 {
		v := 0
		for j := range min(4, len(bits)-i) {
			if bits[i+j] {
				v |= 1 << j
			}
		}
		if v == 0 {
			zeros++
			continue
		}
		for ; zeros > 0; zeros-- {
			b.WriteByte('0')
		}
		b.WriteByte("0123456789abcdef"[v])
	}
	return b.String()
}

func decodeTaken(s string) ([]bool, error) {
	if len(s) > 2*MaxWindow/4 {
		return nil, fmt.Errorf("loader: state taken %q is longer than %d digits", s, 2*MaxWindow/4)
	}
	bits := make([]bool, 0, 4*len(s))
	for i := range len(s) {
		var v int
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			v = int(c - '0')
		case c >= 'a' && c <= 'f':
			v = int(c-'a') + 10
		default:
			return nil, fmt.Errorf("loader: state taken %q: %q is not a lower-case hex digit", s, c)
		}
		for j := range 4 {
			bits = append(bits, v&(1<<j) != 0)
		}
	}
	return bits, nil
}
