package train

import (
	"errors"
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
	ss := []scalar{{"train/loss", float64(rec.Loss)}, {"train/lr", rec.LR}, {"train/grad_norm", float64(rec.GradNorm)},
		{"train/tokens_per_s", rec.TokensPerS}, {"train/tokens", float64(rec.Tokens)}, {"train/fill", rec.Fill},
		{"train/mem_gib", float64(rec.MemBytes) / (1 << 30)}}
	if rec.MFU > 0 {
		ss = append(ss, scalar{"train/mfu", rec.MFU})
	}
	return r.scalars(rec.Step, rec.Time, ss, rec.Step%r.every == 0)
}

func (r *recorder) eval(rec rundir.EvalRecord) error {
	if r == nil {
		return nil
	}
	if err := r.log.Write(rec); err != nil {
		return err
	}
	ss := []scalar{{"eval/loss", float64(rec.EvalLoss)}}
	for k, v := range rec.BySource {
		ss = append(ss, scalar{"eval/loss/" + k, float64(v.Loss)})
	}
	return r.scalars(rec.Step, rec.Time, ss, true)
}

// results records end-of-stage evaluation results (name: value) as eval/<name> at the stage's last step.
func (r *recorder) results(step int, res map[string]float64) error {
	if r == nil {
		return nil
	}
	var ss []scalar
	for k, v := range res {
		ss = append(ss, scalar{"eval/" + k, v})
	}
	return r.scalars(step, time.Now().UTC().Format(time.RFC3339), ss, true)
}

type scalar struct {
	tag string
	v   float64
}

// scalars writes TensorBoard events at step and time (RFC 3339), in tag order, and flushes them if flush.
func (r *recorder) scalars(step int, at string, ss []scalar, flush bool) error {
	wall, _ := time.Parse(time.RFC3339, at)
	sort.Slice(ss, func(i, j int) bool { return ss[i].tag < ss[j].tag })
	for _, s := range ss {
		if err := r.tb.Scalar(s.tag, int64(step), s.v, wall); err != nil {
			return err
		}
	}
	if flush {
		return r.tb.Flush()
	}
	return nil
}

func (r *recorder) Close() error {
	if r == nil {
		return nil
	}
	return errors.Join(r.tb.Close(), r.log.Close())
}
