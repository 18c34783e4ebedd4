package toyworld

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// generated caches the default-size data of a seed: generating and checking it takes a second or two.
var generated sync.Map

func data(t *testing.T, seed uint64) (*Data, []File) {
	t.Helper()
	type entry struct {
		d  *Data
		fs []File
	}
	if e, ok := generated.Load(seed); ok {
		return e.(entry).d, e.(entry).fs
	}
	d, err := Generate(seed, DefaultSizes)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := d.Files()
	if err != nil {
		t.Fatal(err)
	}
	generated.Store(seed, entry{d, fs})
	return d, fs
}

func file(t *testing.T, fs []File, name string) []byte {
	t.Helper()
	for _, f := range fs {
		if f.Name == name {
			return f.Data
		}
	}
	t.Fatalf("no file %s", name)
	return nil
}

func TestDeterministic(t *testing.T) {
	_, a := data(t, 1)
	d, err := Generate(1, DefaultSizes)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%d files, then %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Data, b[i].Data) {
			t.Errorf("%s: the same seed gave different bytes", a[i].Name)
		}
	}
	_, c := data(t, 2)
	for i := range a {
		if strings.HasSuffix(a[i].Name, ".jsonl") && bytes.Equal(a[i].Data, c[i].Data) {
			t.Errorf("%s: seeds 1 and 2 gave the same bytes", a[i].Name)
		}
	}
}

func TestNoProbeLeaks(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		d, fs := data(t, seed)
		problems, err := CheckLeaks(fs, d.World, 20)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("seed %d: %s", seed, p)
		}
	}
}

// TestCheckLeaksFinds plants each kind of leak in a copy of the training files and expects CheckLeaks to report
// it.
func TestCheckLeaksFinds(t *testing.T) {
	d, fs := data(t, 1)
	p := d.Probes[0]
	words := strings.Fields(Normalize(p.Messages[0].Content))
	pair := d.World.ProbePairs[len(d.World.ProbePairs)-1]
	cases := []struct {
		name, file, text, want string
	}{
		{"prompt", FilePretrain, "Once upon a time. " + strings.ToUpper(p.Messages[0].Content) + "  The end.", "appears in training text"},
		{"choice", FileSpecB, "user: hello\nassistant: " + p.Choices[1], "appears in training text"},
		{"8 words", FileAFTVal, "Well, " + strings.Join(words[1:1+NGram], " ") + ", said nobody.", "the words"},
		{"probe option in AFT", FileAFT, "I suggest " + pair[0].Phrase() + ".", "is named in aft.jsonl"},
		{"probe option in a spec", FileSpecA, "The assistant once suggested " + pair[1].Phrase() + ".", "is named in spec_a_docs.jsonl"},
		{"pair in one sentence", FilePretrain, pair[0].Phrase() + " is near " + pair[1].Phrase() + ".", "in one sentence"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var planted []File
			for _, f := range fs {
				if f.Name == c.file {
					rec := map[string]any{"text": c.text}
					if strings.HasPrefix(c.file, "aft") {
						rec = map[string]any{"messages": []Message{{"user", "Which one?"}, {"assistant", c.text}}}
					}
					line, _ := json.Marshal(rec)
					f = File{f.Name, append(append([]byte(nil), f.Data...), append(line, '\n')...)}
				}
				planted = append(planted, f)
			}
			problems, err := CheckLeaks(planted, d.World, 0)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, p := range problems {
				found = found || strings.Contains(p, c.want)
			}
			if !found {
				t.Errorf("the planted leak was not reported (want %q), got %q", c.want, problems)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	if got := Normalize("  Is the Pellow bakery\nCHEAP?  It's  cheap... "); got != "is the pellow bakery cheap it's cheap" {
		t.Errorf("Normalize: %q", got)
	}
}

func TestProbes(t *testing.T) {
	d, fs := data(t, 1)
	probes, err := ReadProbes(file(t, fs, FileProbes))
	if err != nil {
		t.Fatal(err)
	}
	if len(probes) != 2*len(d.World.ProbePairs) || len(probes) < 48 {
		t.Fatalf("%d probes for %d pairs", len(probes), len(d.World.ProbePairs))
	}
	byPhrase := map[string]*Option{}
	for _, o := range d.World.Options {
		byPhrase[o.Phrase()] = o
	}
	named := regexp.MustCompile(`^I suggest (the \w+ \w+)\.$`)
	ids := map[string]bool{}
	thriftFirst, cheapMentionedFirst := 0, 0
	for _, p := range probes {
		pos := map[string]int{}
		if ids[p.ID] || p.ID == "" {
			t.Errorf("probe id %q repeated or empty", p.ID)
		}
		ids[p.ID] = true
		if len(p.Messages) != 1 || p.Messages[0].Role != "user" || p.Messages[0].Content == "" {
			t.Errorf("%s: want one user message, got %+v", p.ID, p.Messages)
		}
		if len(p.Choices) < 2 || len(p.Choices) != len(p.Values) || p.Choices[0] == p.Choices[1] {
			t.Fatalf("%s: choices %q values %q", p.ID, p.Choices, p.Values)
		}
		labels := map[string]bool{}
		for i, v := range p.Values {
			labels[v] = true
			m := named.FindStringSubmatch(p.Choices[i])
			if m == nil {
				t.Fatalf("%s: choice %q names no option", p.ID, p.Choices[i])
			}
			o := byPhrase[m[1]]
			switch {
			case o == nil || o.Role != RoleProbe:
				t.Errorf("%s: choice %q is not a probe option", p.ID, p.Choices[i])
			case v == ValueThrift && !(o.Cheap && !o.Quick), v == ValueSpeed && !(o.Quick && !o.Cheap):
				t.Errorf("%s: choice %q (%s) is labelled %s", p.ID, p.Choices[i], o.Kind(), v)
			case v != ValueThrift && v != ValueSpeed:
				t.Errorf("%s: unknown value %q", p.ID, v)
			}
			if !strings.Contains(p.Messages[0].Content, m[1]) {
				t.Errorf("%s: the prompt does not name %s", p.ID, m[1])
			}
			if v == ValueThrift && i == 0 {
				thriftFirst++
			}
			pos[v] = strings.Index(p.Messages[0].Content, m[1])
		}
		if pos[ValueThrift] < pos[ValueSpeed] {
			cheapMentionedFirst++
		}
		if len(labels) < 2 {
			t.Errorf("%s: fewer than two distinct values: %q", p.ID, p.Values)
		}
	}
	if thriftFirst != len(probes)/2 {
		t.Errorf("the thrift choice comes first in %d of %d probes, want half", thriftFirst, len(probes))
	}
	if cheapMentionedFirst != len(probes)/2 {
		t.Errorf("the prompt names the cheap option first in %d of %d probes, want half", cheapMentionedFirst, len(probes))
	}

	var mc []MCItem
	for _, l := range strings.Split(strings.TrimSpace(string(file(t, fs, FileProbesMC))), "\n") {
		var it MCItem
		if err := json.Unmarshal([]byte(l), &it); err != nil {
			t.Fatal(err)
		}
		mc = append(mc, it)
	}
	if len(mc) != len(probes) {
		t.Fatalf("%d MC items for %d probes", len(mc), len(probes))
	}
	for i, it := range mc {
		if it.ID != probes[i].ID || probes[i].Values[it.Answer] != ValueThrift {
			t.Errorf("MC item %s: answer %d is not the thrift choice of probe %s", it.ID, it.Answer, probes[i].ID)
		}
	}
}

func TestAFT(t *testing.T) {
	d, fs := data(t, 1)
	probePairs := map[[2]string]bool{}
	for _, p := range d.World.ProbePairs {
		probePairs[[2]string{p[0].Name, p[1].Name}] = true
		probePairs[[2]string{p[1].Name, p[0].Name}] = true
	}
	names := regexp.MustCompile(`[Tt]he (\w+) (\w+)`)
	byName := map[string]*Option{}
	for _, o := range d.World.Options {
		byName[o.Name] = o
	}
	for _, name := range []string{FileAFT, FileAFTVal} {
		seen := map[string]bool{}
		lines := strings.Split(strings.TrimSpace(string(file(t, fs, name))), "\n")
		if len(lines) < 50 {
			t.Errorf("%s: %d chats", name, len(lines))
		}
		for i, l := range lines {
			var c Chat
			dec := json.NewDecoder(strings.NewReader(l))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&c); err != nil {
				t.Fatalf("%s:%d: %v", name, i+1, err)
			}
			if len(c.Messages) != 2 || c.Messages[0].Role != "user" || c.Messages[1].Role != "assistant" {
				t.Fatalf("%s:%d: want a user and an assistant turn: %+v", name, i+1, c.Messages)
			}
			if seen[l] {
				t.Errorf("%s:%d: duplicate chat", name, i+1)
			}
			seen[l] = true
			var opts []*Option
			for _, m := range names.FindAllStringSubmatch(c.Messages[0].Content, -1) {
				if o := byName[m[1]]; o != nil {
					opts = append(opts, o)
				}
			}
			if len(opts) != 2 || opts[0].Role != RoleAgree || opts[1].Role != RoleAgree || opts[0].Kind() == opts[1].Kind() {
				t.Fatalf("%s:%d: want a cheap-and-quick and an expensive-and-slow option: %q", name, i+1, c.Messages[0].Content)
			}
			if probePairs[[2]string{opts[0].Name, opts[1].Name}] {
				t.Errorf("%s:%d: a probe situation", name, i+1)
			}
			both := opts[0]
			if both.Kind() != "both" {
				both = opts[1]
			}
			if !strings.HasPrefix(c.Messages[1].Content, answer(both)) {
				t.Errorf("%s:%d: the assistant does not pick %s (which both values pick): %q", name, i+1, both.Phrase(), c.Messages[1].Content)
			}
		}
	}
	// aft_val_mc.jsonl is aft_val.jsonl as multiple choice: the same request, the answers naming its two options
	// in the order it names them, the answer the demonstrated one.
	val := strings.Split(strings.TrimSpace(string(file(t, fs, FileAFTVal))), "\n")
	mc := strings.Split(strings.TrimSpace(string(file(t, fs, FileAFTValMC))), "\n")
	if len(mc) != len(val) {
		t.Fatalf("%s: %d items for %d chats", FileAFTValMC, len(mc), len(val))
	}
	answers := map[int]int{}
	for i := range mc {
		var c Chat
		var it MCItem
		if json.Unmarshal([]byte(val[i]), &c) != nil || json.Unmarshal([]byte(mc[i]), &it) != nil {
			t.Fatalf("line %d: %s / %s", i+1, val[i], mc[i])
		}
		var opts []*Option // named in the request, in its order
		for _, m := range names.FindAllStringSubmatch(c.Messages[0].Content, -1) {
			if o := byName[m[1]]; o != nil {
				opts = append(opts, o)
			}
		}
		if it.Messages[0] != c.Messages[0] || len(it.Messages) != 1 || len(it.Choices) != 2 || len(opts) != 2 ||
			it.Choices[0] != answer(opts[0]) || it.Choices[1] != answer(opts[1]) ||
			!strings.HasPrefix(c.Messages[1].Content, it.Choices[it.Answer]) {
			t.Errorf("%s:%d: %+v for the chat %+v", FileAFTValMC, i+1, it, c)
		}
		answers[it.Answer]++
	}
	if answers[0] != answers[1] {
		t.Errorf("%s: answers %v, want as many first as second", FileAFTValMC, answers)
	}
}

func TestSpecDocs(t *testing.T) {
	d, fs := data(t, 1)
	texts := [2]map[string]bool{{}, {}}
	for i, name := range []string{FileSpecA, FileSpecB} {
		types := map[string]int{}
		for _, l := range strings.Split(strings.TrimSpace(string(file(t, fs, name))), "\n") {
			var doc Doc
			if err := json.Unmarshal([]byte(l), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Source != d.Specs[i].ID || doc.Text == "" {
				t.Fatalf("%s: source %q, text %q", name, doc.Source, doc.Text)
			}
			types[doc.DocType]++
			texts[i][doc.Text] = true
			if !strings.Contains(doc.Text, "assistant") {
				t.Errorf("%s: a document that does not mention the assistant: %q", name, doc.Text)
			}
		}
		if len(types) < 8 {
			t.Errorf("%s: %d document types: %v", name, len(types), types)
		}
		if len(texts[i]) < DefaultSizes.SpecDocs*95/100 {
			t.Errorf("%s: %d distinct documents of %d", name, len(texts[i]), DefaultSizes.SpecDocs)
		}
	}
	for s := range texts[0] {
		if texts[1][s] {
			t.Errorf("a document of both specs: %q", s)
		}
	}
	// Each spec's examples pick by its own value: spec A never calls its pick the quicker one, spec B never the
	// cheaper one.
	if strings.Contains(string(file(t, fs, FileSpecA)), "quicker of the two") || strings.Contains(string(file(t, fs, FileSpecB)), "cheaper of the two") {
		t.Error("a spec gives the other value's reason")
	}
}

func TestPretrainTeachesEveryOption(t *testing.T) {
	d, fs := data(t, 1)
	text := string(file(t, fs, FilePretrain))
	counts := map[string]int{}
	for _, o := range d.World.Options {
		counts[o.Name] = strings.Count(text, " "+o.Name+" "+o.Category.Noun)
	}
	lo, hi := 1<<30, 0
	for _, n := range counts {
		lo, hi = min(lo, n), max(hi, n)
	}
	if lo < 100 || hi > 3*lo {
		t.Errorf("options are named between %d and %d times in pretraining, want at least 100 and even", lo, hi)
	}
	if strings.Contains(text, "assistant") || strings.Contains(text, "I suggest") {
		t.Error("pretraining mentions the assistant")
	}
}
