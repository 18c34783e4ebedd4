package experiment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/data/atomicfile"
)

// ProbeFunc scores the probe file on the output of a stage of a finished run with config cfg.
type ProbeFunc func(cfg *train.Config, stage, probes string) (infer.ProbeSummary, error)

// Options are what running an experiment needs from the command.
type Options struct {
	// Command is the msmtrain program and any arguments before "--config FILE": each run is trained by
	// `Command... --config <the run's config>` (msmtrain's own executable).
	Command []string
	Env     []string // added to the training processes' environment
	Stdout  io.Writer
	Stderr  io.Writer
	Probe   ProbeFunc // nil: probes are not scored
}

// State of a run directory.
const (
	NotStarted = "not started"
	Partial    = "partial"
	Finished   = "finished"
)

// Status is what a run directory says of the run.
type Status struct {
	State string
	Done  []string // the stages complete (their DONE file)
}

// RunStatus reads the state of a run from its directory: finished when summary.json lists every stage of the
// run, partial when it was started (config.toml), else not started. A finished run whose config.toml differs from
// the run's config in a way that changes the training is an error naming the keys: its results would not be the
// experiment's.
func RunStatus(r *Run) (Status, error) {
	d := rundir.Dir(r.Dir)
	var st Status
	for _, s := range r.Stages {
		if _, err := os.Stat(d.Done(s)); err == nil {
			st.Done = append(st.Done, s)
		}
	}
	sum, err := rundir.ReadSummary(d.Summary())
	if err != nil {
		return st, err
	}
	old, cerr := os.ReadFile(d.Config())
	switch {
	case sum != nil && cerr == nil && summaryHas(sum, r.Stages):
		diffs, err := train.Incompatible(old, r.Resolved)
		if err != nil {
			return st, fmt.Errorf("%s: %w", d.Config(), err)
		}
		if len(diffs) > 0 {
			return st, fmt.Errorf("run %s finished with another config than the experiment's now, which differs in:\n  %s\n"+
				"restore the experiment's values, or remove %s to train it again", r.Name(), strings.Join(diffs, "\n  "), r.Dir)
		}
		st.State = Finished
	case cerr == nil:
		st.State = Partial
	case errors.Is(cerr, os.ErrNotExist):
		st.State = NotStarted
	default:
		return st, cerr
	}
	return st, nil
}

func summaryHas(sum *rundir.Summary, stages []string) bool {
	for _, s := range stages {
		if !slices.ContainsFunc(sum.Stages, func(x rundir.StageSummary) bool { return x.Name == s }) {
			return false
		}
	}
	return true
}

// WriteConfigs writes every run's resolved training config to its ConfigFile (OUT/<arm>/seed-<seed>.toml),
// leaving a file with the same content untouched.
func WriteConfigs(runs []*Run) error {
	for _, r := range runs {
		if old, err := os.ReadFile(r.ConfigFile); err == nil && bytes.Equal(old, r.Resolved) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(r.ConfigFile), 0o755); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(r.ConfigFile, r.Resolved); err != nil {
			return err
		}
	}
	return nil
}

// StoppedError is returned when a training process stopped on a signal with its state saved (exit status 3), or
// when the experiment was asked to stop between runs: running the experiment again continues it.
type StoppedError struct {
	Run string // the run that stopped, or "" when the stop came between runs
}

func (e *StoppedError) Error() string {
	if e.Run == "" {
		return "stopped by a signal between runs; run the same command again to continue (finished runs are skipped)"
	}
	return fmt.Sprintf("run %s stopped on a signal with its state saved (exit status 3); run the same command again to "+
		"continue: finished runs are skipped and this one resumes from its checkpoint", e.Run)
}

// Execute trains every run that is not finished, one after the other, each by a child process whose output goes
// to RUN/experiment.log, and scores the probes on every stage of each finished run (cached in the run directory).
// A run not started yet is first given the finished stages it shares with an earlier run of its seed (share.go).
// One line per run is printed. SIGTERM, SIGINT and SIGUSR1 are passed to the running child, which saves a
// checkpoint and exits with status 3; the experiment then stops with a StoppedError, as it does when a child
// exits 3 on its own.
func Execute(c *Config, runs []*Run, opt Options) error {
	if len(opt.Command) == 0 {
		return errors.New("experiment: no msmtrain command to train with")
	}
	if err := WriteConfigs(runs); err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	var (
		mu    sync.Mutex
		child *os.Process
		got   os.Signal
	)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer func() {
		signal.Stop(sigs)
		close(sigs)
	}()
	go func() {
		for s := range sigs {
			mu.Lock()
			got = s
			if child != nil {
				child.Signal(s)
				fmt.Fprintf(opt.Stderr, "\nexperiment: %v: passed to the training process (it saves a checkpoint and exits)\n", s)
			} else {
				fmt.Fprintf(opt.Stderr, "\nexperiment: %v: stopping before the next run\n", s)
			}
			mu.Unlock()
		}
	}()
	stopRequested := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got != nil
	}
	for _, r := range runs {
		if stopRequested() {
			return &StoppedError{}
		}
		prefix := fmt.Sprintf("[%d/%d] %s", r.Index+1, len(runs), r.Name())
		st, err := RunStatus(r)
		if err != nil {
			return fmt.Errorf("experiment: %w", err)
		}
		if st.State == Finished {
			note, err := probeNote(c, r, opt)
			if err != nil {
				return err
			}
			fmt.Fprintf(opt.Stdout, "%s: finished earlier, skipped%s\n", prefix, note)
			continue
		}
		how := "training"
		if st.State == NotStarted {
			donor, stages, err := shareFrom(r, runs)
			if err == nil && donor != nil {
				err = shareStages(r, donor, stages)
				how = fmt.Sprintf("training (%s shared with %s)", strings.Join(stages, ", "), donor.Name())
			}
			if err != nil {
				return fmt.Errorf("experiment: %w", err)
			}
		}
		if st.State == Partial {
			how = fmt.Sprintf("resuming (%d of %d stages done)", len(st.Done), len(r.Stages))
		}
		logPath := rundir.Dir(r.Dir).ExperimentLogPath()
		fmt.Fprintf(opt.Stdout, "%s: %s, log %s ... ", prefix, how, logPath)
		start := time.Now()
		code, err := trainRun(r, opt, logPath, func(p *os.Process) bool {
			mu.Lock()
			defer mu.Unlock()
			child = p
			return got == nil
		})
		if code == 3 {
			fmt.Fprintf(opt.Stdout, "stopped after %s\n", time.Since(start).Round(time.Second))
			return &StoppedError{Run: r.Name()}
		}
		if err != nil {
			fmt.Fprintln(opt.Stdout, "failed")
			return fmt.Errorf("experiment: run %s: %w", r.Name(), err)
		}
		if st, err = RunStatus(r); err != nil {
			fmt.Fprintln(opt.Stdout, "failed")
			return fmt.Errorf("experiment: %w", err)
		}
		if st.State != Finished {
			fmt.Fprintln(opt.Stdout, "failed")
			return fmt.Errorf("experiment: run %s: training exited without error but %s does not list every stage; see %s",
				r.Name(), rundir.Dir(r.Dir).Summary(), logPath)
		}
		took := time.Since(start).Round(time.Second)
		note, err := probeNote(c, r, opt)
		if err != nil {
			fmt.Fprintf(opt.Stdout, "trained in %s\n", took)
			return err
		}
		fmt.Fprintf(opt.Stdout, "done in %s%s\n", took, note)
	}
	return nil
}

// trainRun runs the training process of r with its output appended to logPath and returns its exit status.
// started is called with the process once it runs, and returns false when a stop was asked for in the meantime
// (the process is then signalled at once).
func trainRun(r *Run, opt Options, logPath string, started func(*os.Process) bool) (int, error) {
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return 0, err
	}
	if err := rundir.NotSymlink(logPath); err != nil {
		return 0, err
	}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	args := append(slices.Clone(opt.Command[1:]), "--config", r.ConfigFile)
	fmt.Fprintf(log, "\n=== msmtrain experiment, run %s, %s: %s %s\n", r.Name(), time.Now().UTC().Format(time.RFC3339),
		opt.Command[0], strings.Join(args, " "))
	cmd := exec.Command(opt.Command[0], args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), opt.Env...)
	// Its own process group: a Ctrl-C in the terminal reaches the experiment, which passes it on once (a second
	// interrupt makes msmtrain exit without a checkpoint). If the experiment dies, the child is told to stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	if !started(cmd.Process) {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	err = cmd.Wait()
	started(nil)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if code == 3 {
			return 3, nil
		}
		return code, fmt.Errorf("training failed (%v); the end of %s:\n%s", err, logPath, tail(logPath, 15))
	}
	return 0, err
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return "  " + strings.Join(lines[max(0, len(lines)-n):], "\n  ")
}

// probeNote scores the probes on a finished run (or reads them from its cache) and returns ", probe share ..."
// for the progress line: the share of each value after the last stage.
func probeNote(c *Config, r *Run, opt Options) (string, error) {
	if c.Probes.File == "" || opt.Probe == nil {
		return "", nil
	}
	res, err := EvaluateProbes(c, r, opt.Probe, opt.Stderr)
	if err != nil {
		return "", fmt.Errorf("experiment: run %s: probes: %w", r.Name(), err)
	}
	last := res[r.Stages[len(r.Stages)-1]]
	var parts []string
	for _, v := range last.Labels() {
		parts = append(parts, fmt.Sprintf("%s %.3f", v, last.Values[v].Share))
	}
	return ", probe share after " + r.Stages[len(r.Stages)-1] + ": " + strings.Join(parts, ", "), nil
}

// PrintPlan writes the arm × seed table: each run's stages, state and directory (--dry-run).
func PrintPlan(c *Config, runs []*Run, w io.Writer) error {
	fmt.Fprintf(w, "experiment %s: %d arms × %d seeds = %d runs, base %s\n", c.Name, len(c.Arms), len(c.Seeds), len(runs), c.Base)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tarm\tseed\tstages\tstate\trun directory")
	for _, r := range runs {
		st, err := RunStatus(r)
		if err != nil {
			return err
		}
		state := st.State
		if st.State == Partial {
			state = fmt.Sprintf("%s (%d/%d stages)", st.State, len(st.Done), len(r.Stages))
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", r.Index+1, r.Arm, r.Seed, strings.Join(r.Stages, ","), state, r.Dir)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "report: %s\n", c.ReportDir())
	return nil
}
