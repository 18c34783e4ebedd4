package train

import (
	"errors"
	"math"
	"sort"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/tensorboard"
)

// recorder writes a stage's records (rank 0): metrics.jsonl, the run's record that `msmtrain report` reads, and
// the same scalars as TensorBoard events in RUN/tensorboard/<stage>/ for viewing and comparing runs there (and in
// tools that import TensorBoard logs). A nil recorder (the other processes) writes nothing.
type recorder struct {
	log   *rundir.MetricsLog
	tb    *tensorboard.Writer
	every int // TensorBoard events are flushed every this many steps, at evaluations and at Close
}

// openRecorder opens the records of stage for its steps after step (see rundir.OpenMetrics).
func openRecorder(d rundir.Dir, stage string, step, every int) (*recorder, error) {
	log, err := rundir.OpenMetrics(d.Metrics(), stage, step)
	if err != nil {
		return nil, err
	}
	tb, err := tensorboard.NewWriter(d.TensorBoardStage(stage), int64(step+1))
	if err != nil {
		log.Close()
		return nil, err
	}
	return &recorder{log: log, tb: tb, every: max(every, 1)}, nil
}

func (r *recorder) train(rec rundir.TrainRecord) error {
	if r == nil {
		return nil
	}
	if err := r.log.Write(rec); err != nil {
		return err
	}
	wall, _ := time.Parse(time.RFC3339, rec.Time)
	step := int64(rec.Step)
	scalars := []struct {
		tag string
		v   float64
	}{{"train/loss", float64(rec.Loss)}, {"train/lr", rec.LR}, {"train/grad_norm", float64(rec.GradNorm)},
		{"train/tokens_per_s", rec.TokensPerS}, {"train/tokens", float64(rec.Tokens)},
		{"train/mem_gib", float64(rec.MemBytes) / (1 << 30)}}
	if rec.MFU > 0 {
		scalars = append(scalars, struct {
			tag string
			v   float64
		}{"train/mfu", rec.MFU})
	}
	for _, s := range scalars {
		if err := r.tb.Scalar(s.tag, step, s.v, wall); err != nil {
			return err
		}
	}
	if rec.Step%r.every == 0 {
		return r.tb.Flush()
	}
	return nil
}

func (r *recorder) eval(rec rundir.EvalRecord) error {
	if r == nil {
		return nil
	}
	if err := r.log.Write(rec); err != nil {
		return err
	}
	wall, _ := time.Parse(time.RFC3339, rec.Time)
	step := int64(rec.Step)
	if err := r.tb.Scalar("eval/loss", step, float64(rec.EvalLoss), wall); err != nil {
		return err
	}
	names := make([]string, 0, len(rec.BySource))
	for k := range rec.BySource {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if err := r.tb.Scalar("eval/loss/"+k, step, float64(rec.BySource[k].Loss), wall); err != nil {
			return err
		}
	}
	return r.tb.Flush()
}

// results records end-of-stage evaluation results (name/metric) at the stage's last step.
func (r *recorder) results(step int, res map[string]float64) error {
	if r == nil {
		return nil
	}
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := res[k]; !math.IsNaN(v) {
			if err := r.tb.Scalar("eval/"+k, int64(step), v, time.Now()); err != nil {
				return err
			}
		}
	}
	return r.tb.Flush()
}

func (r *recorder) Close() error {
	if r == nil {
		return nil
	}
	return errors.Join(r.tb.Close(), r.log.Close())
}
