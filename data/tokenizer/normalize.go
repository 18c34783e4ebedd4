package tokenizer

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites a piece of text before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

type unicodeNorm struct{ form norm.Form }

func (u unicodeNorm) normalize(s string) string {
	if longRun(s) {
		return normalizeRuns(u.form, s)
	}
	if u.form.IsNormalString(s) {
		return s
	}
	return u.form.String(s)
}

type lowercase struct{}

func (lowercase) normalize(s string) string { return strings.ToLower(s) }

type normSeq []normalizer

func (q normSeq) normalize(s string) string {
	for _, n := range q {
		s = n.normalize(s)
	}
	return s
}

func parseNormalizer(b json.RawMessage, field string, ferr ferrFunc) (normalizer, error) {
	if isNull(b) {
		return nil, nil
	}
	var c component
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, ferr(field, "%v", err)
	}
	switch c.Type {
	case "NFC":
		return unicodeNorm{norm.NFC}, nil
	case "NFD":
		return unicodeNorm{norm.NFD}, nil
	case "NFKC":
		return unicodeNorm{norm.NFKC}, nil
	case "NFKD":
		return unicodeNorm{norm.NFKD}, nil
	case "Lowercase":
		return lowercase{}, nil
	case "Sequence":
		var q normSeq
		for i, sub := range c.Normalizers {
			n, err := parseNormalizer(sub, fmt.Sprintf("%s.normalizers[%d]", field, i), ferr)
			if err != nil {
				return nil, err
			}
			if n != nil {
				q = append(q, n)
			}
		}
		if len(q) == 0 {
			return nil, nil
		}
		return q, nil
	}
	return nil, ferr(field+".type", "unsupported normalizer %q", c.Type)
}

// offMap maps byte offsets of a normalized piece back to the input, at the
// boundaries of normalization segments (Unicode forms) or proportionally
// (other normalizers). Offsets are base + offset in the normalized text.
type offMap struct {
	base     int
	nrm, raw []int // ascending segment ends, normalized and raw
	nlen     int
	rlen     int
}

func newOffMap(n normalizer, raw, nrm string, base int) *offMap {
	m := &offMap{base: base, nlen: len(nrm), rlen: len(raw)}
	if u, ok := n.(unicodeNorm); ok && !longRun(raw) {
		var it norm.Iter
		it.InitString(u.form, raw)
		o := 0
		for !it.Done() {
			o += len(it.Next())
			m.nrm = append(m.nrm, o)
			m.raw = append(m.raw, it.Pos())
		}
		if o != len(nrm) { // not expected; fall back to proportions
			m.nrm, m.raw = nil, nil
		}
	}
	return m
}

func (m *offMap) toRaw(k int) int {
	k -= m.base
	if m.nrm == nil {
		if m.nlen == 0 {
			return m.base
		}
		return m.base + k*m.rlen/m.nlen
	}
	i := sort.SearchInts(m.nrm, k)
	if i == len(m.raw) {
		return m.base + m.rlen
	}
	return m.base + m.raw[i]
}
