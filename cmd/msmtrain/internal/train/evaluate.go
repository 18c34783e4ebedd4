package train

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/heldout"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/loader"
)

// evaluate computes the held-out loss per trained token over the validation set (all processes share it) and logs it.
func (r *stageRun) evaluate() (float64, error) {
	vl, err := loader.New(r.val, r.lcfg, nil)
	if err != nil {
		return 0, err
	}
	defer vl.Close()
	sums, err := heldout.Eval(r.model, r.env.Device, r.val, vl, r.cfg.Eval.MaxBatches, r.cfg.Dist.Sharded())
	if err != nil {
		return 0, err
	}
	if err := sums.Reduce(r.allSum); err != nil {
		return 0, err
	}
	loss, tokens := sums.Total()
	if tokens == 0 {
		return 0, nil
	}
	if r.rank == 0 {
		rec := rundir.EvalRecord{Kind: rundir.KindEval, Stage: r.st.Name, Step: r.step, EvalLoss: rundir.Float(loss),
			EvalPPL: rundir.Float(math.Exp(loss)), Tokens: tokens, Time: time.Now().UTC().Format(time.RFC3339)}
		if len(sums.Sources) > 1 {
			rec.BySource = map[string]rundir.SourceLoss{}
			for name, l := range sums.BySource() {
				rec.BySource[name] = rundir.SourceLoss{Loss: rundir.Float(l.Loss), Tokens: l.Tokens}
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
