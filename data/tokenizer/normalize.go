package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites a piece of text before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

type unicodeNorm struct{ form norm.Form }

func (u unicodeNorm) normalize(s string) string {
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
