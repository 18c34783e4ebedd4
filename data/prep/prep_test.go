package prep

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/data/tokenizer"
)

var words = strings.Fields("the model should be honest and helpful while it avoids harm to people " +
	"spec values explain why a rule exists so that behaviour generalizes to new cases")

// setup writes a tiny byte-level tokenizer and returns its path.
func setup(t testing.TB) (string, *tokenizer.Tokenizer) {
	t.Helper()
	js, err := tokenizer.NewByteLevel(100, []string{strings.Join(words, " ")},
		[]string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, js, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, tok
}

func sentence(rng *rand.Rand, n int) string {
	var b []string
	for range n {
		b = append(b, words[rng.IntN(len(words))])
	}
	return strings.Join(b, " ")
}

func writeJSONL(t testing.TB, path string, recs []any) {
	t.Helper()
	var b strings.Builder
	for _, r := range recs {
		if s, ok := r.(string); ok { // raw line
			b.WriteString(s + "\n")
			continue
		}
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(js)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

type docRec struct {
	Text   string `json:"text"`
	Source string `json:"source,omitempty"`
}

type chatRec struct {
	Messages []chat.Message `json:"messages"`
}

// readAll returns every document of a prepared dataset.
func readAll(t *testing.T, dir string) []shard.Doc {
	t.Helper()
	ds, err := shard.OpenDataset(dir, shard.OpenOptions{VerifySHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	var docs []shard.Doc
	for i := range ds.NumDocs() {
		d, err := ds.Doc(i)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, shard.Doc{Tokens: slices.Clone(d.Tokens), Mask: slices.Clone(d.Mask), Source: d.Source})
	}
	return docs
}

func ints(xs []int) []int32 {
	out := make([]int32, len(xs))
	for i, x := range xs {
		out[i] = int32(x)
	}
	return out
}

func TestEndToEnd(t *testing.T) {
	tokPath, tok := setup(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var docs []any
	texts := map[string]bool{}
	for i := range 60 {
		s := sentence(rng, 3+rng.IntN(30))
		if i%10 == 9 {
			s = docs[i-5].(docRec).Text // duplicates
		}
		texts[s] = true
		docs = append(docs, docRec{Text: s, Source: "spec"})
	}
	writeJSONL(t, filepath.Join(dir, "docs-1.jsonl"), docs[:30])
	writeJSONL(t, filepath.Join(dir, "docs-2.jsonl"), append(docs[30:], "", "   "))
	var chats []any
	for range 20 {
		chats = append(chats, chatRec{[]chat.Message{{Role: "user", Content: sentence(rng, 5)},
			{Role: "assistant", Content: sentence(rng, 8)}}})
	}
	writeJSONL(t, filepath.Join(dir, "chats.jsonl"), chats)
	cfg := Config{OutDir: filepath.Join(dir, "out"), Tokenizer: tokPath, ChatTemplate: "chatml", DocPrefix: "<DOCTAG>",
		MaxLen: 4096, ValFraction: 0.2, Seed: 3, Workers: 3,
		Sources: []Source{{Name: "spec", Path: filepath.Join(dir, "docs-*.jsonl")},
			{Name: "aft", Path: filepath.Join(dir, "chats.jsonl"), Kind: KindChats}}}
	var log strings.Builder
	s, err := Run(context.Background(), cfg, &log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "spec") {
		t.Fatalf("summary not printed: %q", log.String())
	}
	if s.Records != 80 || s.Duplicates != 6 || s.Rejected != 0 || s.Sources[0].Files != 2 {
		t.Fatalf("summary %+v", s)
	}
	prefix := ints(tmplEncode(tok, "<DOCTAG>"))
	tmpl, err := chat.New("chatml", tok)
	if err != nil {
		t.Fatal(err)
	}
	wantChats := map[string][]bool{}
	for _, c := range chats {
		ids, mask, err := tmpl.Render(c.(chatRec).Messages, chat.Options{})
		if err != nil {
			t.Fatal(err)
		}
		wantChats[fmt.Sprint(ids)] = mask
	}
	seen := map[string]int{}
	var trained, total int64
	for _, split := range []string{"train", "val"} {
		for _, d := range readAll(t, filepath.Join(cfg.OutDir, split)) {
			if split == "train" {
				total += int64(len(d.Tokens))
				for _, m := range d.Mask {
					if m {
						trained++
					}
				}
			}
			if d.Source == 1 {
				mask, ok := wantChats[fmt.Sprint(d.Tokens)]
				if !ok || !slices.Equal(mask, d.Mask) {
					t.Fatalf("chat %v not rendered as chat.Render does", d.Tokens)
				}
				seen["chat"+fmt.Sprint(d.Tokens)]++
				continue
			}
			n := len(prefix)
			if !slices.Equal(d.Tokens[:n], prefix) || d.Tokens[len(d.Tokens)-1] != int32(tmpl.EOS()) {
				t.Fatalf("document lacks prefix or EOS: %v", d.Tokens)
			}
			for i, m := range d.Mask {
				if m != (i >= n) {
					t.Fatalf("mask %v: the prefix must be untrained, the rest trained", d.Mask)
				}
			}
			text := decode(tok, d.Tokens[n:len(d.Tokens)-1])
			if !texts[text] || !slices.Equal(ints(tok.Encode(text)), d.Tokens[n:len(d.Tokens)-1]) {
				t.Fatalf("document %q is not an input tokenized", text)
			}
			seen[text]++
		}
	}
	if len(seen) != len(texts)+len(chats) {
		t.Fatalf("%d distinct records written, want %d", len(seen), len(texts)+len(chats))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("record %q written %d times", k, n)
		}
	}
	if s.TrainTokens != total || s.TrainTrained != trained || s.ValDocs == 0 {
		t.Fatalf("summary tokens %d/%d trained %d/%d val %d", s.TrainTokens, total, s.TrainTrained, trained, s.ValDocs)
	}
}

func tmplEncode(tok *tokenizer.Tokenizer, s string) []int { return tok.Encode(s) }

func decode(tok *tokenizer.Tokenizer, ids []int32) string {
	xs := make([]int, len(ids))
	for i, x := range ids {
		xs[i] = int(x)
	}
	return tok.Decode(xs)
}
