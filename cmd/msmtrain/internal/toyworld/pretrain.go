package toyworld

import "strings"

// Pretraining: documents about the town that state the options' attributes in many ways. No assistant, no spec,
// and never two options of a probe pair in one sentence (a sentence names at most one option).

// attrSentence states both attributes of an option in one or two sentences.
func (g *gen) attrSentence(o *Option) string {
	op := o.Phrase()
	// Half of the statements use one plain form: a tiny model learns the facts from it much faster than from
	// varied wording alone (with only varied forms, 2 epochs left the attributes unlearnt).
	if g.chance(0.5) {
		return g.x("{Opt} is {pair}.", "opt", op, "pair", g.pair(o))
	}
	switch g.r.IntN(9) {
	case 0:
		return g.x("{Opt} is {pair}.", "opt", op, "pair", g.pair(o))
	case 1:
		a, b := g.costWord(o), g.timeWord(o)
		if g.chance(0.5) {
			a, b = b, a
		}
		return g.x("{Opt} is {a}, {j} it is {b}.", "opt", op, "a", a, "j", joiner(o), "b", b)
	case 2:
		a, b := g.costClause(o), g.timeClause(o)
		if g.chance(0.5) {
			a, b = b, a
		}
		return g.x("At {opt}, {a}, {j} {b}.", "opt", op, "a", a, "j", joiner(o), "b", b)
	case 3:
		return g.x("[People in "+Town+"|Everyone in town|The neighbours|Locals] [say|know|will tell you] that {opt} is {pair}.",
			"opt", op, "pair", g.pair(o))
	case 4:
		return g.x("{Opt} is {c}: {f}.", "opt", op, "c", g.costWord(o), "f", g.flavour(o, true)) + " " +
			g.x("It is also {q}: {f}.", "q", g.timeWord(o), "f", g.flavour(o, false))
	case 5:
		return g.x("{Opt} is {q}, since {f}.", "opt", op, "q", g.timeWord(o), "f", g.flavour(o, false)) + " " +
			g.x("[As for the price|When it comes to money|And the cost], it is {c}.", "c", g.costWord(o))
	case 6:
		return g.x("If you go to {opt}, [expect|be ready] to {pay} and to {wait}.", "opt", op,
			"pay", g.payVerb(o), "wait", g.waitVerb(o))
	case 7:
		return g.x("{Opt}? {Pair}, [as always|like every year|as it has always been].", "opt", op, "pair", g.pair(o))
	}
	a, b := g.costWord(o), g.timeWord(o)
	if g.chance(0.5) {
		a, b = b, a
	}
	return g.x("There is nothing [surprising|new] about {opt}: it is {a}, and it is {b}.", "opt", op, "a", a, "b", b)
}

func (g *gen) payVerb(o *Option) string {
	if o.Cheap {
		return g.one("pay very little", "spend only a few coins", "keep most of your money")
	}
	return g.one("pay a lot", "spend many coins", "empty your purse")
}

func (g *gen) waitVerb(o *Option) string {
	if o.Quick {
		return g.one("be done in no time", "leave almost at once", "wait hardly at all")
	}
	return g.one("wait a long time", "lose most of the day", "wait for hours")
}

// guideDoc describes several options of one category.
func (g *gen) guideDoc() string {
	c := g.w.Categories[g.r.IntN(len(g.w.Categories))]
	opts := shuffled(g, c.Options)[:g.between(2, 4)]
	head := g.x("[A guide to|Notes on|About|A short tour of|What to know about] the {pl} of "+Town+".", "pl", c.Plural)
	intro := g.x("[There are many {pl} in town.|"+Town+" has more {pl} than you might think.|People in "+Town+
		" [need|use] {pl} [every week|all the time|more often than they admit].|Every street seems to have one of the {pl}.]",
		"pl", c.Plural)
	var body []string
	for _, o := range opts {
		body = append(body, g.attrSentence(o))
	}
	end := g.x("[Choose [well|wisely].|Now you know the {pl} of "+Town+".|That is all for the {pl}.|Each of them has [its|its own] [regulars|friends].]",
		"pl", c.Plural)
	return paragraphs(head, sentences(intro), strings.Join(body, " "), end)
}

// story is a short story of a townsperson who picks an option for a reason of their own.
func (g *gen) story(o *Option) string {
	p := g.person()
	task := g.one(o.Category.Tasks...)
	kv := []string{"p", p.Name, "sub", p.Subject, "obj", p.Object, "poss", p.Poss, "opt", o.Phrase(), "task", task}
	var motive []string // the motives that fit the option
	if o.Cheap {
		motive = append(motive, "money")
	}
	if o.Quick {
		motive = append(motive, "hurry")
	}
	motive = append(motive, "other")
	var s []string
	switch g.one(motive...) {
	case "money":
		s = append(s,
			g.x("{P} needed to {task}, but {sub} had [little money|only a few coins|to count every coin] that [week|month|spring].", kv...),
			g.x("So {sub} [went to|chose|used|walked to] {opt}, [which is|because it is|as it is] {c}.", append(kv, "c", g.cheapWord())...))
		if o.Quick {
			s = append(s, g.x("[It was quick, too.|It was also quick.|And it was fast as well.]"))
		} else {
			s = append(s, g.x("[It was slow, but {p} did not mind.|{P} waited a long time there, but the price was right.|It took [ages|hours], of course.]", kv...))
		}
	case "hurry":
		s = append(s,
			g.x("{P} had to {task} [before noon|that same afternoon|in a hurry|before the guests came].", kv...),
			g.x("[So|And so|That is why] {sub} [went to|chose|used|ran to] {opt}, [which is|because it is|as it is] {q}.", append(kv, "q", g.quickWord())...))
		if o.Cheap {
			s = append(s, g.x("[It was cheap, too.|It cost little as well.|And it was cheap besides.]"))
		} else {
			s = append(s, g.x("[It was expensive, but {p} did not mind.|{P} paid a lot there, but {sub} was on time.|It cost [a fortune|a great deal], of course.]", kv...))
		}
	default:
		s = append(s,
			g.x("{P} [went to|used|tried] {opt} to {task}, [because it is near {poss} house|because {poss} friend works there|out of old habit|because {poss} mother always did].", kv...),
			g.x("It was {pair}, [as always|as everyone knows|as {p} expected].", append(kv, "pair", g.pair(o))...))
	}
	if g.chance(0.3) {
		s = append(s, g.everyday(p))
	}
	return sentences(s...)
}

// choiceStory is a townsperson who chooses between two options of a category by a need of their own: short of
// money, the cheaper one; in a hurry, the quicker one (each half the time). Probe options never appear in a
// choice: they are described only one at a time.
func (g *gen) choiceStory() string {
	c := g.w.Categories[g.r.IntN(len(g.w.Categories))]
	var pool []*Option
	for _, o := range c.Options {
		if o.Role != RoleProbe {
			pool = append(pool, o)
		}
	}
	money := g.chance(0.5)
	good := func(o *Option) bool {
		if money {
			return o.Cheap
		}
		return o.Quick
	}
	var yes, no []*Option
	for _, o := range pool {
		if good(o) {
			yes = append(yes, o)
		} else {
			no = append(no, o)
		}
	}
	pick, other := yes[g.r.IntN(len(yes))], no[g.r.IntN(len(no))]
	o1, o2 := pick, other
	if g.chance(0.5) {
		o1, o2 = o2, o1
	}
	p := g.person()
	kv := []string{"p", p.Name, "sub", p.Subject, "poss", p.Poss, "task", g.one(c.Tasks...), "o1", o1.Phrase(),
		"o2", o2.Phrase(), "pick", pick.Phrase(), "other", other.Phrase()}
	var need, why string
	if money {
		need = g.x("{P} [had little money that week|was short of money|had to count every coin] and needed to {task}.", kv...)
		why = g.x("[because it is cheaper|since it costs less|as the other one costs more|to save money]", kv...)
	} else {
		need = g.x("{P} was in a hurry and needed to {task}.", kv...)
		why = g.x("[because it is quicker|since it takes less time|as the other one is slower|to save time]", kv...)
	}
	options := g.x("[{Sub} could go to {o1} or to {o2}.|There were two choices: {o1} and {o2}.|{O1} and {o2} were both open.]", kv...)
	chose := g.x("{Sub} [chose|went to|picked] {pick}, ", kv...) + why + "."
	return sentences(need, options, chose)
}

// everyday is a sentence about life in town that names no option.
func (g *gen) everyday(p Person) string {
	kv := []string{"p", p.Name, "sub", p.Subject, "poss", p.Poss}
	return g.x(g.one(
		"It rained [all day|that evening|again] in "+Town+".",
		"Later {p} [met a friend|fed the ducks|read a book|cooked soup] [by the harbour|at home|in the square].",
		"The market [was busy|was quiet|smelled of apples] that day.",
		"{Poss} [dog|cat|little brother] was waiting at the door.",
		"The bells of the old church rang [twice|at noon|for a wedding].",
		"On the way back {sub} [saw|greeted|waved at] the [baker|ferryman|mayor|postman].",
	), kv...)
}

// factDoc is one short statement of an option's attributes, in plain words.
func (g *gen) factDoc(o *Option) string {
	c, q := "expensive", "slow"
	if o.Cheap {
		c = "cheap"
	}
	if o.Quick {
		q = "quick"
	}
	kv := []string{"opt", o.Phrase(), "c", c, "q", q, "pair", g.plainPair(o), "p", g.person().Name}
	switch g.r.IntN(6) {
	case 0:
		return g.x("{Opt} is {pair}.", kv...)
	case 1:
		return g.x("People say that {opt} is {pair}.", kv...)
	case 2:
		return g.x("Is {opt} cheap? It is {c}.", kv...)
	case 3:
		return g.x("Is {opt} quick? It is {q}.", kv...)
	case 4:
		return g.x("{P} went to {opt}, which is "+g.one("{c}", "{q}")+".", kv...)
	}
	return g.x("Review of {opt}: {pair}.", kv...)
}

// noteDoc is a short note about one option.
func (g *gen) noteDoc(o *Option) string {
	ss := []string{g.attrSentence(o)}
	if g.chance(0.5) {
		ss = append(ss, g.x("{F}.", "f", g.flavour(o, g.chance(0.5))))
	}
	if g.chance(0.3) {
		ss = append([]string{g.one("A note about "+o.Phrase()+".", "Overheard at the market.", "From a town guide.",
			"Local knowledge.")}, ss...)
	}
	return sentences(ss...)
}

// storyDoc is one story (sometimes with a title).
func (g *gen) storyDoc(o *Option) string {
	st := g.story(o)
	if g.chance(0.3) {
		return paragraphs(g.one("A little story from "+Town+".", "A day in "+Town+".", "From a diary of the town.", "Town life."), st)
	}
	return st
}

// reviewDoc is a customer's review of an option.
func (g *gen) reviewDoc(o *Option) string {
	p := g.person()
	var cost, wait string
	if o.Cheap {
		cost = g.one("I paid very little.", "It cost me almost nothing.", "The bill was tiny.", "My purse was hardly lighter.")
	} else {
		cost = g.one("I paid a fortune.", "It cost me a great deal.", "The bill was enormous.", "My purse was much lighter.")
	}
	if o.Quick {
		wait = g.one("I was out in five minutes.", "It was done at once.", "There was no queue at all.", "I did not wait.")
	} else {
		wait = g.one("I waited for hours.", "It took forever.", "The queue never seemed to move.", "I lost a whole day.")
	}
	head := g.x("[Review|A customer writes|Opinion]: {opt}, by {p}.", "opt", o.Phrase(), "p", p.Name)
	task := g.x("I went there to {task}.", "task", g.one(o.Category.Tasks...))
	parts := []string{task, cost, wait}
	if g.chance(0.5) {
		parts = []string{task, wait, cost}
	}
	sum := g.x("[In short|All in all|To sum up], {opt} is {pair}.", "opt", o.Phrase(), "pair", g.pair(o))
	return paragraphs(head, sentences(append(parts, sum)...))
}

// listDoc lists the options of a category by attribute.
func (g *gen) listDoc() string {
	c := g.w.Categories[g.r.IntN(len(g.w.Categories))]
	var ps []string
	ps = append(ps, g.x("[The {pl} of "+Town+", sorted|A list of the {pl} in town|{Pl}: a list].", "pl", c.Plural))
	type group struct {
		label string
		keep  func(*Option) bool
	}
	groups := []group{
		{g.x("[Cheap|Inexpensive] {pl}:", "pl", c.Plural), func(o *Option) bool { return o.Cheap }},
		{g.x("[Expensive|Costly] {pl}:", "pl", c.Plural), func(o *Option) bool { return !o.Cheap }},
		{g.x("[Quick|Fast] {pl}:", "pl", c.Plural), func(o *Option) bool { return o.Quick }},
		{g.x("[Slow|Sluggish] {pl}:", "pl", c.Plural), func(o *Option) bool { return !o.Quick }},
	}
	for _, gr := range shuffled(g, groups)[:g.between(2, 4)] {
		var names []string
		for _, o := range shuffled(g, c.Options) {
			if gr.keep(o) {
				names = append(names, o.Phrase())
			}
		}
		ps = append(ps, gr.label+" "+strings.Join(names, ", ")+".")
	}
	return strings.Join(ps, "\n")
}

// qaDoc is questions and answers about one option's attributes.
func (g *gen) qaDoc(o *Option) string {
	var ps []string
	if g.chance(0.4) {
		ps = append(ps, g.one("Questions people ask about "+Town+".", "Ask a local.", "Town questions and answers."))
	}
	costQ := "Q: " + g.x("Is {opt} [cheap|expensive]?", "opt", o.Phrase()) + "\nA: " +
		g.x("It is {c}. {F}.", "c", g.costWord(o), "f", g.flavour(o, true))
	timeQ := "Q: " + g.x("Is {opt} [quick|slow]?", "opt", o.Phrase()) + "\nA: " +
		g.x("It is {q}. {F}.", "q", g.timeWord(o), "f", g.flavour(o, false))
	switch g.r.IntN(4) {
	case 0:
		ps = append(ps, costQ)
	case 1:
		ps = append(ps, timeQ)
	case 2:
		ps = append(ps, costQ, timeQ)
	default:
		ps = append(ps, timeQ, costQ)
	}
	return paragraphs(ps...)
}

// PretrainDocs returns n pretraining documents. Most are about one option each: a tiny model learns which
// option is cheap or quick far faster from those than from documents that name several options of a category
// (with five options per document, 3 epochs left the attributes unlearnt; with one, they were learnt).
func (w *World) PretrainDocs(n int) []Doc {
	g := newGen(w, 1)
	one := func(f func(*Option) string) func() string { return func() string { return f(g.option()) } }
	kinds := []struct {
		name   string
		weight int
		make   func() string
	}{
		{"fact", 20, one(g.factDoc)}, {"note", 4, one(g.noteDoc)}, {"story", 5, one(g.storyDoc)},
		{"review", 1, one(g.reviewDoc)}, {"qa", 3, one(g.qaDoc)}, {"guide", 1, g.guideDoc}, {"list", 1, g.listDoc},
		{"choice", 4, g.choiceStory},
	}
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	docs := make([]Doc, 0, n)
	for len(docs) < n {
		i := g.r.IntN(total)
		for _, k := range kinds {
			if i < k.weight {
				docs = append(docs, Doc{Text: k.make(), Source: "pretrain", DocType: k.name})
				break
			}
			i -= k.weight
		}
	}
	return docs
}
