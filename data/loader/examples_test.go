package loader

import (
	"fmt"
	"testing"
)

// TestExamples: in examples mode every batch of an epoch holds exactly Examples whole documents (the last one of a
// rank fewer, then filler batches of one padding row), every document of the epoch once, cut only when longer than
// a row; rows vary per batch; the epoch's sizing (steps, fill) is what the batches are; Slice splits a batch into
// batches that check on their own.
func TestExamples(t *testing.T) {
	ds, docs := makeDataset(t, 300, 2, 150, 700, 20000)
	for _, world := range []int{1, 3} {
		for _, k := range []int{1, 7, 32} {
			t.Run(fmt.Sprintf("world%d/examples%d", world, k), func(t *testing.T) {
				const T = 128
				seen := make([]int, len(docs))
				var slots, tokens int64
				rowCounts := map[int]bool{}
				var info EpochInfo
				for rank := range world {
					l := newLoader(t, ds, Config{SeqLen: T, Rows: 2, Mode: Pack, Seed: 3, Rank: rank, World: world, Examples: k}, nil)
					var err error
					if info, err = l.Epoch(0); err != nil {
						t.Fatal(err)
					}
					done := false
					for step := range info.Steps {
						b, err := l.Next()
						if err != nil {
							t.Fatal(err)
						}
						checkBatch(t, b, docs)
						inBatch := map[int64]int{}
						for _, s := range b.Segments {
							inBatch[s.Doc] += s.Len
							seen[s.Doc] += s.Len
						}
						for d, n := range inBatch {
							if n != len(docs[d].tokens)-1 {
								t.Fatalf("step %d: document %d has %d of its %d pairs in the batch", step, d, n, len(docs[d].tokens)-1)
							}
						}
						switch {
						case b.Filler:
							if !done || b.Rows != 1 {
								t.Fatalf("step %d: filler batch of %d rows (after the last: %v)", step, b.Rows, done)
							}
						case len(inBatch) < k:
							if done {
								t.Fatalf("step %d: a second short batch (%d documents)", step, len(inBatch))
							}
							done = true
						case len(inBatch) > k:
							t.Fatalf("step %d: %d documents, want %d", step, len(inBatch), k)
						}
						rowCounts[b.Rows] = true
						slots += int64(b.Rows * T)
						tokens += int64(b.Tokens)
						for lo := 0; lo < b.Rows; lo += 2 {
							checkBatch(t, b.Slice(lo, min(lo+2, b.Rows)), docs)
						}
					}
					if b, _ := l.Next(); b.Epoch != 1 || b.Step != 0 {
						t.Fatalf("after %d steps: epoch %d step %d", info.Steps, b.Epoch, b.Step)
					}
				}
				for d, n := range seen {
					if p := len(docs[d].tokens) - 1; n != p {
						t.Fatalf("document %d: %d of %d pairs seen in the epoch", d, n, p)
					}
				}
				fill := float64(tokens) / float64(slots)
				t.Logf("fill %.3f, rows per batch vary over %d values", fill, len(rowCounts))
				if d := fill - info.Fill; d > 1e-9 || d < -1e-9 {
					t.Fatalf("epoch fill %.6f, batches %.6f", info.Fill, fill)
				}
				if k >= 7 && len(rowCounts) < 2 {
					t.Fatalf("rows never vary: %v", rowCounts)
				}
			})
		}
	}
}

func TestExamplesConfig(t *testing.T) {
	ds, _ := makeDataset(t, 20, 2, 50, 700, 20000)
	if _, err := New(ds, Config{SeqLen: 64, Rows: 2, Mode: Pad, Examples: 4}, nil); err == nil {
		t.Fatal("examples in pad mode accepted")
	}
	l := newLoader(t, ds, Config{SeqLen: 64, Rows: 2, Mode: Pack, Examples: 4}, nil)
	s := l.State()
	s.Examples = 5
	if _, err := New(ds, Config{SeqLen: 64, Rows: 2, Mode: Pack, Examples: 4}, &s); err == nil {
		t.Fatal("a state of another examples count accepted")
	}
	s.Examples = 0
	if _, err := New(ds, Config{SeqLen: 64, Rows: 2, Mode: Pack}, &s); err == nil {
		t.Fatal("an examples-mode state accepted by a rows-mode loader")
	}
}
