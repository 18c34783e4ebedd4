package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/experiment"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// experimentCommand is the program that trains an experiment's runs: this executable (tests replace it).
var experimentCommand = func() ([]string, error) {
	exe, err := os.Executable()
	return []string{exe}, err
}

func runExperiment(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("experiment", stderr)
	path := fs.String("config", "", "experiment file (TOML): a base training config, arms that modify it, seeds, probes and the effect to report")
	out := fs.String("out", "", "directory of the runs and the report (default: the experiment's out_dir)")
	slurm := fs.String("slurm", "", "write an sbatch array script here (one task per arm × seed) and every run's config, and train nothing")
	reportOnly := fs.Bool("report-only", false, "train nothing: score the probes on the finished runs (cached) and write the report")
	dryRun := fs.Bool("dry-run", false, "print the arm × seed runs, their state and directories, and do nothing")
	seeds := fs.String("seeds", "", "comma-separated seeds replacing the file's (e.g. 4,5,6: the same arms, other runs)")
	device := fs.String("device", "", "device of the probe evaluations (cpu, cuda, cuda:N; default: each run's model.device)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("experiment: --config is required (msmtrain experiment --config experiment.toml)")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("experiment: unexpected arguments %q", fs.Args())
	}
	n := 0
	for _, b := range []bool{*slurm != "", *reportOnly, *dryRun} {
		if b {
			n++
		}
	}
	if n > 1 {
		return errors.New("experiment: give at most one of --slurm, --report-only and --dry-run")
	}
	if *device != "" {
		if _, err := processDevice(*device, 0); err != nil {
			return fmt.Errorf("experiment: --device %s: %w", *device, err)
		}
	}
	c, err := experiment.Load(*path, *out)
	if err != nil {
		return err
	}
	if *seeds != "" {
		var ss []int64
		for _, f := range strings.Split(*seeds, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				return fmt.Errorf("experiment: --seeds %s: %q is not an integer", *seeds, f)
			}
			ss = append(ss, v)
		}
		if err := c.SetSeeds(ss); err != nil {
			return fmt.Errorf("experiment: --seeds: %w", err)
		}
	}
	runs, err := c.Expand()
	if err != nil {
		return err
	}
	again := "msmtrain experiment --config " + *path
	if *out != "" {
		again += " --out " + *out
	}
	if *seeds != "" {
		again += " --seeds " + *seeds
	}
	switch {
	case *dryRun:
		return experiment.PrintPlan(c, runs, stdout)
	case *slurm != "":
		return writeExperimentSlurm(c, runs, *slurm, again+" --report-only", stdout)
	}
	probe := probeEvaluator(*device)
	if !*reportOnly {
		cmd, err := experimentCommand()
		if err != nil {
			return fmt.Errorf("experiment: finding the msmtrain executable: %w", err)
		}
		err = experiment.Execute(c, runs, experiment.Options{Command: cmd, Stdout: stdout, Stderr: stderr, Probe: probe})
		var stopped *experiment.StoppedError
		if errors.As(err, &stopped) {
			return &exitCode{3, fmt.Errorf("experiment: %w:\n  %s", err, again)}
		}
		if err != nil {
			return err
		}
	}
	results, err := experiment.Collect(c, runs, probe, stderr)
	if err != nil {
		return err
	}
	rep := experiment.BuildReport(c, results)
	if err := experiment.WriteReport(rep, c.ReportDir()); err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	fmt.Fprintf(stdout, "report: %s\n", filepath.Join(c.ReportDir(), experiment.ReportMarkdown))
	if len(rep.Unfinished) > 0 {
		fmt.Fprintf(stdout, "not finished, left out of the report's figures (%d of %d runs): %s\n", len(rep.Unfinished), len(rep.Runs),
			strings.Join(rep.Unfinished, "; "))
	}
	if rep.Effect != nil {
		fmt.Fprintf(stdout, "effect at stage %s: %s\n", rep.Effect.Stage, rep.Effect.TestSays())
		fmt.Fprintln(stdout, rep.Effect.Line)
	}
	return nil
}

// writeExperimentSlurm writes the array script and says how to use it.
func writeExperimentSlurm(c *experiment.Config, runs []*experiment.Run, path, report string, stdout io.Writer) error {
	cmd, err := experimentCommand()
	if err != nil {
		return fmt.Errorf("experiment: finding the msmtrain executable: %w", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	// scripts/slurm/launch.sh beside the binary (a checkout with ./msmtrain at its root), or in the working directory.
	launch := ""
	for _, dir := range []string{filepath.Dir(cmd[0]), wd} {
		p := filepath.Join(dir, "scripts", "slurm", "launch.sh")
		if _, err := os.Stat(p); err == nil {
			launch = p
			break
		}
	}
	if err := experiment.WriteSlurm(c, runs, path, experiment.SlurmOptions{Exe: cmd[0], Launch: launch, WorkDir: wd, Command: report}); err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s (%d array tasks) and the runs' configs under %s\nsubmit: sbatch --gpus-per-node=N %s\nthen report: %s\n",
		path, len(runs), c.OutDir, path, report)
	return nil
}

// probeEvaluator scores probes on a stage's output as `msmtrain eval --probes` does, with the run's tokenizer and
// chat template, on device (default: the run's model.device), and writes the per-item results to
// RUN/<stage>/probe_items.jsonl.
func probeEvaluator(device string) experiment.ProbeFunc {
	return func(cfg *train.Config, stage, probes string) (infer.ProbeSummary, error) {
		var sum infer.ProbeSummary
		spec := device
		if spec == "" {
			spec = cfg.Model.Device
		}
		dev, err := processDevice(spec, 0)
		if err != nil {
			return sum, err
		}
		tok, tmpl, err := configChat(cfg)
		if err != nil {
			return sum, err
		}
		m, err := stageDecoder(cfg, stage, dev)
		if err != nil {
			return sum, err
		}
		defer m.Free()
		out := rundir.Dir(cfg.OutDir).Output(stage)
		if err := checkVocab(out, m.Config, tok); err != nil {
			return sum, err
		}
		items, err := infer.LoadProbes(probes, tmpl, tok, m.Config.MaxPositionEmbeddings)
		if err != nil {
			return sum, err
		}
		return scoreProbes(m, tok, tmpl, items, rundir.Dir(cfg.OutDir).ProbeItems(stage))
	}
}

// stageDecoder loads the model a finished stage produced: its Hugging Face model (full fine-tuning), or the base
// with its adapter. The base is model.path with the adapter on top, as `msmtrain eval --model BASE --adapter
// RUN/<stage>/output` loads it; when that is not the model the stage trained (a model.init base, or an earlier
// stage's adapter merged into the base by init = "merge"), the model is rebuilt as training built it: the base,
// then each merged adapter, then the stage's adapter.
func stageDecoder(cfg *train.Config, stage string, dev torch.Device) (*decoder.Model, error) {
	idx := slices.IndexFunc(cfg.Stages, func(s train.Stage) bool { return s.Name == stage })
	if idx < 0 {
		return nil, fmt.Errorf("no stage %q", stage)
	}
	d := rundir.Dir(cfg.OutDir)
	dt, err := modelDType(cfg.Model.DType)
	if err != nil {
		return nil, fmt.Errorf("model.dtype: %w", err)
	}
	if !cfg.LoRA.Enabled {
		return decoder.Load(d.Output(stage), decoder.Options{Device: dev, DType: dt})
	}
	merged := slices.ContainsFunc(cfg.Stages[1:idx+1], func(s train.Stage) bool { return s.Init == "merge" })
	if cfg.Model.Path != "" && !merged {
		return decoder.Load(cfg.Model.Path, decoder.Options{Device: dev, DType: dt, Adapter: d.Output(stage)})
	}
	built, err := buildModel(cfg, dev, nil)
	if err != nil {
		return nil, err
	}
	m := built.(*trainModel)
	for i := 1; i <= idx; i++ {
		if cfg.Stages[i].Init != "merge" {
			continue
		}
		if err := m.LoadOutput(d.Output(cfg.Stages[i-1].Name)); err != nil {
			m.Free()
			return nil, err
		}
		if err := m.MergeAdapter(); err != nil {
			m.Free()
			return nil, err
		}
	}
	if err := m.LoadOutput(d.Output(stage)); err != nil {
		m.Free()
		return nil, err
	}
	return m.Model, nil
}
