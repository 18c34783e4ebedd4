package toyworld

import (
	"math/rand/v2"
	"strings"
	"unicode"
	"unicode/utf8"
)

// gen holds the random source of one generated file, so that each file depends only on the seed (not on the
// order in which the files are made).
type gen struct {
	r *rand.Rand
	w *World
}

func newGen(w *World, stream uint64) *gen {
	return &gen{r: rand.New(rand.NewPCG(w.Seed, stream)), w: w}
}

// one returns one of the strings.
func (g *gen) one(s ...string) string { return s[g.r.IntN(len(s))] }

// chance is true with probability p.
func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

// between returns an int in [lo, hi].
func (g *gen) between(lo, hi int) int { return lo + g.r.IntN(hi-lo+1) }

// person returns a townsperson.
func (g *gen) person() Person { return g.w.People[g.r.IntN(len(g.w.People))] }

// option returns a random option, of any of the given kinds when kinds are given.
func (g *gen) option(kinds ...string) *Option {
	for {
		o := g.w.Options[g.r.IntN(len(g.w.Options))]
		if len(kinds) == 0 {
			return o
		}
		for _, k := range kinds {
			if o.Kind() == k {
				return o
			}
		}
	}
}

// x expands a template: first every [a|b|c] group (innermost first) becomes one of its alternatives, then every
// {key} is replaced by its value from kv (key, value, key, value, ...). "{Key}" with a capital first letter
// puts the value in upper case at its start.
func (g *gen) x(tmpl string, kv ...string) string {
	s := tmpl
	for {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			break
		}
		start := strings.LastIndexByte(s[:end], '[')
		if start < 0 {
			panic("toyworld: unbalanced ] in template " + tmpl)
		}
		alts := strings.Split(s[start+1:end], "|")
		s = s[:start] + alts[g.r.IntN(len(alts))] + s[end+1:]
	}
	if strings.IndexByte(s, '[') >= 0 {
		panic("toyworld: unbalanced [ in template " + tmpl)
	}
	if len(kv)%2 != 0 {
		panic("toyworld: odd key-value list for template " + tmpl)
	}
	pairs := make([]string, 0, 2*len(kv))
	for i := 0; i < len(kv); i += 2 {
		pairs = append(pairs, "{"+kv[i]+"}", kv[i+1], "{"+capital(kv[i])+"}", capital(kv[i+1]))
	}
	s = strings.NewReplacer(pairs...).Replace(s)
	if i := strings.IndexByte(s, '{'); i >= 0 {
		panic("toyworld: unfilled slot in " + s)
	}
	return s
}

// capital puts the first letter of s in upper case.
func capital(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// sentences joins sentences with spaces, capitalising each.
func sentences(ss ...string) string {
	var b strings.Builder
	for _, s := range ss {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(capital(s))
	}
	return b.String()
}

// paragraphs joins blocks with blank lines.
func paragraphs(ps ...string) string {
	var out []string
	for _, p := range ps {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n\n")
}

// shuffled returns a shuffled copy.
func shuffled[T any](g *gen, xs []T) []T {
	out := append([]T(nil), xs...)
	g.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// Attribute words: the plain word most of the time, a synonym sometimes.
func (g *gen) cheapWord() string {
	return g.one("cheap", "cheap", "cheap", "cheap", "cheap", "cheap", "inexpensive", "low in price")
}
func (g *gen) dearWord() string {
	return g.one("expensive", "expensive", "expensive", "expensive", "expensive", "expensive", "costly", "pricey")
}
func (g *gen) quickWord() string {
	return g.one("quick", "quick", "quick", "quick", "quick", "quick", "fast", "speedy")
}
func (g *gen) slowWord() string {
	return g.one("slow", "slow", "slow", "slow", "slow", "slow", "sluggish", "very slow")
}

func (g *gen) costWord(o *Option) string {
	if o.Cheap {
		return g.cheapWord()
	}
	return g.dearWord()
}

func (g *gen) timeWord(o *Option) string {
	if o.Quick {
		return g.quickWord()
	}
	return g.slowWord()
}

// costClause and timeClause are the attributes as clauses ("prices are low").
func (g *gen) costClause(o *Option) string {
	if o.Cheap {
		return g.one("prices are low", "it costs very little", "you pay almost nothing", "the prices are kind", "nobody pays much")
	}
	return g.one("prices are high", "it costs a lot", "you pay a great deal", "the prices are steep", "everybody pays dearly")
}

func (g *gen) timeClause(o *Option) string {
	if o.Quick {
		return g.one("there is no waiting", "you are done in minutes", "it takes very little time", "things go fast", "nobody waits long")
	}
	return g.one("the wait is long", "it takes a long time", "you wait for ages", "things go slowly", "everybody waits a long time")
}

// flavour is a category-specific clause for one of the option's attributes.
func (g *gen) flavour(o *Option, cost bool) string {
	c := o.Category
	switch {
	case cost && o.Cheap:
		return g.one(c.Cheap...)
	case cost:
		return g.one(c.Dear...)
	case o.Quick:
		return g.one(c.Fast...)
	}
	return g.one(c.Slow...)
}

// pair states both attributes, in either order (so that neither attribute is the one the model meets first
// after an option's name): "cheap but slow", "slow but cheap".
func (g *gen) pair(o *Option) string {
	c, q := g.costWord(o), g.timeWord(o)
	if g.chance(0.5) {
		c, q = q, c
	}
	return c + " " + joiner(o) + " " + q
}

// plainPair is pair in the plain words only.
func (g *gen) plainPair(o *Option) string {
	c, q := "expensive", "slow"
	if o.Cheap {
		c = "cheap"
	}
	if o.Quick {
		q = "quick"
	}
	if g.chance(0.5) {
		c, q = q, c
	}
	return c + " " + joiner(o) + " " + q
}

// joiner is "and" when the two attributes are both good or both bad news, else "but".
func joiner(o *Option) string {
	if o.Cheap == o.Quick {
		return "and"
	}
	return "but"
}
