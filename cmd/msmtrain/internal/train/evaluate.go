package train

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/torch"
)

// evaluate computes the held-out loss per trained token over the validation set (all processes share it) and logs it.
func (r *stageRun) evaluate() (float64, error) {
	cfg := r.lcfg
	vl, err := loader.New(r.val, cfg, nil)
	if err != nil {
		return 0, err
	}
	defer vl.Close()
	n := vl.StepsPerEpoch(0)
	if m := r.cfg.Eval.MaxBatches; m > 0 && n > m {
		n = m
	}
	// With several sources, each source's tokens are scored on their own (one forward pass per source present in
	// a batch): sums[2s] and sums[2s+1] are source s's loss sum and token count. With one, the whole batch is.
	sources := r.val.Sources()
	per := len(sources) > 1
	sums := make([]float64, 2*max(len(sources), 1))
	var err2 error
	torch.NoGrad(func() {
		for i := 0; i < n; i++ {
			b, err := vl.Next()
			if err != nil {
				err2 = err
				return
			}
			if b.Trained == 0 {
				continue
			}
			parts := []evalPart{{0, b.Weight, b.Trained}}
			if per {
				if parts, err = splitBySource(b, r.val); err != nil {
					err2 = err
					return
				}
			}
			for _, p := range parts {
				s := torch.NewScope()
				in := batchTensors(b, r.env.Device)
				w := torch.FromFloat32s(p.weight, int64(b.Rows), int64(b.SeqLen)).ToDevice(r.env.Device)
				v, err := r.model.Loss(in.ids, in.pos, in.seg, in.tgt, w).Item()
				s.Close()
				if err != nil {
					err2 = err
					return
				}
				sums[2*p.source] += v
				sums[2*p.source+1] += float64(p.trained)
			}
		}
	})
	if err2 != nil {
		return 0, err2
	}
	sums, err = r.allSum(sums)
	if err != nil {
		return 0, err
	}
	var lossSum, tokens float64
	for s := 0; s < len(sums); s += 2 {
		lossSum, tokens = lossSum+sums[s], tokens+sums[s+1]
	}
	if tokens == 0 {
		return 0, nil
	}
	loss := lossSum / tokens
	if r.rank == 0 {
		rec := rundir.EvalRecord{Kind: rundir.KindEval, Stage: r.st.Name, Step: r.step, EvalLoss: rundir.Float(loss),
			EvalPPL: rundir.Float(math.Exp(loss)), Tokens: int64(tokens), Time: time.Now().UTC().Format(time.RFC3339)}
		if per {
			rec.BySource = map[string]rundir.SourceLoss{}
			for s, name := range sources {
				if t := sums[2*s+1]; t > 0 {
					rec.BySource[name] = rundir.SourceLoss{Loss: rundir.Float(sums[2*s] / t), Tokens: int64(t)}
				}
			}
		}
		if err := r.metrics.eval(rec); err != nil {
			return 0, err
		}
		if r.con != nil {
			r.con.printf("%s step %d: eval loss %.4f (ppl %.2f, %d tokens)%s\n", r.st.Name, r.step, loss, float64(rec.EvalPPL),
				rec.Tokens, bySourceText(rec.BySource))
		}
	}
	return loss, nil
}

// evalPart is the trained tokens of one source in a batch: weight is the batch's weights restricted to them.
type evalPart struct {
	source  int
	weight  []float32
	trained int
}

// splitBySource splits a batch's trained tokens by the source of their documents.
func splitBySource(b *loader.Batch, ds *shard.Dataset) ([]evalPart, error) {
	bySrc := map[int]*evalPart{}
	var order []int
	for _, seg := range b.Segments {
		src, err := ds.DocSource(seg.Doc)
		if err != nil {
			return nil, err
		}
		p, ok := bySrc[src]
		if !ok {
			p = &evalPart{source: src, weight: make([]float32, len(b.Weight))}
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
	parts := make([]evalPart, 0, len(order))
	for _, s := range order {
		if bySrc[s].trained > 0 {
			parts = append(parts, *bySrc[s])
		}
	}
	return parts, nil
}

// bySourceText renders per-source losses for the console: "; by source: a 2.1000, b 2.3000".
func bySourceText(m map[string]rundir.SourceLoss) string {
	if len(m) == 0 {
		return ""
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := "; by source:"
	for i, k := range names {
		if i > 0 {
			out += ","
		}
		out += fmt.Sprintf(" %s %.4f", k, float64(m[k].Loss))
	}
	return out
}
