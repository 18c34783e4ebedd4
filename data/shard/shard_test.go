package shard

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type testDoc struct {
	tokens []int32
	mask   []bool
	source int
}

// genDocs makes n random documents; lengths vary from 1 to maxLen tokens.
func genDocs(seed uint64, n, maxLen, vocab, sources int) []testDoc {
	rng := rand.New(rand.NewPCG(seed, 1))
	docs := make([]testDoc, n)
	for i := range docs {
		l := 1 + rng.IntN(maxLen)
		d := testDoc{tokens: make([]int32, l), mask: make([]bool, l), source: rng.IntN(sources)}
		for j := range l {
			d.tokens[j] = int32(rng.IntN(vocab))
			d.mask[j] = rng.IntN(3) != 0
		}
		docs[i] = d
	}
	return docs
}

func writeShard(t testing.TB, path string, docs []testDoc, o WriterOptions) {
	t.Helper()
	w, err := Create(path, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if err := w.Add(d.tokens, d.mask, d.source); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func sameDoc(t *testing.T, i int, got Doc, want testDoc) {
	t.Helper()
	if !slices.Equal(got.Tokens, want.tokens) || !slices.Equal(got.Mask, want.mask) || got.Source != want.source {
		t.Fatalf("doc %d: got %d tokens source %d, want %d tokens source %d (or contents differ)",
			i, len(got.Tokens), got.Source, len(want.tokens), want.source)
	}
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name        string
		n, maxLen   int
		vocab       int
		blockTokens int
	}{
		{"uint16 many blocks", 300, 200, 1000, 500},
		{"uint16 full vocab", 50, 3000, 1 << 16, 1 << 10},
		{"uint32 vocab", 100, 100, 1<<16 + 1, 1 << 12},
		{"uint32 large vocab", 40, 500, 152000, 0},
		{"docs longer than blocks", 20, 5000, 500, 64},
		{"one doc", 1, 1, 2, 0},
		{"empty shard", 0, 1, 10, 0},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sources := []string{"spec", "web", "chat"}
			docs := genDocs(uint64(i), c.n, c.maxLen, c.vocab, len(sources))
			path := filepath.Join(t.TempDir(), "a.msms")
			writeShard(t, path, docs, WriterOptions{VocabSize: c.vocab, Sources: sources, BlockTokens: c.blockTokens})
			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.NumDocs() != len(docs) || r.VocabSize() != c.vocab || !slices.Equal(r.Sources(), sources) {
				t.Fatalf("got %d docs vocab %d sources %v", r.NumDocs(), r.VocabSize(), r.Sources())
			}
			var total int64
			for _, d := range docs {
				total += int64(len(d.tokens))
			}
			if r.NumTokens() != total {
				t.Fatalf("NumTokens %d, want %d", r.NumTokens(), total)
			}
			// Random access, in a shuffled order, through the cache.
			rng := rand.New(rand.NewPCG(7, 7))
			for _, i := range rng.Perm(len(docs)) {
				d, err := r.Doc(i)
				if err != nil {
					t.Fatal(err)
				}
				sameDoc(t, i, d, docs[i])
				if r.DocLen(i) != len(docs[i].tokens) || r.DocSource(i) != docs[i].source {
					t.Fatalf("doc %d: DocLen/DocSource disagree with the document", i)
				}
			}
			// Sequential iteration.
			i := 0
			for d, err := range r.All() {
				if err != nil {
					t.Fatal(err)
				}
				sameDoc(t, i, d, docs[i])
				i++
			}
			if i != len(docs) {
				t.Fatalf("All yielded %d docs, want %d", i, len(docs))
			}
			// Blocks hold whole documents and respect the target size.
			for b := range r.NumBlocks() {
				first, n := r.BlockDocs(b)
				if n == 0 || r.BlockOf(first) != b || r.BlockOf(first+n-1) != b {
					t.Fatalf("block %d: docs [%d,%d) misplaced", b, first, first+n)
				}
				target := c.blockTokens
				if target == 0 {
					target = DefaultBlockTokens
				}
				if blk, _ := r.Block(b); n > 1 && len(blk.Tokens)-r.DocLen(first+n-1) >= target {
					t.Fatalf("block %d holds %d tokens, target %d", b, len(blk.Tokens), target)
				}
			}
		})
	}
}

func TestWriterRejects(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "x.msms"), WriterOptions{VocabSize: 10, Sources: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	cases := []struct {
		name   string
		tokens []int32
		mask   []bool
		source int
	}{
		{"empty", nil, nil, 0},
		{"mask length", []int32{1, 2}, []bool{true}, 0},
		{"token above vocab", []int32{10}, []bool{true}, 0},
		{"negative token", []int32{-1}, []bool{true}, 0},
		{"unknown source", []int32{1}, []bool{true}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := w.Add(c.tokens, c.mask, c.source); err == nil {
				t.Fatal("Add accepted a bad document")
			}
		})
	}
	if _, err := Create(filepath.Join(dir, "y.msms"), WriterOptions{VocabSize: 0}); err == nil {
		t.Fatal("Create accepted vocab size 0")
	}
}

func TestWriterAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.msms")
	w, err := Create(path, WriterOptions{VocabSize: 100, Sources: []string{"s"}, BlockTokens: 4})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := w.Add([]int32{1, 2, 3}, []bool{true, true, false}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("shard visible before Close: %v", err)
	}
	w.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("Abort left %d files", len(ents))
	}
}

func TestCorruption(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "good.msms")
	docs := genDocs(3, 50, 100, 300, 2)
	writeShard(t, path, docs, WriterOptions{VocabSize: 300, Sources: []string{"a", "b"}, BlockTokens: 200})
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r0, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	blk1 := int(r0.blocks[1].offset)
	idxOff := int(r0.h.indexOffset)
	r0.Close()
	cases := []struct {
		name    string
		damage  func(b []byte) []byte
		openErr error // from Open
		readErr error // from reading every document
	}{
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b }, ErrBadMagic, nil},
		{"wrong version", func(b []byte) []byte { b[8] = 9; return b }, ErrVersion, nil},
		{"header bit flip", func(b []byte) []byte { b[20] ^= 1; return b }, ErrChecksum, nil},
		{"truncated", func(b []byte) []byte { return b[:len(b)-10] }, ErrTruncated, nil},
		{"tiny file", func(b []byte) []byte { return b[:10] }, ErrTruncated, nil},
		{"trailing bytes", func(b []byte) []byte { return append(b, 0) }, ErrCorrupt, nil},
		{"index bit flip", func(b []byte) []byte { b[idxOff+3] ^= 4; return b }, ErrChecksum, nil},
		{"block bit flip", func(b []byte) []byte { b[blk1+len(b[blk1:idxOff])/2] ^= 0x10; return b }, nil, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".msms")
			if err := os.WriteFile(p, c.damage(slices.Clone(good)), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Open(p)
			if c.openErr != nil {
				checkErr(t, err, c.openErr, p)
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer r.Close()
			err = r.Verify()
			// A flipped compressed byte fails either zstd or the crc.
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrChecksum) {
				t.Fatalf("Verify = %v, want corrupt or checksum error", err)
			}
			checkErr(t, err, errors.Unwrap(err), p)
		})
	}
}

func checkErr(t *testing.T, err, want error, file string) {
	t.Helper()
	var fe *FormatError
	if !errors.Is(err, want) || !errors.As(err, &fe) {
		t.Fatalf("error %v, want %v as *FormatError", err, want)
	}
	if fe.File != file || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "offset") ||
		!strings.Contains(err.Error(), "msmtrain prep") {
		t.Fatalf("error %q does not name the file, offset and hint", err)
	}
}

func TestDocOutOfRange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.msms")
	writeShard(t, path, genDocs(1, 3, 5, 10, 1), WriterOptions{VocabSize: 10, Sources: []string{"s"}})
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, i := range []int{-1, 3, 1 << 40} {
		if _, err := r.Doc(i); !errors.Is(err, ErrRange) {
			t.Errorf("Doc(%d) = %v, want ErrRange", i, err)
		}
	}
	if _, err := r.Block(5); !errors.Is(err, ErrRange) {
		t.Errorf("Block(5) = %v, want ErrRange", err)
	}
}
