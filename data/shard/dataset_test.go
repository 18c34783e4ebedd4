package shard

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func writeDataset(t testing.TB, dir string, docs []testDoc, o DatasetOptions) *Manifest {
	t.Helper()
	dw, err := CreateDataset(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if err := dw.Add(d.tokens, d.mask, d.source); err != nil {
			t.Fatal(err)
		}
	}
	m, err := dw.Close(Manifest{PrepHash: "p"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDataset(t *testing.T) {
	dir := t.TempDir()
	sources := []string{"spec", "web"}
	docs := genDocs(9, 200, 80, 500, 2)
	m := writeDataset(t, dir, docs, DatasetOptions{TokenizerHash: "tok1", VocabSize: 500, Sources: sources,
		ShardTokens: 2000, BlockTokens: 300})
	if len(m.Shards) < 3 {
		t.Fatalf("want several shards, got %d", len(m.Shards))
	}
	var want [2]SourceCount
	for _, d := range docs {
		s := &want[d.source]
		s.Docs++
		s.Tokens += int64(len(d.tokens))
		for _, b := range d.mask {
			if b {
				s.Trained++
			}
		}
	}
	for i := range want {
		want[i].Name = sources[i]
		if m.Sources[i] != want[i] {
			t.Fatalf("source %d: %+v, want %+v", i, m.Sources[i], want[i])
		}
	}
	if m.Docs != 200 || m.Trained != want[0].Trained+want[1].Trained {
		t.Fatalf("manifest totals %+v", m)
	}
	d, err := OpenDataset(dir, OpenOptions{TokenizerHash: "tok1", VerifySHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.NumDocs() != int64(len(docs)) {
		t.Fatalf("NumDocs %d", d.NumDocs())
	}
	for i := range docs {
		got, err := d.Doc(int64(i))
		if err != nil {
			t.Fatal(err)
		}
		sameDoc(t, i, got, docs[i])
	}
	if _, err := d.Doc(int64(len(docs))); !errors.Is(err, ErrRange) {
		t.Fatalf("Doc past end: %v", err)
	}
	d.Close()

	t.Run("tokenizer mismatch", func(t *testing.T) {
		_, err := OpenDataset(dir, OpenOptions{TokenizerHash: "tok2"})
		if !errors.Is(err, ErrTokenizer) {
			t.Fatalf("got %v, want ErrTokenizer", err)
		}
	})
	t.Run("already exists", func(t *testing.T) {
		if _, err := CreateDataset(dir, DatasetOptions{VocabSize: 10}); err == nil {
			t.Fatal("CreateDataset overwrote a dataset")
		}
	})
	t.Run("tampered shard", func(t *testing.T) {
		p := filepath.Join(dir, m.Shards[1].File)
		b, _ := os.ReadFile(p)
		b[100] ^= 1
		os.WriteFile(p, b, 0o644)
		if _, err := OpenDataset(dir, OpenOptions{VerifySHA256: true}); !errors.Is(err, ErrChecksum) {
			t.Fatalf("got %v, want ErrChecksum", err)
		}
	})
	t.Run("missing shard", func(t *testing.T) {
		os.Remove(filepath.Join(dir, m.Shards[2].File))
		if _, err := OpenDataset(dir, OpenOptions{}); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("got %v, want not-exist", err)
		}
	})
	t.Run("no manifest", func(t *testing.T) {
		if _, err := OpenDataset(t.TempDir(), OpenOptions{}); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("got %v", err)
		}
	})
}
