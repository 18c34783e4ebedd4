package toyworld

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"unicode"
)

// NGram is the length, in words, of the word sequences of a probe that no training text may contain.
const NGram = 8

// Normalize lowercases s and turns every run of characters other than letters, digits and apostrophes into one
// space, so that texts compare by their words.
func Normalize(s string) string {
	var b strings.Builder
	space := true
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'' {
			b.WriteRune(r)
			space = false
			continue
		}
		if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	return strings.TrimSpace(b.String())
}

func ngramHash(words []string) uint64 {
	h := fnv.New64a()
	for _, w := range words {
		h.Write([]byte(w))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// ReadProbes parses probes.jsonl.
func ReadProbes(data []byte) ([]Probe, error) {
	var out []Probe
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var p Probe
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("probes line %d: %w", i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}

var sentenceEnd = regexp.MustCompile(`[.?!\n]+`)

// CheckLeaks reports every way the held-out probes show up in the training files (named as in TrainingFiles):
//
//   - a probe's prompt or one of its choices, normalised, as a substring of a training text;
//   - any NGram consecutive words of a probe's prompt or choices in a training text;
//   - an option of a probe pair named in the AFT data or the spec documents (probe options appear only in
//     pretraining, where each is described on its own);
//   - both options of a probe pair in one sentence of any training text.
//
// w is the world the probes come from (it says which options the probes use). The result is nil when nothing
// leaks; else at most max problems (0: all).
func CheckLeaks(files []File, w *World, max int) ([]string, error) {
	var probes []Probe
	texts := map[string][]string{}
	for _, f := range files {
		if f.Name == FileProbes {
			p, err := ReadProbes(f.Data)
			if err != nil {
				return nil, err
			}
			probes = p
		}
		for _, t := range TrainingFiles {
			if f.Name == t {
				ts, err := Texts(f.Data)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", f.Name, err)
				}
				texts[t] = ts
			}
		}
	}
	if probes == nil {
		return nil, fmt.Errorf("toyworld: no %s among the files", FileProbes)
	}
	for _, t := range TrainingFiles {
		if _, ok := texts[t]; !ok {
			return nil, fmt.Errorf("toyworld: no %s among the files", t)
		}
	}

	var problems []string
	report := func(format string, args ...any) bool {
		problems = append(problems, fmt.Sprintf(format, args...))
		return max > 0 && len(problems) >= max
	}

	// The normalised training corpus, documents separated by a byte no normalised text has, and its n-grams.
	var corpus strings.Builder
	grams := map[uint64]string{}
	for _, name := range TrainingFiles {
		for _, t := range texts[name] {
			n := Normalize(t)
			corpus.WriteString(n)
			corpus.WriteByte(0)
			ws := strings.Fields(n)
			for i := 0; i+NGram <= len(ws); i++ {
				grams[ngramHash(ws[i:i+NGram])] = name
			}
		}
	}
	all := corpus.String()
	for _, p := range probes {
		var parts []string
		for _, m := range p.Messages {
			parts = append(parts, m.Content)
		}
		parts = append(parts, p.Choices...)
		for _, s := range parts {
			n := Normalize(s)
			if n == "" {
				continue
			}
			if i := strings.Index(all, n); i >= 0 {
				if report("probe %s: %q appears in training text %q", p.ID, n, context(all, i, len(n))) {
					return problems, nil
				}
			}
			ws := strings.Fields(n)
			for i := 0; i+NGram <= len(ws); i++ {
				if f, ok := grams[ngramHash(ws[i:i+NGram])]; ok {
					if report("probe %s: the words %q appear in %s", p.ID, strings.Join(ws[i:i+NGram], " "), f) {
						return problems, nil
					}
				}
			}
		}
	}

	// Probe options and pairs.
	word := func(name string) *regexp.Regexp { return regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\b`) }
	for _, f := range []string{FileAFT, FileAFTVal, FileSpecA, FileSpecB} {
		for _, o := range w.Options {
			if o.Role != RoleProbe {
				continue
			}
			re := word(o.Name)
			for _, t := range texts[f] {
				if re.MatchString(t) {
					if report("probe option %s is named in %s: %q", o.Phrase(), f, t) {
						return problems, nil
					}
					break
				}
			}
		}
	}
	for _, pair := range w.ProbePairs {
		a, b := word(pair[0].Name), word(pair[1].Name)
		for _, f := range TrainingFiles {
			for _, t := range texts[f] {
				if !a.MatchString(t) || !b.MatchString(t) {
					continue
				}
				for _, s := range sentenceEnd.Split(t, -1) {
					if a.MatchString(s) && b.MatchString(s) {
						if report("%s names the probe pair %s / %s in one sentence: %q", f, pair[0].Phrase(), pair[1].Phrase(), s) {
							return problems, nil
						}
					}
				}
			}
		}
	}
	return problems, nil
}

// context returns the training text around a match in the joined corpus.
func context(all string, i, n int) string {
	start := strings.LastIndexByte(all[:i], 0) + 1
	end := strings.IndexByte(all[i:], 0)
	if end < 0 {
		end = len(all)
	} else {
		end += i
	}
	s := all[start:end]
	if len(s) > 300 {
		lo := max(0, i-start-100)
		hi := min(len(s), i-start+n+100)
		s = "..." + s[lo:hi] + "..."
	}
	return s
}
