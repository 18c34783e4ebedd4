package heldout

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// doc is a held-out document: its tokens, which targets are trained, its source.
type doc struct {
	ids  []int32
	mask []bool
	src  int
}

// writeDataset writes docs as a dataset of the named sources.
func writeDataset(t *testing.T, docs []doc, sources []string) *shard.Dataset {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "val")
	dw, err := shard.CreateDataset(dir, shard.DatasetOptions{TokenizerHash: "test", VocabSize: 64, Sources: sources})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if err := dw.Add(d.ids, d.mask, min(d.src, len(sources)-1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dw.Close(shard.Manifest{}); err != nil {
		t.Fatal(err)
	}
	ds, err := shard.OpenDataset(dir, shard.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds
}

// TestEval: packed rows scored per source equal each document scored alone; a dataset of one source gives the
// same total; Reduce adds the sums of processes.
func TestEval(t *testing.T) {
	c := decoder.Config{ModelType: "llama", VocabSize: 64, HiddenSize: 32, IntermediateSize: 48, NumLayers: 2, NumHeads: 4,
		NumKVHeads: 2, RMSNormEps: 1e-5, RopeTheta: 10000, HiddenAct: "silu"}
	m, err := decoder.New(c, decoder.Options{DType: torch.Float32, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	r := rand.New(rand.NewPCG(1, 2))
	var docs []doc
	for i := 0; i < 9; i++ {
		d := doc{src: i % 3}
		for k := 0; k < 3+r.IntN(12); k++ {
			d.ids = append(d.ids, int32(r.IntN(64)))
			d.mask = append(d.mask, k%4 != 1)
		}
		docs = append(docs, d)
	}
	// Reference: each document alone.
	want, count := make([]float64, 3), make([]float64, 3)
	for _, d := range docs {
		n := len(d.ids) - 1
		ids, pos, seg, tgt := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		for k := 0; k < n; k++ {
			ids[k], pos[k], seg[k], tgt[k] = int64(d.ids[k]), int64(k), 1, -100
			if d.mask[k+1] {
				tgt[k] = int64(d.ids[k+1])
				count[d.src]++
			}
		}
		s := torch.NewScope()
		v, err := m.LogProbs(torch.FromInt64s(ids, 1, int64(n)), torch.FromInt64s(pos, 1, int64(n)),
			torch.FromInt64s(seg, 1, int64(n)), torch.FromInt64s(tgt, 1, int64(n))).SumAll().Item()
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		want[d.src] -= v
	}
	eval := func(sources []string, uniform bool) *Sums {
		ds := writeDataset(t, docs, sources)
		ld, err := loader.New(ds, loader.Config{SeqLen: 24, Rows: 2, Mode: loader.Pack, World: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ld.Close()
		s, err := Eval(m, torch.CPU, ds, ld, 0, uniform)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := eval([]string{"a", "b", "c"}, false)
	// uniform: one pass per source per batch, none skipped (sharded models), the same sums
	if u := eval([]string{"a", "b", "c"}, true); !slices.Equal(u.Loss, s.Loss) || !slices.Equal(u.Tokens, s.Tokens) {
		t.Errorf("uniform passes: %v %v, want %v %v", u.Loss, u.Tokens, s.Loss, s.Tokens)
	}
	by := s.BySource()
	var worst float64
	for i, name := range []string{"a", "b", "c"} {
		if by[name].Tokens != int64(count[i]) {
			t.Errorf("%s: %d tokens, want %v", name, by[name].Tokens, count[i])
		}
		worst = max(worst, math.Abs(by[name].Loss-want[i]/count[i]))
	}
	loss, tokens := s.Total()
	wantLoss := (want[0] + want[1] + want[2]) / (count[0] + count[1] + count[2])
	worst = max(worst, math.Abs(loss-wantLoss))
	t.Logf("largest difference from documents scored alone: %.2e nats", worst)
	if worst > 1e-5 || tokens != int64(count[0]+count[1]+count[2]) {
		t.Errorf("loss %.6f over %d tokens, want %.6f (largest difference %.2e)", loss, tokens, wantLoss, worst)
	}
	one := eval([]string{"all"}, false)
	if l, n := one.Total(); math.Abs(l-loss) > 1e-5 || n != tokens || one.BySource()["all"].Tokens != tokens {
		t.Errorf("one source: loss %.6f over %d tokens, want %.6f over %d", l, n, loss, tokens)
	}
	if err := s.Reduce(func(v []float64) ([]float64, error) {
		for i := range v {
			v[i] *= 2
		}
		return v, nil
	}); err != nil {
		t.Fatal(err)
	}
	if l, n := s.Total(); math.Abs(l-loss) > 1e-12 || n != 2*tokens {
		t.Errorf("after Reduce: loss %v over %d tokens, want %v over %d", l, n, loss, 2*tokens)
	}
}
