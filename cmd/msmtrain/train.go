package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/plan"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/dist"
)

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// exitCode is an error with the process exit status main should use: 3 when training stopped on a signal after
// saving a checkpoint, so that a batch script can tell "requeue me" from success (0) and failure (1).
type exitCode struct {
	code int
	err  error
}

func (e *exitCode) Error() string { return e.err.Error() }
func (e *exitCode) Unwrap() error { return e.err }

func runTrain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train", stderr)
	path := fs.String("config", "", "training config (TOML)")
	var sets multiFlag
	fs.Var(&sets, "set", "override a config value: section.key=value or stages.NAME.key=value (repeatable)")
	restart := fs.String("restart-stage", "", "start stage NAME over from step 0 if its data changed since it started "+
		"(its checkpoints are discarded); without it such a stage is refused")
	stopAfter := fs.Int("stop-after", 0, "stop after N optimizer steps of this process as on SIGTERM (checkpoint, exit status 3): "+
		"a smoke test of resumption and requeueing")
	ignorePlan := fs.Bool("ignore-plan", false, "train even if msmtrain plan says the run does not fit in GPU memory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("train: --config is required (msmtrain --config run.toml)")
	}
	cfg, err := train.Load(*path, sets)
	if err != nil {
		return err
	}
	if *restart != "" && !hasStage(cfg, *restart) {
		return fmt.Errorf("train: --restart-stage %s: the config has no stage of that name", *restart)
	}
	return trainConfig(cfg, trainOptions{restartStage: *restart, stopAfter: *stopAfter, ignorePlan: *ignorePlan}, stdout, stderr)
}

// trainOptions are the train command's flags beyond the config.
type trainOptions struct {
	restartStage string
	stopAfter    int
	ignorePlan   bool
}

// checkPlan refuses, on a GPU, a run that msmtrain plan says will not fit in the device's memory, printing the
// plan; ignore trains anyway (the plan is an estimate, calibrated on CPU, and a warning is printed).
func checkPlan(cfg *train.Config, dev torch.Device, world int, ignore bool, stderr io.Writer) error {
	if !dev.IsCUDA() {
		return nil
	}
	mi, err := torch.CUDAMemoryInfo(dev.Index)
	if err != nil || mi.Total <= 0 {
		return nil // no figure to plan against
	}
	return refuseByPlan(cfg, world, float64(mi.Total)/plan.GiB, ignore, stderr)
}

// refuseByPlan is checkPlan on GPUs of gib GiB.
func refuseByPlan(cfg *train.Config, world int, gib float64, ignore bool, stderr io.Writer) error {
	p, err := planForConfig(cfg, world, gib)
	if err != nil {
		fmt.Fprintf(stderr, "warning: msmtrain plan: %v; training without a memory plan\n", err)
		return nil
	}
	if p.Fits() {
		return nil
	}
	p.Format(stderr)
	if ignore {
		fmt.Fprintln(stderr, "warning: the run may not fit in GPU memory (above); --ignore-plan: training anyway")
		return nil
	}
	return fmt.Errorf("train: the run does not fit in the %.0f GiB of GPU memory by msmtrain plan (above): shard it "+
		"(dist.shard = \"full\"), turn on model.checkpointing, lower micro_batch or seq_len, or pass --ignore-plan", gib)
}

func hasStage(cfg *train.Config, name string) bool {
	for _, st := range cfg.Stages {
		if st.Name == name {
			return true
		}
	}
	return false
}

// trainConfig sets up the process (signals, device, threads, process group) and runs every stage of cfg.
//
// SIGTERM, SIGUSR1 and an interrupt ask for a stop, from the first moment on: while the processes join (which
// waits for all of them), load the model or prepare data, as well as while they train. train.Run honours it at the
// next point where the run's files are complete and returns train.ErrStopped, and the process exits with status 3
// (the Slurm scripts requeue on it; see scripts/slurm). A second interrupt exits at once.
func trainConfig(cfg *train.Config, opt trainOptions, stdout, stderr io.Writer) error {
	var stop atomic.Bool
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGUSR1, os.Interrupt)
	defer func() {
		signal.Stop(sigs)
		close(sigs)
	}()
	denv, err := dist.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	if denv.Rank != 0 {
		stdout, stderr = io.Discard, io.Discard
	}
	go func(w io.Writer) {
		for s := range sigs {
			if stop.Load() && s == os.Interrupt {
				fmt.Fprintln(os.Stderr, "msmtrain: second interrupt: exiting without a checkpoint")
				os.Exit(130)
			}
			fmt.Fprintf(w, "msmtrain: %v: stopping at the next safe point (after this step, with a checkpoint, once "+
				"training runs), then exiting with status 3\n", s)
			stop.Store(true)
		}
	}(stderr)
	dev, err := processDevice(cfg.Model.Device, denv.LocalRank)
	if err != nil {
		return fmt.Errorf("model.device: %w", err)
	}
	// libtorch's CPU threads: the cores of this process's share, less one for the data loader and the Go runtime
	// (on 2 cores, 1 intra-op thread trains the demo 1.7x faster than 2: the spinning OpenMP team and the Go
	// threads otherwise compete for the same cores).
	threads := cfg.Model.Threads
	if threads == 0 && !dev.IsCUDA() {
		perNode := max(1, localWorld(denv))
		threads = max(1, runtime.NumCPU()/perNode-1)
	}
	torch.SetNumThreads(threads)
	if err := torch.SetDevice(dev); err != nil {
		return err
	}
	if err := checkPlan(cfg, dev, max(denv.World, 1), opt.ignorePlan, stderr); err != nil {
		return err
	}
	pg, err := dist.Init(denv, cfg.Dist.Backend, dev, time.Duration(cfg.Dist.TimeoutSeconds)*time.Second)
	if err != nil {
		if stop.Load() { // nothing is written before the group forms
			return &exitCode{3, fmt.Errorf("stopped by a signal while the processes joined (%v); nothing was written: "+
				"run the same command to start", err)}
		}
		return err
	}
	if pg != nil {
		defer pg.Close()
	}
	err = train.Run(context.Background(), cfg, train.Env{Out: stdout, Err: stderr, Dist: denv, PG: pg, Device: dev,
		Build: func(cfg *train.Config, dev torch.Device) (train.Model, error) {
			return buildSharded(cfg, dev, pg, stdout)
		}, Stop: &stop, StageEnd: stageEvals, RestartStage: opt.restartStage, StopAfter: opt.stopAfter})
	switch {
	case errors.Is(err, train.ErrStopped):
		return &exitCode{3, err}
	case err != nil && stop.Load():
		// Asked to stop, this process failed on the way, most often because another one had stopped first (a
		// lost connection to rank 0). The run's files are consistent whatever the point: checkpoints, prepared
		// data and stage outputs are published only when complete.
		return &exitCode{3, fmt.Errorf("stopped by a signal, with: %w; checkpoints and prepared data are published only "+
			"when complete: run the same command to resume", err)}
	}
	return err
}

// processDevice picks this process's device: "cuda" means cuda:LOCAL_RANK.
func processDevice(spec string, localRank int) (torch.Device, error) {
	if spec == "cuda" {
		spec = fmt.Sprintf("cuda:%d", localRank)
	}
	return torch.ParseDevice(spec)
}

// localWorld is the number of processes on this node, from the launcher's variables.
func localWorld(env dist.Env) int {
	for _, k := range []string{"LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"} {
		var n int
		if _, err := fmt.Sscan(os.Getenv(k), &n); err == nil && n > 0 {
			return n
		}
	}
	return 1
}

// buildSharded builds the model, sharding its base weights over pg with dist.shard = "full", and says how much of
// them rank 0 holds.
func buildSharded(cfg *train.Config, dev torch.Device, pg *torch.ProcessGroup, stdout io.Writer) (train.Model, error) {
	m, err := buildModel(cfg, dev, pg)
	if err != nil || !cfg.Dist.Sharded() || pg == nil {
		return m, err
	}
	held, whole := m.Decoder().BaseBytes()
	fmt.Fprintf(stdout, "dist.shard = full: this process holds %.4f MiB of the %.4f MiB of base weights (%d processes)\n",
		float64(held)/(1<<20), float64(whole)/(1<<20), pg.World)
	return m, nil
}
