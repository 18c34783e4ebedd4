package loader

import (
	"fmt"
	"testing"
)

// measureFill runs a loader through epoch 0 and returns the fraction of the
// slots of its batches that hold a document, checking EpochInfo.Fill and
// Tokens against it.
func measureFill(t *testing.T, l *Loader) float64 {
	t.Helper()
	info, err := l.Epoch(0)
	if err != nil {
		t.Fatal(err)
	}
	tokens, slots := 0, 0
	for range info.Steps {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		tokens += b.Tokens
		slots += len(b.Input)
	}
	fill := float64(tokens) / float64(slots)
	if int64(tokens) != info.Tokens || fill != info.Fill {
		t.Fatalf("batches hold %d tokens, fill %v; EpochInfo says %d, %v", tokens, fill, info.Tokens, info.Fill)
	}
	return fill
}

// TestFill measures how full pack mode fills rows on uniform random
// document lengths (go test -run TestFill -v ./data/loader prints the
// table), and holds the default to at least 97% on MSM-like documents of
// 300-6,000 tokens in rows of 8,192.
func TestFill(t *testing.T) {
	docs := 4000 // ~12M tokens for 300-6000: the last, partial batch weighs < 0.1%
	if testing.Short() {
		docs = 800
	}
	for _, c := range []struct {
		lo, hi, rows, seqLen int
		want                 float64 // the default's floor (0: not checked)
	}{
		{300, 6000, 1, 8192, 0.97},
		{300, 6000, 4, 8192, 0.97},
		{100, 3000, 8, 4096, 0.97},
		{50, 800, 8, 4096, 0.97},
		{50, 800, 1, 2048, 0.97},
		{4000, 6000, 1, 8192, 0},    // two never fit a row: ~64% unless split
		{300, 12000, 1, 8192, 0.97}, // a third longer than a row: cut anyway, they top rows up
	} {
		n := docs * 3150 / ((c.lo + c.hi) / 2) // about the same tokens for every mix
		ds, _ := makeDataset(t, n, c.lo, c.hi, 0, 0)
		name := fmt.Sprintf("%d-%d_%dx%d", c.lo, c.hi, c.rows, c.seqLen)
		t.Run(name, func(t *testing.T) {
			fill := func(window int, split bool) float64 {
				return measureFill(t, newLoader(t, ds, Config{SeqLen: c.seqLen, Rows: c.rows, Seed: 1, Window: window, Split: split}, nil))
			}
			def, split := fill(0, false), fill(0, true)
			line := fmt.Sprintf("%-18s %5d docs: default (window %d) %.4f, split %.4f; window", name, n, DefaultWindow, def, split)
			for _, w := range []int{1, 16, 64, 256} {
				line += fmt.Sprintf(" %d: %.4f", w, fill(w, false))
			}
			t.Log(line)
			if !testing.Short() && def < c.want {
				t.Errorf("default packing fills %.4f of the slots, want at least %.2f", def, c.want)
			}
			if !testing.Short() && split < 0.99 {
				t.Errorf("split packing fills %.4f of the slots, want at least 0.99", split)
			}
		})
	}
}
