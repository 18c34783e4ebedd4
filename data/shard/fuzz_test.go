package shard

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata seed shards")

// TestSeeds keeps the fuzz seed corpus readable; -update rewrites it.
func TestSeeds(t *testing.T) {
	seeds := map[string]struct {
		docs  []testDoc
		vocab int
		block int
	}{
		"small.msms":  {genDocs(1, 12, 20, 300, 2), 300, 40},
		"uint32.msms": {genDocs(2, 5, 10, 100000, 2), 100000, 16},
		"empty.msms":  {nil, 10, 0},
	}
	for name, s := range seeds {
		p := filepath.Join("testdata", name)
		if *update {
			writeShard(t, p, s.docs, WriterOptions{VocabSize: s.vocab, Sources: []string{"spec", "web"}, BlockTokens: s.block})
		}
		r, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Verify(); err != nil || r.NumDocs() != len(s.docs) {
			t.Fatalf("%s: %v, %d docs", name, err, r.NumDocs())
		}
		r.Close()
	}
}

// FuzzReader opens arbitrary bytes as a shard and reads every document: it
// must return errors, never panic or allocate without bound.
func FuzzReader(f *testing.F) {
	ents, _ := os.ReadDir("testdata")
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join("testdata", e.Name())); err == nil && !e.IsDir() {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b), int64(len(b)), "fuzz")
		if err != nil {
			return
		}
		for bi := range r.NumBlocks() {
			if r.blocks[bi].rawLen > 1<<20 {
				return // a valid index may promise a large block; keep the fuzzer fast
			}
		}
		n := 0
		for d, err := range r.All() {
			if err != nil {
				return
			}
			if len(d.Tokens) != len(d.Mask) || d.Source >= len(r.Sources()) {
				t.Fatalf("inconsistent doc %d", n)
			}
			n++
		}
		if n != r.NumDocs() {
			t.Fatalf("All yielded %d of %d docs", n, r.NumDocs())
		}
		for i := range r.NumDocs() {
			if _, err := r.Doc(i); err != nil {
				t.Fatalf("Doc(%d) failed after All succeeded: %v", i, err)
			}
		}
	})
}
