package train

import (
	"context"
	"fmt"
	"io"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/optim"
)

// runStage trains one stage to its end (or to a stop), resuming from its latest checkpoint.
func runStage(ctx context.Context, cfg *Config, idx int, model Model, env Env, hash string) (rundir.StageSummary, error) {
	st := &cfg.Stages[idx]
	data, err := prepareData(ctx, cfg, st, env)
	if err != nil {
		return rundir.StageSummary{}, err
	}
	defer data.Close()
	r, err := newStageRun(cfg, idx, model, env, hash, data)
	if err != nil {
		return rundir.StageSummary{}, err
	}
	defer r.close()
	err = r.loop(ctx)
	r.con.done()
	if err != nil {
		return rundir.StageSummary{}, err
	}
	return r.finish(data.noVal)
}

// newStageRun sets a stage up on its data: the latest checkpoint (if any) to resume from, the data loader, the
// optimizer and schedule, then either the checkpoint's state or fresh seeds and rank 0's weights; on rank 0 also
// the stage's records and console.
func newStageRun(cfg *Config, idx int, model Model, env Env, hash string, data *stageData) (r *stageRun, err error) {
	st := &cfg.Stages[idx]
	rank, world := env.Dist.Rank, max(env.Dist.World, 1)
	t := st.Train
	fail := func(err error) (*stageRun, error) {
		if r != nil {
			r.close()
		}
		return nil, fmt.Errorf("stage %s: %w", st.Name, err)
	}
	if rank == 0 && data.val == nil {
		fmt.Fprintf(env.Err, "stage %s: %s; the stage reports no eval loss\n", st.Name, data.noVal)
	}
	accum, err := t.accumulation(world)
	if err != nil {
		return fail(err)
	}
	lcfg := cfg.loaderConfig(idx, rank, world)
	// The stage's data is cut into one stream per micro-batch of a step, all processes together (virtual ranks,
	// world x accum of them): process p reads streams p*accum .. p*accum+accum-1. A step's batches are therefore
	// the same however many processes share them, and a checkpoint (one loader state per stream) resumes on any
	// number of processes that divides the global batch.
	streams := world * accum
	ckPath, resume, err := latestCheckpoint(cfg, st, env, streams, hash)
	if err != nil {
		return fail(err)
	}
	r = &stageRun{cfg: cfg, st: st, idx: idx, model: model, val: data.val, lcfg: lcfg, accum: accum, env: env, rank: rank,
		world: world, hash: hash, flopsPerToken: model.FLOPsPerToken(t.SeqLen),
		peakFLOPS: peakTFLOPS(cfg.Model.PeakTFLOPS, env.Device) * 1e12}
	for k := range accum {
		c := lcfg
		c.Rank, c.World = rank*accum+k, streams
		var from *loader.State
		if resume != nil {
			from = &resume.Loaders[c.Rank]
		}
		ld, err := loader.New(data.train, c, from)
		if err != nil {
			return fail(err)
		}
		r.lds = append(r.lds, ld)
	}
	var warn io.Writer
	if rank == 0 {
		warn = env.Err
	}
	if t.GlobalBatchExamples == 0 { // examples mode has no padding rows but the last batches' of an epoch
		if err := checkPadding(st, data.train, r.lds[0], streams, world, warn); err != nil {
			return fail(err)
		}
	}
	r.total = t.Steps
	if r.total == 0 {
		r.total = max(1, int(t.Epochs*float64(r.lds[0].StepsPerEpoch(0))))
	}
	if r.opt, err = optim.NewAdamW(model.Params(), t.adamw()); err != nil {
		return fail(err)
	}
	if r.sched, err = optim.NewSchedule(t.schedule(), t.LR, r.total); err != nil {
		return fail(err)
	}
	if resume != nil {
		err = r.restore(ckPath, resume)
	} else {
		err = r.seed()
	}
	if err != nil {
		return fail(err)
	}
	if rank == 0 {
		if r.metrics, err = openRecorder(rundir.Dir(cfg.OutDir), st.Name, r.step, cfg.Log.Every); err != nil {
			return fail(err)
		}
		what := "starting"
		if resume != nil {
			what = fmt.Sprintf("resuming at step %d", r.step)
		}
		if t.GlobalBatchExamples > 0 {
			info, _ := r.lds[0].Epoch(0)
			fmt.Fprintf(env.Out, "stage %s (%s): %s; %d steps of %d examples packed in rows of %d tokens (epoch 0: %.1f "+
				"rows/step, fill %.3f; %d rows per forward pass, %d processes), lr %g\n", st.Name, st.Kind, what, r.total,
				t.GlobalBatchExamples, t.SeqLen, float64(info.Rows)/float64(max(info.Steps, 1)), info.Fill, t.MicroBatch,
				world, t.LR)
		} else {
			fmt.Fprintf(env.Out, "stage %s (%s): %s; %d steps of %d x %d rows x %d tokens (%d micro-batches/step/process, %d processes), lr %g\n",
				st.Name, st.Kind, what, r.total, accum*world, t.MicroBatch, t.SeqLen, accum, world, t.LR)
		}
		r.con = newConsole(env.Err, cfg.Log.Progress, cfg.Log.Every, st.Name, r.step, r.total)
	}
	return r, nil
}

// latestCheckpoint returns the stage's latest checkpoint and its state, or nil when the stage starts afresh. It
// must have been made with this config and as many data streams (see newStageRun).
func latestCheckpoint(cfg *Config, st *Stage, env Env, streams int, hash string) (string, *rundir.CheckpointState, error) {
	d := rundir.Dir(cfg.OutDir)
	if env.Dist.Rank == 0 {
		removeTemps(d.CheckpointDir())
	}
	cks, err := d.Checkpoints(st.Name)
	if err != nil || len(cks) == 0 {
		return "", nil, err
	}
	path := cks[len(cks)-1]
	s, err := rundir.ReadCheckpointState(path)
	if err != nil {
		return "", nil, err
	}
	if s.ConfigHash != hash {
		return "", nil, fmt.Errorf("checkpoint %s was made with another config (hash %s, now %s)", path, s.ConfigHash, hash)
	}
	if len(s.Loaders) != streams {
		return "", nil, fmt.Errorf("checkpoint %s has %d data streams (global batch / micro_batch), this run %d: resume "+
			"with a number of processes that divides %d, or, with train.global_batch unset, as many processes as before",
			path, len(s.Loaders), streams, len(s.Loaders))
	}
	return path, &s, nil
}

// seed starts a stage afresh: the stage's seeds for libtorch and the adapter's dropout, and rank 0's trainable
// weights on every process.
func (r *stageRun) seed() error {
	seed := r.cfg.Seed + uint64(r.idx)
	if err := torch.ManualSeed(seed); err != nil {
		return err
	}
	if err := reseedDropout(r.model, seed+1000, r.env.Device); err != nil {
		return err
	}
	return r.broadcastParams()
}

// close releases what newStageRun made.
func (r *stageRun) close() {
	if r.metrics != nil {
		r.metrics.Close()
	}
	if r.opt != nil {
		r.opt.Free()
	}
	for _, ld := range r.lds {
		ld.Close()
	}
}

// reseedDropout starts the model's own dropout generator (LoRA dropout) of a stage from a seed, so that a stage
// draws the same masks whether the previous stage ran in this process or in an earlier one.
func reseedDropout(m Model, seed uint64, dev torch.Device) error {
	g, ok := m.(dropoutRNG)
	if !ok {
		return nil
	}
	cur, err := g.DropoutRNGState()
	if err != nil || cur == nil {
		return err
	}
	fresh, err := torch.NewGenerator(seed, dev)
	if err != nil {
		return err
	}
	defer fresh.Free()
	st, err := fresh.State()
	if err != nil {
		return err
	}
	return g.SetDropoutRNGState(st)
}

// loaderConfig is the data loader's config of stage idx on process rank of world (Rank and World are then set per
// stream, see newStageRun).
func (c *Config) loaderConfig(idx, rank, world int) loader.Config {
	t := c.Stages[idx].Train
	mode := loader.Pack
	if t.Mode == "pad" {
		mode = loader.Pad
	}
	return loader.Config{SeqLen: t.SeqLen, Rows: t.MicroBatch, Mode: mode, Seed: c.Seed + uint64(idx), Rank: rank, World: world,
		Split: t.PackSplit, Examples: t.GlobalBatchExamples / world}
}

// EpochFill sizes the first epoch of stage idx on its prepared training data ds, as world processes would run it:
// its steps, rows and the fraction of their slots that hold a document (msmtrain prep reports it).
func (c *Config) EpochFill(idx int, ds *shard.Dataset, world int) (loader.EpochInfo, error) {
	accum, err := c.Stages[idx].Train.accumulation(world)
	if err != nil {
		return loader.EpochInfo{}, err
	}
	lcfg := c.loaderConfig(idx, 0, world)
	lcfg.World = world * accum // streams: one per micro-batch of a step
	lcfg.Prefetch = 1
	ld, err := loader.New(ds, lcfg, nil)
	if err != nil {
		return loader.EpochInfo{}, err
	}
	defer ld.Close()
	return ld.Epoch(0)
}
