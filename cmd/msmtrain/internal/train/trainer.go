package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/atomicfile"
	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/prep"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/dist"
	"github.com/msmtrain/msmtrain/torch/optim"
)

// Env is where a run happens.
type Env struct {
	Out, Err io.Writer // console (rank 0 prints)
	Dist     dist.Env
	PG       *torch.ProcessGroup // nil: one process
	Device   torch.Device
	Build    Builder
	// Stop is set by SIGTERM/SIGUSR1: the loop saves a checkpoint after the current step and returns ErrStopped.
	Stop *atomic.Bool
	// StopAfter, if > 0, stops like Stop after that many optimizer steps of this process (tests, smoke runs).
	StopAfter int
	// StageEnd, if set, runs on rank 0 after a stage's output is saved: the stage's configured evaluations. Its
	// numeric results (e.g. "mc_accuracy") are recorded with the stage's TensorBoard scalars as eval/<name>.
	StageEnd func(cfg *Config, st *Stage, m Model) (map[string]float64, error)
	// RestartStage names a stage to start over from step 0 when its data changed since it started (its
	// checkpoints are discarded); without it such a stage is refused. With unchanged data the stage resumes as
	// usual, so a requeued job may keep passing it.
	RestartStage string
}

// ErrStopped is returned when a stop was requested: a checkpoint was saved and re-running resumes.
var ErrStopped = errors.New("train: stopped by signal after saving a checkpoint; run the same command to resume")

// Run runs every stage of cfg in order, skipping finished ones and resuming an interrupted one.
//
// The calling goroutine is locked to its OS thread for the whole run: libtorch calls made from whichever thread
// the Go scheduler picks gave results that differed in the last bits from run to run (measured: 5 different
// LoRA adapters out of 6 identical CPU runs, and differences under load even with one intra-op thread), while
// one thread gives the same bits every time, which exact resumption needs.
func Run(ctx context.Context, cfg *Config, env Env) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rank0 := env.Dist.Rank == 0
	resolved, err := cfg.Resolved()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return err
	}
	if rank0 { // the one writer of the run directory (see LockRun)
		lock, err := LockRun(cfg.OutDir, env.Err)
		if err != nil {
			return err
		}
		defer lock.Close()
		if err := cfg.checkRunLinks(); err != nil {
			return err
		}
	}
	cfgPath := filepath.Join(cfg.OutDir, "config.toml")
	if old, err := os.ReadFile(cfgPath); err == nil {
		diffs, err := Incompatible(old, resolved)
		if err != nil {
			return fmt.Errorf("train: %s: %w", cfgPath, err)
		}
		if len(diffs) > 0 {
			return fmt.Errorf("train: the config differs from the one %s was started with, in ways that change the training:\n  %s\n"+
				"use a new out_dir, or restore those values", cfg.OutDir, joinLines(diffs))
		}
	}
	if rank0 {
		if err := rundir.WriteFile(cfgPath, resolved); err != nil {
			return err
		}
	}
	hash := Hash(resolved)
	if stop, err := agreeStop(env); err != nil || stop { // a signal while the processes joined: before the long load
		return stopErr(stop, err)
	}
	model, err := env.Build(cfg, env.Device)
	if err != nil {
		return err
	}
	defer model.Free()
	var summaries []rundir.StageSummary
	prev := ""
	for i := range cfg.Stages {
		st := &cfg.Stages[i]
		stageDir := filepath.Join(cfg.OutDir, st.Name)
		if sum, ok := readDone(stageDir); ok {
			if rank0 {
				fmt.Fprintf(env.Out, "stage %s: already complete (%d steps, final loss %.4f), skipping\n", st.Name, sum.Steps, sum.FinalTrainLoss)
			}
			summaries = append(summaries, sum)
			prev = st.Name
			continue
		}
		if prev != "" {
			// Continue from the previous stage's product: in the same process it is already in the model, but a
			// fresh process (or one that resumed mid-stage) must load it.
			if err := model.LoadOutput(filepath.Join(cfg.OutDir, prev, "output")); err != nil {
				return fmt.Errorf("stage %s: continuing from stage %s: %w", st.Name, prev, err)
			}
			if st.Init == "merge" {
				if err := model.MergeAdapter(); err != nil {
					return fmt.Errorf("stage %s: merging the adapter of %s: %w", st.Name, prev, err)
				}
			}
		}
		sum, err := runStage(ctx, cfg, i, model, env, hash)
		if err != nil {
			return err
		}
		summaries = append(summaries, sum)
		prev = st.Name
	}
	if rank0 {
		b, _ := json.MarshalIndent(struct {
			Stages []rundir.StageSummary `json:"stages"`
		}{summaries}, "", "  ")
		return rundir.WriteFile(filepath.Join(cfg.OutDir, "summary.json"), b)
	}
	return nil
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

func joinLines(s []string) string {
	out := ""
	for i, l := range s {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}

func readDone(stageDir string) (rundir.StageSummary, bool) {
	s, err := rundir.ReadStageSummary(filepath.Join(stageDir, rundir.DoneFile))
	return s, err == nil
}

// PrepConfig is the data config of a stage as training prepares it: the stage's [stages.data] with the run's
// tokenizer, chat template, seed, and RUN/data/<stage> as the output.
func (c *Config) PrepConfig(st *Stage) (prep.Config, error) {
	pc := st.Data
	pc.OutDir = filepath.Join(c.OutDir, "data", st.Name)
	pc.Tokenizer = c.TokenizerPath()
	if pc.ChatTemplate == "" {
		var err error
		if pc.ChatTemplate, err = c.ChatTemplate(); err != nil && st.Kind == "aft" {
			return pc, fmt.Errorf("stage %s: no chat template: %w", st.Name, err)
		}
	}
	if pc.MaxLen == 0 {
		pc.MaxLen = st.Train.SeqLen + 1
	}
	if pc.Seed == 0 {
		pc.Seed = c.Seed
	}
	return pc, nil
}

// runStage trains one stage to its end (or to a stop), resuming from its latest checkpoint.
func runStage(ctx context.Context, cfg *Config, idx int, model Model, env Env, hash string) (rundir.StageSummary, error) {
	st := &cfg.Stages[idx]
	rank, world := env.Dist.Rank, max(env.Dist.World, 1)
	rank0 := rank == 0
	t := st.Train
	data, err := prepareData(ctx, cfg, st, env)
	if err != nil {
		return rundir.StageSummary{}, err
	}
	defer data.Close()
	trainDS, valDS := data.train, data.val
	if rank0 && valDS == nil {
		fmt.Fprintf(env.Err, "stage %s: %s; the stage reports no eval loss\n", st.Name, data.noVal)
	}
	accum, err := t.accumulation(world)
	if err != nil {
		return rundir.StageSummary{}, fmt.Errorf("stage %s: %w", st.Name, err)
	}
	mode := loader.Pack
	if t.Mode == "pad" {
		mode = loader.Pad
	}
	lcfg := loader.Config{SeqLen: t.SeqLen, Rows: t.MicroBatch, Mode: mode, Seed: cfg.Seed + uint64(idx), Rank: rank, World: world}

	// Resume?
	ckDir := filepath.Join(cfg.OutDir, "checkpoints")
	if rank0 {
		removeTemps(ckDir)
	}
	cks, err := rundir.ListCheckpoints(ckDir, st.Name)
	if err != nil {
		return rundir.StageSummary{}, err
	}
	var resume *rundir.CheckpointState
	if len(cks) > 0 {
		s, err := rundir.ReadCheckpointState(cks[len(cks)-1])
		if err != nil {
			return rundir.StageSummary{}, err
		}
		if s.ConfigHash != hash {
			return rundir.StageSummary{}, fmt.Errorf("stage %s: checkpoint %s was made with another config (hash %s, now %s)", st.Name, cks[len(cks)-1], s.ConfigHash, hash)
		}
		if len(s.Loaders) != world {
			return rundir.StageSummary{}, fmt.Errorf("stage %s: checkpoint %s has %d data-loader states, this run has %d processes; resume with the same number of processes",
				st.Name, cks[len(cks)-1], len(s.Loaders), world)
		}
		resume = &s
	}
	var from *loader.State
	if resume != nil {
		from = &resume.Loaders[rank]
	}
	ld, err := loader.New(trainDS, lcfg, from)
	if err != nil {
		return rundir.StageSummary{}, fmt.Errorf("stage %s: %w", st.Name, err)
	}
	defer ld.Close()
	var warn io.Writer
	if rank0 {
		warn = env.Err
	}
	if err := checkPadding(st, trainDS, ld, world, warn); err != nil {
		return rundir.StageSummary{}, fmt.Errorf("stage %s: %w", st.Name, err)
	}

	total := t.Steps
	if total == 0 {
		micro := int(t.Epochs * float64(ld.StepsPerEpoch(0)))
		total = max(1, (micro+accum-1)/accum)
	}
	params := model.Params()
	opt, err := optim.NewAdamW(params, t.adamw())
	if err != nil {
		return rundir.StageSummary{}, err
	}
	defer opt.Free()
	sched, err := optim.NewSchedule(t.schedule(), t.LR, total)
	if err != nil {
		return rundir.StageSummary{}, fmt.Errorf("stage %s: %w", st.Name, err)
	}

	r := &stageRun{cfg: cfg, st: st, idx: idx, model: model, opt: opt, sched: sched, ld: ld, val: valDS, lcfg: lcfg,
		accum: accum, total: total, env: env, rank: rank, world: world, hash: hash}
	if resume != nil {
		if err := r.restore(cks[len(cks)-1], resume); err != nil {
			return rundir.StageSummary{}, err
		}
	} else {
		if err := torch.ManualSeed(cfg.Seed + uint64(idx)); err != nil {
			return rundir.StageSummary{}, err
		}
		if err := reseedDropout(model, cfg.Seed+uint64(idx)+1000, env.Device); err != nil {
			return rundir.StageSummary{}, err
		}
		if err := r.broadcastParams(); err != nil {
			return rundir.StageSummary{}, err
		}
	}
	if rank0 {
		if r.metrics, err = openRecorder(rundir.Dir(cfg.OutDir), st.Name, r.step, cfg.Log.Every); err != nil {
			return rundir.StageSummary{}, err
		}
		defer r.metrics.Close()
		what := "starting"
		if resume != nil {
			what = fmt.Sprintf("resuming at step %d", r.step)
		}
		fmt.Fprintf(env.Out, "stage %s (%s): %s; %d steps of %d x %d rows x %d tokens (%d micro-batches/step/process, %d processes), lr %g\n",
			st.Name, st.Kind, what, total, accum*world, t.MicroBatch, t.SeqLen, accum, world, t.LR)
		r.con = newConsole(env.Err, cfg.Log.Progress, cfg.Log.Every, st.Name, r.step, total)
	}
	if err := r.loop(ctx); err != nil {
		if r.con != nil {
			r.con.done()
		}
		return rundir.StageSummary{}, err
	}
	if r.con != nil {
		r.con.done()
	}
	sum := rundir.StageSummary{Name: st.Name, Kind: st.Kind, Steps: r.step, Tokens: r.counters.Tokens, TrainedTokens: r.counters.Trained,
		SkippedSteps: r.counters.Skipped, FinalTrainLoss: r.counters.LastLoss, EvalNote: data.noVal, Seconds: r.counters.Seconds}
	if r.val != nil {
		l, err := r.evaluate()
		if err != nil {
			return rundir.StageSummary{}, err
		}
		sum.FinalEvalLoss = &l
	}
	stageDir := filepath.Join(cfg.OutDir, st.Name)
	if rank0 {
		out := filepath.Join(stageDir, "output")
		if err := os.MkdirAll(stageDir, 0o755); err != nil {
			return sum, err
		}
		tmp, err := atomicfile.TempDir(out)
		if err != nil {
			return sum, err
		}
		if err := model.SaveOutput(tmp); err != nil {
			os.RemoveAll(tmp)
			return sum, fmt.Errorf("stage %s: saving output: %w", st.Name, err)
		}
		if err := atomicfile.PublishDir(tmp, out); err != nil {
			os.RemoveAll(tmp)
			return sum, fmt.Errorf("stage %s: saving output: %w", st.Name, err)
		}
		sum.Output = out
		if env.StageEnd != nil {
			res, err := env.StageEnd(cfg, st, model)
			if err != nil {
				return sum, fmt.Errorf("stage %s: evaluations: %w", st.Name, err)
			}
			if err := r.metrics.results(r.step, res); err != nil {
				return sum, err
			}
		}
		b, _ := json.MarshalIndent(sum, "", "  ")
		if err := rundir.WriteFile(filepath.Join(stageDir, "summary.json"), b); err != nil {
			return sum, err
		}
		if err := rundir.WriteFile(filepath.Join(stageDir, "DONE"), b); err != nil {
			return sum, err
		}
		eval := "no held-out data"
		if sum.FinalEvalLoss != nil {
			eval = fmt.Sprintf("eval loss %.4f", *sum.FinalEvalLoss)
		}
		fmt.Fprintf(env.Out, "stage %s: done in %.1fs: %d steps, final train loss %.4f, %s; output %s\n",
			st.Name, sum.Seconds, sum.Steps, sum.FinalTrainLoss, eval, out)
	}
	// the next stage loads this output, and a stop exits: neither before rank 0 has written it all
	if err := waitRank0(env, "rank 0 to save the output of stage "+st.Name+" and run its evaluations"); err != nil {
		return sum, err
	}
	return sum, nil
}
