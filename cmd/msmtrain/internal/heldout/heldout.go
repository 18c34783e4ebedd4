// Package heldout computes a model's loss on held-out data: per trained token, over a whole prepared dataset and
// per data source. The trainer's evaluations and `msmtrain eval --data` both use it, so the two report the same
// numbers for the same batches.
package heldout

import (
	"fmt"
	"math"

	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/torch"
)

// Model is what the loss needs: the sum over positions of weight * cross-entropy for packed rows (targets < 0
// ignored; rows: the flat indices of the positions with a target, as Tensors.Rows), as decoder.Model and
// train.Model have it.
type Model interface {
	LossAt(ids, pos, seg, targets, weights *torch.Tensor, rows []int64) *torch.Tensor
}

// Tensors is a loader batch on a device as (B, T) tensors: int64 ids, positions, segment ids and targets, and
// float32 weights; Rows are the flat (row-major) indices of the positions with a target, from the host's copy,
// so that the loss need not read the targets back from the device.
type Tensors struct {
	IDs, Pos, Seg, Targets, Weights *torch.Tensor
	Rows                            []int64
}

// BatchTensors puts b on dev. The tensors belong to the current scope.
func BatchTensors(b *loader.Batch, dev torch.Device) Tensors {
	shape := []int64{int64(b.Rows), int64(b.SeqLen)}
	i64 := func(v []int32) *torch.Tensor {
		return torch.FromInt32s(v, shape...).To(torch.Int64).ToDevice(dev)
	}
	rows := make([]int64, 0, b.Trained)
	for i, t := range b.Target {
		if t != loader.IgnoreIndex {
			rows = append(rows, int64(i))
		}
	}
	return Tensors{IDs: i64(b.Input), Pos: i64(b.Pos), Seg: i64(b.DocID), Targets: i64(b.Target),
		Weights: torch.FromFloat32s(b.Weight, shape...).ToDevice(dev), Rows: rows}
}

// Sums are the summed loss (nats) and the count of trained tokens of held-out batches, per source of a dataset.
// Sums of several processes add up (see Reduce).
type Sums struct {
	Sources []string  // the dataset's source names (may be empty: then everything is source 0)
	Loss    []float64 // per source: the sum of the trained tokens' cross-entropy
	Tokens  []float64 // per source: trained tokens (float64 so that they reduce with the losses; exact below 2^53)

	uniform bool // the same forward passes on every process (see Eval)
}

// NewSums returns zero sums for a dataset with the given sources.
func NewSums(sources []string) *Sums {
	n := max(len(sources), 1)
	return &Sums{Sources: sources, Loss: make([]float64, n), Tokens: make([]float64, n)}
}

// Eval scores the batches of one epoch of ld, a loader of ds (the first maxBatches when maxBatches > 0), without
// autograd, and returns the sums of this process (its rank's share of the batches when ld has several ranks).
// uniform makes every process run the same forward passes whatever its batches hold (one per source of ds per
// batch, none skipped), as a model whose forward pass is a collective needs (sharded weights); the sums are the
// same either way.
func Eval(m Model, dev torch.Device, ds *shard.Dataset, ld *loader.Loader, maxBatches int, uniform bool) (*Sums, error) {
	n := ld.StepsPerEpoch(0)
	if maxBatches > 0 {
		n = min(n, maxBatches)
	}
	s := NewSums(ds.Sources())
	s.uniform = uniform
	var err error
	torch.NoGrad(func() {
		for i := 0; i < n && err == nil; i++ {
			var b *loader.Batch
			if b, err = ld.Next(); err == nil {
				err = s.Add(m, dev, b, ds)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Add scores one batch of ds. With one source the batch takes one forward pass; with several, one pass per
// source present in it, each weighted to that source's trained tokens. Call it without autograd (torch.NoGrad).
func (s *Sums) Add(m Model, dev torch.Device, b *loader.Batch, ds *shard.Dataset) error {
	if b.Trained == 0 && !s.uniform {
		return nil
	}
	parts := []part{{0, b.Weight, b.Trained}}
	if len(s.Sources) > 1 {
		var err error
		if parts, err = splitBySource(b, ds, len(s.Sources), s.uniform); err != nil {
			return err
		}
	}
	sc := torch.NewScope()
	defer sc.Close()
	in := BatchTensors(b, dev)
	for _, p := range parts {
		w := torch.FromFloat32s(p.weight, int64(b.Rows), int64(b.SeqLen)).ToDevice(dev)
		v, err := m.LossAt(in.IDs, in.Pos, in.Seg, in.Targets, w, in.Rows).Item()
		if err != nil {
			return err
		}
		s.Loss[p.source] += v
		s.Tokens[p.source] += float64(p.trained)
	}
	return nil
}

// Reduce replaces the sums with f of them, e.g. their sum over the processes of a run (f gets and returns the
// losses followed by the token counts).
func (s *Sums) Reduce(f func([]float64) ([]float64, error)) error {
	n := len(s.Loss)
	v, err := f(append(append([]float64(nil), s.Loss...), s.Tokens...))
	if err != nil {
		return err
	}
	if len(v) != 2*n {
		return fmt.Errorf("heldout: reduced %d values, want %d", len(v), 2*n)
	}
	copy(s.Loss, v[:n])
	copy(s.Tokens, v[n:])
	return nil
}

// Total returns the loss per trained token over all sources and the number of those tokens (0, 0 without any).
func (s *Sums) Total() (loss float64, tokens int64) {
	var sum, n float64
	for i := range s.Loss {
		sum, n = sum+s.Loss[i], n+s.Tokens[i]
	}
	if n == 0 {
		return 0, 0
	}
	return sum / n, int64(n)
}

// SourceLoss is one source's loss per trained token, and its number of trained tokens.
type SourceLoss struct {
	Loss   float64
	Tokens int64
}

// PPL is the perplexity, exp(Loss).
func (l SourceLoss) PPL() float64 { return math.Exp(l.Loss) }

// BySource returns the loss of each named source that has trained tokens.
func (s *Sums) BySource() map[string]SourceLoss {
	out := map[string]SourceLoss{}
	for i, name := range s.Sources {
		if t := s.Tokens[i]; t > 0 {
			out[name] = SourceLoss{Loss: s.Loss[i] / t, Tokens: int64(t)}
		}
	}
	return out
}

// part is the trained tokens of one source in a batch: weight is the batch's weights restricted to them.
type part struct {
	source  int
	weight  []float32
	trained int
}

// splitBySource splits a batch's trained tokens by the source of their documents, in order of first appearance
// (all: every source, in source order, those without tokens in the batch with zero weights).
func splitBySource(b *loader.Batch, ds *shard.Dataset, sources int, all bool) ([]part, error) {
	bySrc := map[int]*part{}
	var order []int
	for _, seg := range b.Segments {
		src, err := ds.DocSource(seg.Doc)
		if err != nil {
			return nil, err
		}
		if src < 0 || src >= sources {
			return nil, fmt.Errorf("heldout: document %d has source %d, the manifest names %d", seg.Doc, src, sources)
		}
		p, ok := bySrc[src]
		if !ok {
			p = &part{source: src, weight: make([]float32, len(b.Weight))}
			bySrc[src] = p
			order = append(order, src)
		}
		off := seg.Row*b.SeqLen + seg.Start
		for i := off; i < off+seg.Len; i++ {
			if b.Weight[i] != 0 {
				p.weight[i] = b.Weight[i]
				p.trained++
			}
		}
	}
	if all {
		parts := make([]part, sources)
		for i := range parts {
			if p, ok := bySrc[i]; ok {
				parts[i] = *p
			} else {
				parts[i] = part{source: i, weight: make([]float32, len(b.Weight))}
			}
		}
		return parts, nil
	}
	parts := make([]part, 0, len(order))
	for _, s := range order {
		if bySrc[s].trained > 0 {
			parts = append(parts, *bySrc[s])
		}
	}
	return parts, nil
}
