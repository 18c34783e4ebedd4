package train

import (
	"fmt"
	"os"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/atomicfile"
)

// finish ends a stage whose steps are done: the final held-out loss, then on rank 0 the stage's output (published
// atomically), its configured evaluations (on every process when the weights are sharded), summary.json and DONE;
// every process waits for rank 0 before the next stage loads that output.
func (r *stageRun) finish(noVal string) (rundir.StageSummary, error) {
	st := r.st
	sum := rundir.StageSummary{Name: st.Name, Kind: st.Kind, Steps: r.step, Tokens: r.counters.Tokens,
		TrainedTokens: r.counters.Trained, SkippedSteps: r.counters.Skipped, FinalTrainLoss: r.counters.LastLoss,
		EvalNote: noVal, Seconds: r.counters.Seconds}
	if r.val != nil {
		l, err := r.evaluate()
		if err != nil {
			return sum, err
		}
		sum.FinalEvalLoss = &l
	}
	if r.rank == 0 {
		if err := r.saveOutput(&sum); err != nil {
			return sum, fmt.Errorf("stage %s: %w", st.Name, err)
		}
	} else if r.cfg.Dist.Sharded() {
		// a sharded model gathers its weights to save them: the other processes take part, writing nothing
		if err := r.model.SaveOutput(""); err != nil {
			return sum, fmt.Errorf("stage %s: saving output: %w", st.Name, err)
		}
	}
	if r.env.StageEnd != nil && (r.rank == 0 || r.cfg.Dist.Sharded()) {
		res, err := r.env.StageEnd(r.cfg, r.st, r.model, r.rank == 0)
		if err != nil {
			return sum, fmt.Errorf("stage %s: evaluations: %w", st.Name, err)
		}
		if err := r.metrics.results(r.step, res); err != nil {
			return sum, err
		}
	}
	if r.rank == 0 {
		if err := r.markDone(sum); err != nil {
			return sum, fmt.Errorf("stage %s: %w", st.Name, err)
		}
	}
	// the next stage loads this output, and a stop exits: neither before rank 0 has written it all
	if err := waitRank0(r.env, "rank 0 to save the output of stage "+st.Name+" and run its evaluations"); err != nil {
		return sum, err
	}
	return sum, nil
}

// saveOutput publishes the stage's product, output/ (rank 0).
func (r *stageRun) saveOutput(sum *rundir.StageSummary) error {
	out := rundir.Dir(r.cfg.OutDir).Output(r.st.Name)
	tmp, err := atomicfile.TempDir(out)
	if err != nil {
		return err
	}
	if err := r.model.SaveOutput(tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("saving output: %w", err)
	}
	if err := atomicfile.PublishDir(tmp, out); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("saving output: %w", err)
	}
	sum.Output = out
	return nil
}

// markDone writes summary.json, then DONE, which marks the stage complete (rank 0, after the evaluations).
func (r *stageRun) markDone(sum rundir.StageSummary) error {
	d := rundir.Dir(r.cfg.OutDir)
	if err := rundir.WriteJSON(d.StageSummary(r.st.Name), sum); err != nil {
		return err
	}
	if err := rundir.WriteJSON(d.Done(r.st.Name), sum); err != nil {
		return err
	}
	eval := "no held-out data"
	if sum.FinalEvalLoss != nil {
		eval = fmt.Sprintf("eval loss %.4f", *sum.FinalEvalLoss)
	}
	fmt.Fprintf(r.env.Out, "stage %s: done in %.1fs: %d steps, final train loss %.4f, %s; output %s\n",
		r.st.Name, sum.Seconds, sum.Steps, sum.FinalTrainLoss, eval, sum.Output)
	return nil
}
