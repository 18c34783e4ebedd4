package prep

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/data/chat"
)

func baseConfig(dir, tok string, sources ...Source) Config {
	return Config{OutDir: filepath.Join(dir, "out"), Tokenizer: tok, ChatTemplate: "chatml", MaxLen: 1024,
		Workers: 2, Sources: sources}
}

func TestBadInput(t *testing.T) {
	tokPath, _ := setup(t)
	good := `{"text": "the model is honest"}`
	goodChat := `{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}`
	cases := []struct {
		name, kind, line string
		want             error // nil: any error
	}{
		{"malformed", KindDocuments, `{"text": "abc"`, ErrMalformed},
		{"missing text", KindDocuments, `{"source": "x"}`, ErrNoText},
		{"empty text", KindDocuments, `{"text": "  "}`, ErrNoText},
		{"text not a string", KindDocuments, `{"text": 3}`, ErrMalformed},
		{"missing messages", KindChats, `{"text": "x"}`, ErrNoMessages},
		{"unknown role", KindChats, `{"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]}`, chat.ErrUnknownRole},
		{"empty content", KindChats, `{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]}`, ErrEmptyTurn},
		{"nothing to train", KindChats, `{"messages": [{"role": "user", "content": "only a question"}]}`, chat.ErrNoAssistant},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.jsonl")
			ok := good
			if c.kind == KindChats {
				ok = goodChat
			}
			os.WriteFile(in, []byte(ok+"\n\n"+c.line+"\n"+ok+"\n"), 0o644)
			cfg := baseConfig(dir, tokPath, Source{Name: "s", Path: in, Kind: c.kind})
			_, err := Run(context.Background(), cfg, nil)
			var re *RecordError
			if !errors.As(err, &re) || re.File != in || re.Line != 3 || !errors.Is(err, c.want) {
				t.Fatalf("fail mode: got %v, want %v at %s:3", err, c.want, in)
			}
			if !strings.Contains(err.Error(), in+":3") {
				t.Fatalf("error %q does not name file:line", err)
			}
			cfg.OnError = "skip"
			s, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.Rejected != 1 || s.Records != 3 || len(s.Reasons) != 1 || !strings.Contains(s.Reasons[0], in+":3") {
				t.Fatalf("skip mode: %+v", s)
			}
		})
	}
}

func TestRebuild(t *testing.T) {
	tokPath, _ := setup(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	writeJSONL(t, in, []any{docRec{Text: "a spec document"}, docRec{Text: "another one"}})
	cfg := baseConfig(dir, tokPath, Source{Name: "s", Path: in})
	run := func() *Summary {
		t.Helper()
		s, err := Run(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := run(); s.UpToDate || s.TrainDocs+s.ValDocs != 2 {
		t.Fatalf("first run: %+v", s)
	}
	shardPath := filepath.Join(cfg.OutDir, "train", "shard-00000.msms")
	st1, err := os.Stat(shardPath)
	if err != nil {
		t.Fatal(err)
	}
	if s := run(); !s.UpToDate || s.TrainDocs+s.ValDocs != 2 {
		t.Fatalf("second run rebuilt: %+v", s)
	}
	if st2, _ := os.Stat(shardPath); !st2.ModTime().Equal(st1.ModTime()) {
		t.Fatal("no-op run rewrote the shard")
	}
	cfg.Workers = 1 // not part of the hash
	if s := run(); !s.UpToDate {
		t.Fatal("changing workers rebuilt")
	}
	writeJSONL(t, in, []any{docRec{Text: "a spec document"}, docRec{Text: "another one"}, docRec{Text: "three"}})
	if s := run(); s.UpToDate || s.TrainDocs+s.ValDocs != 3 {
		t.Fatalf("changed input not rebuilt: %+v", s)
	}
	cfg.DocPrefix = "<DOCTAG>"
	if s := run(); s.UpToDate {
		t.Fatal("changed config not rebuilt")
	}
	if ents, _ := os.ReadDir(cfg.OutDir); len(ents) != 3 {
		t.Fatalf("out dir holds %d entries, want train, val, summary.json", len(ents))
	}
}

func TestSplitStable(t *testing.T) {
	tokPath, tok := setup(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(4, 4))
	var a, b []any
	for range 100 {
		a = append(a, docRec{Text: sentence(rng, 10)})
		b = append(b, docRec{Text: sentence(rng, 10)})
	}
	writeJSONL(t, filepath.Join(dir, "a.jsonl"), a)
	writeJSONL(t, filepath.Join(dir, "b.jsonl"), b)
	valTexts := func(out string, files ...string) map[string]bool {
		var srcs []Source
		for i, f := range files {
			srcs = append(srcs, Source{Name: string(rune('a' + i)), Path: filepath.Join(dir, f)})
		}
		cfg := baseConfig(dir, tokPath, srcs...)
		cfg.OutDir, cfg.ValFraction, cfg.Seed = filepath.Join(dir, out), 0.25, 7
		if _, err := Run(context.Background(), cfg, nil); err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, d := range readAll(t, filepath.Join(cfg.OutDir, "val")) {
			m[decode(tok, d.Tokens[:len(d.Tokens)-1])] = true
		}
		return m
	}
	v1 := valTexts("o1", "a.jsonl")
	v2 := valTexts("o2", "b.jsonl", "a.jsonl")
	if len(v1) < 10 || len(v1) > 40 {
		t.Fatalf("%d of 100 in val at fraction 0.25", len(v1))
	}
	for _, r := range a {
		if txt := r.(docRec).Text; v1[txt] != v2[txt] {
			t.Fatalf("%q changed split when other inputs were added", txt)
		}
	}
}

func TestWeights(t *testing.T) {
	tokPath, _ := setup(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	var recs []any
	for range 400 {
		recs = append(recs, docRec{Text: sentence(rng, 12)})
	}
	in := filepath.Join(dir, "in.jsonl")
	writeJSONL(t, in, recs)
	for _, c := range []struct {
		w        float64
		min, max int64 // docs written, 400 records; binomial sd at most 10
	}{{1, 400, 400}, {2, 800, 800}, {0.5, 150, 250}, {1.5, 550, 650}, {0.01, 0, 16}} {
		cfg := baseConfig(dir, tokPath, Source{Name: "s", Path: in, Weight: c.w})
		cfg.OutDir = filepath.Join(dir, "out", strings.ReplaceAll(t.Name(), "/", "_")+string(rune('a'+int(c.w*10))))
		s, err := Run(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.TrainDocs < c.min || s.TrainDocs > c.max || s.Duplicates != 0 {
			t.Errorf("weight %v: %d docs written, want [%d,%d]", c.w, s.TrainDocs, c.min, c.max)
		}
	}
}

func TestOverlong(t *testing.T) {
	tokPath, tok := setup(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(6, 6))
	text := sentence(rng, 200)
	in := filepath.Join(dir, "in.jsonl")
	writeJSONL(t, in, []any{docRec{Text: text}})
	body := ints(tok.Encode(text))
	prefix := ints(tok.Encode("<DOCTAG>"))
	for _, mode := range []string{"truncate", "split"} {
		t.Run(mode, func(t *testing.T) {
			cfg := baseConfig(dir, tokPath, Source{Name: "s", Path: in})
			cfg.OutDir, cfg.MaxLen, cfg.Overlong, cfg.DocPrefix = filepath.Join(dir, mode), 64, mode, "<DOCTAG>"
			s, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			docs := readAll(t, filepath.Join(cfg.OutDir, "train"))
			var got []int32
			for i, d := range docs {
				if len(d.Tokens) > 64 || !slicesEqual(d.Tokens[:len(prefix)], prefix) {
					t.Fatalf("piece %d: %d tokens, prefix %v", i, len(d.Tokens), d.Tokens[:len(prefix)])
				}
				got = append(got, d.Tokens[len(prefix):]...)
			}
			full := body // the document without its EOS
			if mode == "truncate" {
				if len(docs) != 1 || s.Truncated != 1 || !slicesEqual(got, full[:64-len(prefix)]) {
					t.Fatalf("truncate: %d docs, truncated %d", len(docs), s.Truncated)
				}
				return
			}
			if s.Split != 1 || len(docs) < 3 || !slicesEqual(got[:len(got)-1], full) {
				t.Fatalf("split: %d docs, split %d; pieces do not rebuild the document", len(docs), s.Split)
			}
		})
	}
}

func slicesEqual(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestValidate(t *testing.T) {
	ok := Config{OutDir: "o", Tokenizer: "t", MaxLen: 10, Overlong: "split", TrainTurns: "all", OnError: "fail",
		Sources: []Source{{Name: "a", Path: "p", Kind: KindDocuments}}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(c *Config){
		"no out_dir":     func(c *Config) { c.OutDir = "" },
		"no sources":     func(c *Config) { c.Sources = nil },
		"max_len":        func(c *Config) { c.MaxLen = 1 },
		"overlong":       func(c *Config) { c.Overlong = "drop" },
		"on_error":       func(c *Config) { c.OnError = "ignore" },
		"val_fraction":   func(c *Config) { c.ValFraction = 1 },
		"kind":           func(c *Config) { c.Sources[0].Kind = "pdf" },
		"weight":         func(c *Config) { c.Sources[0].Weight = -1 },
		"duplicate name": func(c *Config) { c.Sources = append(c.Sources, c.Sources[0]) },
	} {
		t.Run(name, func(t *testing.T) {
			c := ok
			c.Sources = append([]Source(nil), ok.Sources...)
			mut(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("Validate accepted it")
			}
		})
	}
}
