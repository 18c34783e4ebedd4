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
	fs.Var(&sets, "set", "override a config value: section.key=value (repeatable)")
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
	return trainConfig(cfg, stdout, stderr)
}

// trainConfig sets up the process (device, threads, process group, signals) and runs every stage of cfg.
func trainConfig(cfg *train.Config, stdout, stderr io.Writer) error {
	denv, err := dist.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
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
	pg, err := dist.Init(denv, cfg.Dist.Backend, dev, time.Duration(cfg.Dist.TimeoutSeconds)*time.Second)
	if err != nil {
		return err
	}
	if pg != nil {
		defer pg.Close()
	}
	if denv.Rank != 0 {
		stdout, stderr = io.Discard, io.Discard
	}
	var stop atomic.Bool
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGUSR1, os.Interrupt)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			if stop.Load() && s == os.Interrupt {
				fmt.Fprintln(os.Stderr, "msmtrain: second interrupt: exiting without a checkpoint")
				os.Exit(130)
			}
			fmt.Fprintf(stderr, "msmtrain: %v: saving a checkpoint after this step, then exiting\n", s)
			stop.Store(true)
		}
	}()
	err = train.Run(context.Background(), cfg, train.Env{Out: stdout, Err: stderr, Dist: denv, PG: pg, Device: dev,
		Build: buildModel, Stop: &stop, StageEnd: stageEvals})
	if errors.Is(err, train.ErrStopped) {
		return &exitCode{3, err}
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
