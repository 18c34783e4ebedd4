package prep

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/shard"
)

// TestPrepToLoader feeds a prepared dataset to the loader and checks that
// every trained target of an epoch is counted once.
func TestPrepToLoader(t *testing.T) {
	tokPath, tok := setup(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(8, 8))
	var recs []any
	for range 50 {
		recs = append(recs, docRec{Text: sentence(rng, 5+rng.IntN(40))})
	}
	in := filepath.Join(dir, "in.jsonl")
	writeJSONL(t, in, recs)
	cfg := baseConfig(dir, tokPath, Source{Name: "s", Path: in})
	cfg.DocPrefix, cfg.BlockTokens = "<DOCTAG>", 64
	s, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := shard.OpenDataset(filepath.Join(cfg.OutDir, "train"), shard.OpenOptions{TokenizerHash: tok.Hash()})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	l, err := loader.New(ds, loader.Config{SeqLen: 128, Rows: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	trained := 0
	for range l.StepsPerEpoch(0) {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		trained += b.Trained
	}
	// The first token of a document is never a target and prefix tokens
	// are untrained, so every trained token is a target exactly once.
	if int64(trained) != s.TrainTrained {
		t.Fatalf("loader trained %d targets, prep wrote %d trained tokens", trained, s.TrainTrained)
	}
}

func TestCancel(t *testing.T) {
	tokPath, _ := setup(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	writeJSONL(t, in, []any{docRec{Text: "one"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := baseConfig(dir, tokPath, Source{Name: "s", Path: in})
	if _, err := Run(ctx, cfg, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.OutDir, "train")); !os.IsNotExist(err) {
		t.Fatal("a cancelled run published a dataset")
	}
}
