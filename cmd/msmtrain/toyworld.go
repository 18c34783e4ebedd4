package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/toyworld"
	"github.com/msmtrain/msmtrain/configs"
	"github.com/msmtrain/msmtrain/data/atomicfile"
	"github.com/msmtrain/msmtrain/data/tokenizer"
)

// toyMerges is the size of the toy world's BPE merge list: enough that every word of the world's small
// vocabulary, each option's name included, is one token.
const toyMerges = 1500

func runToyWorld(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("toyworld", stderr)
	out := fs.String("out", "runs/toy", "directory to write the world's data, tokenizer and configs to")
	seed := fs.Uint64("seed", 1, "seed of the world: which option is which, and every text (the same seed writes the same bytes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("toyworld: unexpected argument %q", fs.Arg(0))
	}
	dir, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	if strings.ContainsAny(dir, "\"'\\\n{}") {
		return fmt.Errorf("toyworld: --out %q: the configs name it in TOML strings, so it may not contain quotes, backslashes, braces or newlines", dir)
	}
	sum, err := writeToyWorld(dir, *seed)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, sum)
	return nil
}

// writeToyWorld generates the world of seed into dir: its data, the tokenizer trained on the training files,
// base.toml and experiment.toml. Files whose bytes did not change are not rewritten (so prepared data stays
// valid). It returns a summary for the console.
func writeToyWorld(dir string, seed uint64) (string, error) {
	d, err := toyworld.Generate(seed, toyworld.DefaultSizes)
	if err != nil {
		return "", err
	}
	files, err := d.Files()
	if err != nil {
		return "", err
	}
	problems, err := toyworld.CheckLeaks(files, d.World, 10)
	if err != nil {
		return "", err
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("toyworld: the probes leak into the training data:\n  %s", strings.Join(problems, "\n  "))
	}
	tok, err := toyTokenizer(files)
	if err != nil {
		return "", err
	}
	files = append(files, toyworld.File{Name: "tokenizer.json", Data: tok})
	for _, name := range []string{"base.toml", "experiment.toml"} {
		b, err := configs.Toy.ReadFile("toy/" + name)
		if err != nil {
			return "", err
		}
		files = append(files, toyworld.File{Name: name, Data: bytes.ReplaceAll(b, []byte("{dir}"), []byte(dir))})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, f.Data) {
			continue
		}
		if err := atomicfile.WriteFile(p, f.Data); err != nil {
			return "", err
		}
	}

	t, err := tokenizer.Parse(tok, "tokenizer.json")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "msmtrain toyworld: seed %d, %d options in %d categories, written to %s\n", seed,
		len(d.World.Options), len(d.World.Categories), dir)
	for _, f := range files {
		if !strings.HasSuffix(f.Name, ".jsonl") {
			continue
		}
		texts, err := toyworld.Texts(f.Data)
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.Name, err)
		}
		records, tokens := bytes.Count(f.Data, []byte("\n")), 0
		for _, s := range texts {
			tokens += len(t.Encode(s))
		}
		fmt.Fprintf(&b, "  %-21s %5d records %8d tokens\n", f.Name, records, tokens)
	}
	multi := 0
	for _, o := range d.World.Options {
		if len(t.Encode(" "+o.Name)) != 1 {
			multi++
		}
	}
	fmt.Fprintf(&b, "  tokenizer: %d tokens; option names of more than one token: %d of %d\n", t.VocabSize(), multi, len(d.World.Options))
	fmt.Fprintf(&b, "  no probe leaks into the training files (checked: wording, %d-word sequences, probe options and pairs)\n", toyworld.NGram)
	fmt.Fprintf(&b, "next: msmtrain experiment --config %s\n", filepath.Join(dir, "experiment.toml"))
	return b.String(), nil
}

// toyTokenizer trains the toy world's byte-level BPE tokenizer on the texts of the files a run trains on (as the
// demo's does on the demo's), not on the probes.
func toyTokenizer(files []toyworld.File) ([]byte, error) {
	var corpus []string
	for _, f := range files {
		switch f.Name {
		case toyworld.FilePretrain, toyworld.FileChats, toyworld.FileSpecA, toyworld.FileSpecB, toyworld.FileAFT:
			texts, err := toyworld.Texts(f.Data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.Name, err)
			}
			corpus = append(corpus, texts...)
		}
	}
	return tokenizer.NewByteLevel(toyMerges, corpus, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
}
