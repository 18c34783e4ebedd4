package train

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/heldout"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/optim"
)

// stageRun is the state of one stage's optimisation.
type stageRun struct {
	cfg         *Config
	st          *Stage
	idx         int
	model       Model
	opt         *optim.AdamW
	sched       optim.Schedule
	lds         []*loader.Loader // this process's data streams: micro-batch k of a step comes from lds[k]
	val         *shard.Dataset
	lcfg        loader.Config
	accum       int
	total       int
	env         Env
	rank, world int
	hash        string

	step      int // optimizer steps completed
	counters  rundir.Counters
	metrics   *recorder
	con       *console
	stepsHere int // steps run by this process (for Env.StopAfter)

	flopsPerToken, peakFLOPS float64 // for MFU: the model's training FLOPs per token; the device's peak (0: unknown)

	replicated, sharded []*torch.Tensor // the optimizer's tensors, by kind (splitSharded)
}

// loop runs the stage's optimizer steps from r.step to r.total, with the evaluations and checkpoints the config
// asks for; a stop request ends it after a step, with a checkpoint, as ErrStopped.
func (r *stageRun) loop(ctx context.Context) error {
	// a stop that came before this process's first step of the stage (model loading, the stage switch, setup):
	// the latest checkpoint, if any, is where a re-run resumes, so there is nothing new to save
	if stop, err := agreeStop(r.env); err != nil {
		return err
	} else if stop {
		if r.rank == 0 {
			r.con.printf("stage %s: stop requested before step %d; nothing new to save\n", r.st.Name, r.step+1)
		}
		return ErrStopped
	}
	if r.cfg.Eval.AtStart && r.step == 0 && r.val != nil {
		if _, err := r.evaluate(); err != nil {
			return err
		}
	}
	for r.step < r.total {
		if err := cancelled(ctx); err != nil { // a stop request is honoured after the step, with a checkpoint
			return err
		}
		t0 := time.Now()
		res, err := r.trainStep()
		if err != nil {
			return fmt.Errorf("stage %s step %d: %w", r.st.Name, r.step+1, err)
		}
		if err := torch.Synchronize(r.env.Device); err != nil {
			return err
		}
		dt := time.Since(t0).Seconds()
		if res.nonFinite && r.st.Train.NonFinite == "stop" {
			if _, err := r.checkpoint(); err != nil {
				return err
			}
			return fmt.Errorf("stage %s step %d: non-finite gradients (nonfinite = \"stop\"); checkpoint of step %d saved",
				r.st.Name, r.step+1, r.step)
		}
		if err := r.record(res, dt); err != nil {
			return err
		}
		if ev := r.cfg.Eval.Every; ev > 0 && r.step%ev == 0 && r.step < r.total && r.val != nil {
			if _, err := r.evaluate(); err != nil {
				return err
			}
		}
		stop, err := r.stopRequested()
		if err != nil {
			return err
		}
		ce := r.cfg.Checkpoint.Every
		if stop || (ce > 0 && r.step%ce == 0 && r.step < r.total) {
			path, err := r.checkpoint()
			if err != nil {
				return err
			}
			if stop {
				if r.rank == 0 {
					r.con.printf("stage %s: stop requested; checkpoint %s saved\n", r.st.Name, path)
				}
				return ErrStopped
			}
		}
	}
	return nil
}

// record counts a completed step (dt seconds) and, on rank 0, writes its record and shows it.
func (r *stageRun) record(res stepResult, dt float64) error {
	r.step++
	r.stepsHere++
	r.counters.Tokens += res.tokens
	r.counters.Trained += res.trained
	r.counters.Seconds += dt
	if res.nonFinite {
		r.counters.Skipped++
	} else {
		r.counters.LastLoss = res.loss
	}
	if r.rank != 0 {
		return nil
	}
	rec := rundir.TrainRecord{Kind: rundir.KindTrain, Stage: r.st.Name, Step: r.step, Loss: rundir.Float(res.loss),
		LR: res.lr, GradNorm: rundir.Float(res.gradNorm), Tokens: r.counters.Tokens, Trained: r.counters.Trained,
		Fill:       float64(res.tokens) / float64(res.rows*int64(r.st.Train.SeqLen)),
		TokensPerS: float64(res.tokens) / dt, MemBytes: memBytes(r.env.Device), Skipped: res.nonFinite,
		Time: time.Now().UTC().Format(time.RFC3339)}
	if r.peakFLOPS > 0 {
		rec.MFU = r.flopsPerToken * rec.TokensPerS / (r.peakFLOPS * float64(r.world))
	}
	if err := r.metrics.train(rec); err != nil {
		return err
	}
	r.con.step(rec)
	return nil
}

type stepResult struct {
	loss, lr, gradNorm float64
	tokens, trained    int64
	rows               int64 // rows of the step's batches, all processes
	nonFinite          bool
}

// trainStep runs one optimizer step: accum micro-batches per process, loss normalised by the global count of
// trained target tokens, gradients summed across processes, clipping, AdamW. A batch of more rows than
// micro_batch (examples mode) runs in passes of micro_batch rows.
func (r *stageRun) trainStep() (stepResult, error) {
	var res stepResult
	batches := make([]*loader.Batch, 0, r.accum)
	var tokens, trained, rows int64
	mb := r.st.Train.MicroBatch
	for i := 0; i < r.accum; i++ {
		b, err := r.lds[i].Next()
		if err != nil {
			return res, err
		}
		tokens += int64(b.Tokens)
		trained += int64(b.Trained)
		rows += int64(b.Rows)
		if b.Rows <= mb {
			batches = append(batches, b)
			continue
		}
		for lo := 0; lo < b.Rows; lo += mb {
			batches = append(batches, b.Slice(lo, min(lo+mb, b.Rows)))
		}
	}
	counts, err := r.allSum([]float64{float64(tokens), float64(trained), float64(rows)})
	if err != nil {
		return res, err
	}
	if r.st.Train.GlobalBatchExamples > 0 && r.world > 1 {
		// The processes' rows differ in examples mode, but a forward pass over sharded weights is a collective:
		// every process runs as many passes as the one with the most, the extra ones over a padding row.
		most, err := r.allReduce([]float64{float64(len(batches))}, torch.ReduceOpMax)
		if err != nil {
			return res, err
		}
		for len(batches) < int(most[0]) {
			batches = append(batches, loader.Padding(1, r.st.Train.SeqLen))
		}
	}
	res.tokens, res.trained, res.rows = int64(counts[0]), int64(counts[1]), int64(counts[2])
	res.lr = r.sched.LR(r.step)
	if res.trained == 0 {
		res.nonFinite = false
		return res, nil // nothing to learn from (all padding): no update
	}
	inv := 1 / counts[1]
	dev := r.env.Device
	// The micro-batches' losses are summed on the device (float64) and read once per step: reading each would
	// make the host wait for the device after every micro-batch.
	step := torch.NewScope()
	defer step.Close()
	var total *torch.Tensor
	for _, b := range batches {
		s := torch.NewScope()
		in := heldout.BatchTensors(b, dev)
		loss := r.model.LossAt(in.IDs, in.Pos, in.Seg, in.Targets, in.Weights, in.Rows)
		if err := loss.MulScalar(inv).Backward(nil); err != nil {
			s.Close()
			return res, err
		}
		l := loss.Detach().To(torch.Float64)
		if total != nil {
			l = total.Add(l)
		}
		s.Keep(l)
		s.Close()
		total = l
	}
	lossSum, err := total.Item()
	if err != nil {
		return res, err
	}
	params := r.opt.Tensors()
	replicated, sharded := r.splitSharded(params)
	if r.env.PG != nil {
		if err := r.allReduceGrads(replicated); err != nil { // sharded gradients are summed by their gathers' backward
			return res, err
		}
		l, err := r.allSum([]float64{lossSum})
		if err != nil {
			return res, err
		}
		lossSum = l[0]
	}
	res.loss = lossSum * inv
	var norm float64
	switch {
	case len(sharded) > 0:
		norm, err = r.gradNorm(replicated, sharded, r.st.Train.ClipNorm)
	case r.st.Train.ClipNorm > 0:
		norm, err = torch.ClipGradNorm(params, r.st.Train.ClipNorm)
	default:
		norm, err = torch.GradNorm(params)
	}
	if err != nil {
		return res, err
	}
	res.gradNorm = norm
	if math.IsNaN(norm) || math.IsInf(norm, 0) || math.IsNaN(res.loss) || math.IsInf(res.loss, 0) {
		res.nonFinite = true
		return res, r.opt.ZeroGrad()
	}
	if err := r.opt.Step(res.lr); err != nil {
		return res, err
	}
	return res, r.opt.ZeroGrad()
}

// splitSharded splits the optimizer's tensors into replicated ones and this process's slices of sharded ones
// (optim.Param.Whole), once per stage: the optimizer's tensors do not change within it.
func (r *stageRun) splitSharded(ts []*torch.Tensor) (replicated, sharded []*torch.Tensor) {
	if r.replicated == nil && r.sharded == nil {
		ps := r.model.Params()
		for i, t := range ts {
			if i < len(ps) && ps[i].Whole > 0 {
				r.sharded = append(r.sharded, t)
			} else {
				r.replicated = append(r.replicated, t)
			}
		}
	}
	return r.replicated, r.sharded
}
