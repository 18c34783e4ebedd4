package loader

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/msmtrain/msmtrain/data/shard"
)

type refDoc struct {
	tokens []int32
	mask   []bool
}

// makeDataset writes n random documents with lengths in [minLen, maxLen]
// and returns them as the reference for every check.
func makeDataset(t testing.TB, n, minLen, maxLen int, blockTokens int, shardTokens int64) (*shard.Dataset, []refDoc) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ds")
	dw, err := shard.CreateDataset(dir, shard.DatasetOptions{TokenizerHash: "t", VocabSize: 1000,
		Sources: []string{"a", "b"}, BlockTokens: blockTokens, ShardTokens: shardTokens})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(n), uint64(maxLen)))
	docs := make([]refDoc, n)
	for i := range docs {
		l := minLen + rng.IntN(maxLen-minLen+1)
		d := refDoc{make([]int32, l), make([]bool, l)}
		for j := range l {
			d.tokens[j] = int32(rng.IntN(1000))
			d.mask[j] = rng.IntN(4) != 0
		}
		docs[i] = d
		if err := dw.Add(d.tokens, d.mask, i%2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dw.Close(shard.Manifest{}); err != nil {
		t.Fatal(err)
	}
	ds, err := shard.OpenDataset(dir, shard.OpenOptions{TokenizerHash: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds, docs
}

func newLoader(t testing.TB, ds *shard.Dataset, cfg Config, from *State) *Loader {
	t.Helper()
	l, err := New(ds, cfg, from)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// checkBatch verifies every slot of b against the reference documents and
// returns the pieces it holds.
func checkBatch(t *testing.T, b *Batch, docs []refDoc) {
	t.Helper()
	T := b.SeqLen
	covered := make([]bool, b.Rows*T)
	trained, tokens := 0, 0
	rowIDs := map[[2]int]bool{}
	for _, s := range b.Segments {
		if s.Start < 0 || s.Len <= 0 || s.Start+s.Len > T {
			t.Fatalf("segment %+v crosses the row", s)
		}
		d := docs[s.Doc]
		id := b.DocID[s.Row*T+s.Start]
		if id <= 0 || rowIDs[[2]int{s.Row, int(id)}] {
			t.Fatalf("segment %+v: doc id %d is padding or reused in the row", s, id)
		}
		rowIDs[[2]int{s.Row, int(id)}] = true
		for k := range s.Len {
			i := s.Row*T + s.Start + k
			if covered[i] {
				t.Fatalf("slot %d used twice", i)
			}
			covered[i] = true
			j := s.Offset + k
			want, w := int32(IgnoreIndex), float32(0)
			if d.mask[j+1] {
				want, w = d.tokens[j+1], 1
				trained++
			}
			if b.Input[i] != d.tokens[j] || b.Target[i] != want || b.Weight[i] != w || b.Pos[i] != int32(k) || b.DocID[i] != id {
				t.Fatalf("segment %+v slot %d: input %d target %d weight %v pos %d id %d; want %d %d %v %d %d",
					s, k, b.Input[i], b.Target[i], b.Weight[i], b.Pos[i], b.DocID[i], d.tokens[j], want, w, k, id)
			}
		}
		tokens += s.Len
	}
	for i, c := range covered {
		if !c && (b.DocID[i] != 0 || b.Weight[i] != 0 || b.Target[i] != IgnoreIndex) {
			t.Fatalf("padding slot %d: id %d weight %v target %d", i, b.DocID[i], b.Weight[i], b.Target[i])
		}
	}
	if b.Trained != trained || b.Tokens != tokens || b.Filler != (len(b.Segments) == 0) {
		t.Fatalf("counts: trained %d/%d tokens %d/%d filler %v", b.Trained, trained, b.Tokens, tokens, b.Filler)
	}
}

func TestEpochCoverage(t *testing.T) {
	ds, docs := makeDataset(t, 400, 2, 300, 700, 20000)
	for _, mode := range []Mode{Pack, Pad, "split"} {
		for _, world := range []int{1, 2, 3} {
			for _, T := range []int{64, 256} {
				t.Run(fmt.Sprintf("%s/world%d/T%d", mode, world, T), func(t *testing.T) {
					mode, split := mode, mode == "split"
					if split {
						mode = Pack
					}
					pieces := make([][]Segment, len(docs))
					steps := -1
					for rank := range world {
						cfg := Config{SeqLen: T, Rows: 4, Mode: mode, Seed: 5, Rank: rank, World: world, Split: split, Window: 8}
						l := newLoader(t, ds, cfg, nil)
						n := l.StepsPerEpoch(0)
						if steps >= 0 && n != steps {
							t.Fatalf("rank %d: %d steps, rank 0 has %d", rank, n, steps)
						}
						steps = n
						for step := range n {
							b, err := l.Next()
							if err != nil {
								t.Fatal(err)
							}
							if b.Epoch != 0 || b.Step != step {
								t.Fatalf("batch %d/%d, want 0/%d", b.Epoch, b.Step, step)
							}
							checkBatch(t, b, docs)
							for _, s := range b.Segments {
								pieces[s.Doc] = append(pieces[s.Doc], s)
							}
						}
						if b, _ := l.Next(); b.Epoch != 1 || b.Step != 0 {
							t.Fatalf("after %d steps: epoch %d step %d", n, b.Epoch, b.Step)
						}
					}
					for i, ps := range pieces {
						pairs := len(docs[i].tokens) - 1
						if mode == Pad {
							if len(ps) != 1 || ps[0].Offset != 0 || ps[0].Len != min(pairs, T) {
								t.Fatalf("doc %d: pieces %+v", i, ps)
							}
							continue
						}
						// Without split, a document that fits a row is never cut, and a longer one (cut
						// wherever it starts) is cut only at row ends.
						if !split && pairs <= T && len(ps) != 1 {
							t.Fatalf("doc %d (%d pairs) cut: pieces %+v", i, pairs, ps)
						}
						off := 0
						for k, s := range ps {
							if s.Offset != off || (!split && k < len(ps)-1 && s.Start+s.Len != T) {
								t.Fatalf("doc %d (%d pairs): pieces %+v", i, pairs, ps)
							}
							off += s.Len
						}
						if off != pairs {
							t.Fatalf("doc %d: %d of %d pairs seen", i, off, pairs)
						}
					}
				})
			}
		}
	}
}

func sameBatch(a, b *Batch) bool {
	return slices.Equal(a.Input, b.Input) && slices.Equal(a.Target, b.Target) && slices.Equal(a.Weight, b.Weight) &&
		slices.Equal(a.Pos, b.Pos) && slices.Equal(a.DocID, b.DocID) && slices.Equal(a.Segments, b.Segments) &&
		a.Next == b.Next && a.Epoch == b.Epoch && a.Step == b.Step && a.Filler == b.Filler
}

func TestResume(t *testing.T) {
	ds, _ := makeDataset(t, 150, 2, 200, 500, 8000)
	for _, cfg := range []Config{
		{SeqLen: 64, Rows: 3, Mode: Pack, Seed: 1, Rank: 1, World: 2},
		{SeqLen: 128, Rows: 2, Mode: Pad, Seed: 2, Rank: 0, World: 3},
		{SeqLen: 32, Rows: 1, Mode: Pack, Seed: 3, World: 1, ShuffleBlocks: 2},
		{SeqLen: 64, Rows: 2, Mode: Pack, Seed: 4, World: 1, Window: 5, Split: true},
		{SeqLen: 256, Rows: 3, Mode: Pack, Seed: 5, Rank: 2, World: 3, Window: 1},
		{SeqLen: 128, Rows: 2, Mode: Pack, Seed: 6, World: 1, Window: 40, ShuffleBlocks: 1},
		{SeqLen: 64, Rows: 2, Mode: Pack, Seed: 7, Rank: 1, World: 2, Examples: 5, ShuffleBlocks: 2},
	} {
		t.Run(fmt.Sprintf("%s-T%d-world%d-window%d-split%v-examples%d", cfg.Mode, cfg.SeqLen, cfg.World, cfg.Window, cfg.Split, cfg.Examples), func(t *testing.T) {
			l := newLoader(t, ds, cfg, nil)
			total := l.StepsPerEpoch(0) + l.StepsPerEpoch(1) + 5 // crosses two epoch ends
			var ref []*Batch
			states := []State{l.State()}
			for range total {
				b, err := l.Next()
				if err != nil {
					t.Fatal(err)
				}
				ref = append(ref, b)
				states = append(states, l.State())
			}
			rng := rand.New(rand.NewPCG(9, 9))
			for range 8 {
				k := rng.IntN(total)
				js, _ := json.Marshal(states[k])
				var s State
				if err := json.Unmarshal(js, &s); err != nil {
					t.Fatal(err)
				}
				r := newLoader(t, ds, cfg, &s)
				for i := k; i < min(k+6, total); i++ {
					b, err := r.Next()
					if err != nil {
						t.Fatal(err)
					}
					if !sameBatch(b, ref[i]) {
						t.Fatalf("resumed at batch %d: batch %d differs", k, i)
					}
				}
				r.Close()
				b, err := l.BatchAt(states[k])
				if err != nil || !sameBatch(b, ref[k]) {
					t.Fatalf("BatchAt(state %d): %v", k, err)
				}
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	ds, _ := makeDataset(t, 200, 2, 50, 300, 0)
	first := func(seed uint64, epoch int) []int64 {
		l := newLoader(t, ds, Config{SeqLen: 128, Rows: 2, Seed: seed}, nil)
		var order []int64
		for {
			b, err := l.Next()
			if err != nil {
				t.Fatal(err)
			}
			if b.Epoch > epoch {
				return order
			}
			if b.Epoch == epoch {
				for _, s := range b.Segments {
					order = append(order, s.Doc)
				}
			}
		}
	}
	a, b := first(1, 0), first(1, 0)
	if !slices.Equal(a, b) {
		t.Fatal("same seed gave different orders")
	}
	if slices.Equal(a, first(2, 0)) || slices.Equal(a, first(1, 1)) {
		t.Fatal("another seed or epoch gave the same order")
	}
	if slices.IsSorted(a) {
		t.Fatal("order is not shuffled")
	}
}

func TestSkippedAndFiller(t *testing.T) {
	ds, docs := makeDataset(t, 7, 1, 3, 4, 0)
	ones := 0
	for _, d := range docs {
		if len(d.tokens) == 1 {
			ones++
		}
	}
	var skipped int64
	var fillers, total int
	for rank := range 3 {
		l := newLoader(t, ds, Config{SeqLen: 4, Rows: 1, Rank: rank, World: 3}, nil)
		info, err := l.Epoch(0)
		if err != nil {
			t.Fatal(err)
		}
		skipped += info.SkippedDocs
		fillers += info.FillerBatches
		for range info.Steps {
			b, err := l.Next()
			if err != nil {
				t.Fatal(err)
			}
			if b.Filler {
				total++
				if b.Trained != 0 || b.Tokens != 0 {
					t.Fatal("filler batch trains")
				}
			}
		}
	}
	if skipped != int64(ones) || fillers != total {
		t.Fatalf("skipped %d of %d one-token docs; %d filler batches, info says %d", skipped, ones, total, fillers)
	}
}

func TestStateChecks(t *testing.T) {
	ds, _ := makeDataset(t, 20, 2, 10, 50, 0)
	cfg := Config{SeqLen: 16, Rows: 2, Seed: 1}
	l := newLoader(t, ds, cfg, nil)
	l.Next()
	good := l.State()
	for name, mut := range map[string]func(s *State){
		"other seed":     func(s *State) { s.Seed++ },
		"other world":    func(s *State) { s.World = 2 },
		"other seq_len":  func(s *State) { s.SeqLen = 8 },
		"past the end":   func(s *State) { s.Pos = 1 << 40 },
		"negative step":  func(s *State) { s.Step = -1 },
		"offset too big": func(s *State) { s.Offset = 1 << 20 },
		"first-fit":      func(s *State) { s.Window = 0 },
		"other window":   func(s *State) { s.Window = 3 },
		"split":          func(s *State) { s.Split = true },
		"taken not hex":  func(s *State) { s.Taken = "x" },
		"taken too far":  func(s *State) { s.Taken = "0000000000000000000000000000000000000000000000000000000000000000001" },
	} {
		t.Run(name, func(t *testing.T) {
			s := good
			mut(&s)
			if _, err := New(ds, cfg, &s); err == nil {
				t.Fatal("New accepted a bad state")
			}
		})
	}
	for _, bad := range []Config{{SeqLen: 0, Rows: 1}, {SeqLen: 1, Rows: 1, Mode: "x"}, {SeqLen: 1, Rows: 1, Rank: 2, World: 2}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", bad)
		}
	}
}

func TestPermute(t *testing.T) {
	counts := map[[3]int32]int{}
	for seed := range uint64(6000) {
		p := make([]int32, 3)
		permute(p, seed)
		counts[[3]int32(p)]++
	}
	if len(counts) != 6 {
		t.Fatalf("%d distinct permutations of 3, want 6", len(counts))
	}
	for p, c := range counts {
		if c < 800 || c > 1200 { // expected 1000, sd ~ 29
			t.Fatalf("permutation %v appears %d times in 6000", p, c)
		}
	}
}

// TestEmptyRows: EpochInfo.EmptyRows counts the rows without a document in the batches of an epoch, all ranks
// together, as the batches hold them.
func TestEmptyRows(t *testing.T) {
	ds, _ := makeDataset(t, 23, 2, 40, 64, 0)
	for _, c := range []struct {
		mode        Mode
		rows, world int
	}{{Pack, 4, 1}, {Pack, 16, 2}, {Pad, 4, 1}, {Pad, 8, 3}, {Pad, 64, 1}} {
		t.Run(fmt.Sprintf("%s_%dx%d", c.mode, c.rows, c.world), func(t *testing.T) {
			var empty, want int64
			for rank := range c.world {
				l := newLoader(t, ds, Config{SeqLen: 32, Rows: c.rows, Mode: c.mode, Rank: rank, World: c.world}, nil)
				info, err := l.Epoch(0)
				if err != nil {
					t.Fatal(err)
				}
				want = info.EmptyRows
				for range info.Steps {
					b, err := l.Next()
					if err != nil {
						t.Fatal(err)
					}
					for r := range b.Rows {
						if slices.Max(b.DocID[r*b.SeqLen:(r+1)*b.SeqLen]) == 0 {
							empty++
						}
					}
				}
			}
			if empty != want || (c.rows == 64 && want != 64-23) {
				t.Fatalf("%d empty rows in the batches, EpochInfo says %d", empty, want)
			}
		})
	}
}
