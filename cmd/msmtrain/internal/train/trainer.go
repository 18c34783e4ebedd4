package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/prep"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/dist"
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
	// StageEnd, if set, runs after a stage's output is saved: the stage's configured evaluations, which write their
	// files when write is set. It runs on rank 0, with write; with sharded weights (dist.shard = "full") on every
	// process, as every forward pass then gathers from all. Its numeric results (e.g. "mc_accuracy") are recorded
	// with the stage's TensorBoard scalars as eval/<name>.
	StageEnd func(cfg *Config, st *Stage, m Model, write bool) (map[string]float64, error)
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
	hash, unlock, err := openRun(cfg, env)
	if err != nil {
		return err
	}
	defer unlock()
	if stop, err := agreeStop(env); err != nil || stop { // a signal while the processes joined: before the long load
		return stopErr(stop, err)
	}
	model, err := env.Build(cfg, env.Device)
	if err != nil {
		return err
	}
	defer model.Free()
	d := rundir.Dir(cfg.OutDir)
	var summaries []rundir.StageSummary
	prev := ""
	for i := range cfg.Stages {
		st := &cfg.Stages[i]
		if sum, ok := readDone(d.Stage(st.Name)); ok {
			if env.Dist.Rank == 0 {
				fmt.Fprintf(env.Out, "stage %s: already complete (%d steps, final loss %.4f), skipping\n", st.Name, sum.Steps, sum.FinalTrainLoss)
			}
			summaries = append(summaries, sum)
			prev = st.Name
			continue
		}
		if prev != "" {
			// Continue from the previous stage's product: in the same process it is already in the model, but a
			// fresh process (or one that resumed mid-stage) must load it.
			if err := model.LoadOutput(d.Output(prev)); err != nil {
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
	if env.Dist.Rank == 0 {
		return rundir.WriteJSON(d.Summary(), rundir.Summary{Stages: summaries})
	}
	return nil
}

// openRun readies the run directory: rank 0 locks it (see LockRun) and checks its files are no links; a config.toml
// from an earlier start must agree with cfg in everything that changes the training; rank 0 writes the resolved
// config. It returns the config's hash (checkpoints record it) and the function that releases the lock.
func openRun(cfg *Config, env Env) (hash string, unlock func(), err error) {
	unlock = func() {}
	resolved, err := cfg.Resolved()
	if err != nil {
		return "", unlock, err
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return "", unlock, err
	}
	rank0 := env.Dist.Rank == 0
	if rank0 { // the one writer of the run directory
		lock, err := LockRun(cfg.OutDir, env.Err)
		if err != nil {
			return "", unlock, err
		}
		unlock = func() { lock.Close() }
		if err := cfg.checkRunLinks(); err != nil {
			return "", unlock, err
		}
	}
	cfgPath := rundir.Dir(cfg.OutDir).Config()
	if old, err := os.ReadFile(cfgPath); err == nil {
		diffs, err := Incompatible(old, resolved)
		if err != nil {
			return "", unlock, fmt.Errorf("train: %s: %w", cfgPath, err)
		}
		if len(diffs) > 0 {
			return "", unlock, fmt.Errorf("train: the config differs from the one %s was started with, in ways that change "+
				"the training:\n  %s\nuse a new out_dir, or restore those values", cfg.OutDir, joinLines(diffs))
		}
	}
	if rank0 {
		if err := rundir.WriteFile(cfgPath, resolved); err != nil {
			return "", unlock, err
		}
	}
	return Hash(resolved), unlock, nil
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
