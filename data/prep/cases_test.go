package prep

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		{"invalid UTF-8", KindDocuments, "{\"text\": \"caf\xe9 au lait\"}", ErrInvalidUTF8},
		{"invalid UTF-8 in a chat", KindChats, "{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\"}, {\"role\": \"assistant\", \"content\": \"y\"}]}", ErrInvalidUTF8},
		{"unpaired high surrogate", KindDocuments, `{"text": "a \ud83d b"}`, ErrInvalidUTF8},
		{"lone low surrogate", KindDocuments, `{"text": "a \\\ude00 b"}`, ErrInvalidUTF8},
		{"assistant first", KindChats, `{"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}, {"role": "assistant", "content": "z"}]}`, ErrRoleOrder},
		{"two assistants", KindChats, `{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}, {"role": "assistant", "content": "z"}]}`, ErrRoleOrder},
		{"two users", KindChats, `{"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}, {"role": "assistant", "content": "z"}]}`, ErrRoleOrder},
		{"late system", KindChats, `{"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "y"}, {"role": "assistant", "content": "z"}]}`, ErrRoleOrder},
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

// TestValidOddInput: what the checks for bad input must still accept.
func TestValidOddInput(t *testing.T) {
	tokPath, _ := setup(t)
	dir := t.TempDir()
	docs := filepath.Join(dir, "docs.jsonl")
	os.WriteFile(docs, []byte(`{"text": "a surrogate pair \ud83d\ude00, an escaped backslash \\ud800 and \u00e9"}`+"\n"), 0o644)
	chats := filepath.Join(dir, "chats.jsonl")
	os.WriteFile(chats, []byte(`{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, `+
		`{"role": "assistant", "content": "call"}, {"role": "user", "content": "<tool_response>1</tool_response>"}, `+
		`{"role": "user", "content": "<tool_response>2</tool_response>"}, {"role": "assistant", "content": "done"}]}`+"\n"), 0o644)
	cfg := baseConfig(dir, tokPath, Source{Name: "d", Path: docs}, Source{Name: "c", Path: chats, Kind: KindChats})
	s, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Rejected != 0 || s.TrainDocs+s.ValDocs != 2 {
		t.Fatalf("summary %+v", s)
	}
}

// TestEmptySource: a source with nothing in it is an error naming it and its file, not an empty dataset.
func TestEmptySource(t *testing.T) {
	tokPath, _ := setup(t)
	for _, c := range []struct{ name, text, onError, want string }{
		{"empty file", "", "fail", "is empty"},
		{"blank lines", "\n  \n\n", "fail", "no records"},
		{"all rejected", "{\"txt\": 1}\n{\"txt\": 2}\n", "skip", "all 2 records rejected"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			good := filepath.Join(dir, "good.jsonl")
			writeJSONL(t, good, []any{docRec{Text: "a spec document"}})
			empty := filepath.Join(dir, "empty.jsonl")
			os.WriteFile(empty, []byte(c.text), 0o644)
			cfg := baseConfig(dir, tokPath, Source{Name: "good", Path: good}, Source{Name: "web", Path: empty})
			cfg.OnError = c.onError
			_, err := Run(context.Background(), cfg, nil)
			if err == nil || !strings.Contains(err.Error(), "web") || !strings.Contains(err.Error(), empty) ||
				!strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error naming source web, %s and %q", err, empty, c.want)
			}
			if _, err := os.Stat(filepath.Join(cfg.OutDir, "train")); !os.IsNotExist(err) {
				t.Fatal("a dataset was published")
			}
			if m, _ := filepath.Glob(filepath.Join(cfg.OutDir, ".prep-*")); len(m) != 0 {
				t.Fatalf("left %v", m)
			}
		})
	}
}

// TestCorruptOutputRebuilt: prep checks the shards of an output it would keep and rebuilds a damaged one (the
// fix that the shard errors' hint, "re-run msmtrain prep", promises).
func TestCorruptOutputRebuilt(t *testing.T) {
	tokPath, _ := setup(t)
	rng := rand.New(rand.NewPCG(9, 9))
	var recs []any
	for range 200 {
		recs = append(recs, docRec{Text: sentence(rng, 20)})
	}
	for _, c := range []struct {
		name, split string
		damage      func(path string)
	}{
		{"flipped byte in train", "train", func(p string) {
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 1
			os.WriteFile(p, b, 0o644)
		}},
		{"truncated val", "val", func(p string) {
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-10)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.jsonl")
			writeJSONL(t, in, recs)
			cfg := baseConfig(dir, tokPath, Source{Name: "s", Path: in})
			cfg.ValFraction = 0.2
			if _, err := Run(context.Background(), cfg, nil); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(cfg.OutDir, c.split, "shard-00000.msms")
			want, _ := os.ReadFile(p)
			c.damage(p)
			var log strings.Builder
			s, err := Run(context.Background(), cfg, &log)
			if err != nil {
				t.Fatal(err)
			}
			if s.UpToDate || !strings.Contains(log.String(), "rebuilding") || !strings.Contains(log.String(), p) {
				t.Fatalf("damaged %s kept (up to date %v):\n%s", p, s.UpToDate, log.String())
			}
			if got, _ := os.ReadFile(p); string(got) != string(want) {
				t.Fatal("the rebuilt shard differs from the original")
			}
		})
	}
}

// TestStaleTempDirs: a build directory left by a killed run is removed by the next run, but not one of a run
// still holding the lock of out_dir.
func TestStaleTempDirs(t *testing.T) {
	tokPath, _ := setup(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	writeJSONL(t, in, []any{docRec{Text: "a spec document"}})
	cfg := baseConfig(dir, tokPath, Source{Name: "s", Path: in})
	stale := filepath.Join(cfg.OutDir, ".prep-123")
	if err := os.MkdirAll(filepath.Join(stale, "train"), 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockDir(cfg.OutDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), cfg, nil)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Run did not wait for the lock: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := os.Stat(stale); err != nil {
		t.Fatal("removed the build directory of a run holding the lock")
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale %s not removed", stale)
	}
	if ents, _ := os.ReadDir(cfg.OutDir); len(ents) != 3 {
		t.Fatalf("out dir holds %d entries, want train, val, summary.json", len(ents))
	}
}

// TestEncodingVersionRebuilds: a dataset made by an older encoding of records is rebuilt, not taken as up to
// date (documents made before they got the tokenizer's special tokens must not be reused).
func TestEncodingVersionRebuilds(t *testing.T) {
	tokPath, _ := setup(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	writeJSONL(t, in, []any{docRec{Text: "a spec document"}, docRec{Text: "another one"}})
	cfg := baseConfig(dir, tokPath, Source{Name: "s", Path: in})
	defer func(v int) { encodingVersion = v }(encodingVersion)
	encodingVersion--
	if _, err := Run(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	encodingVersion++
	s, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.UpToDate {
		t.Fatal("a dataset of the previous encoding was taken as up to date")
	}
	if s, err = Run(context.Background(), cfg, nil); err != nil || !s.UpToDate {
		t.Fatalf("second run of the same encoding: up to date %v, %v", s != nil && s.UpToDate, err)
	}
}
