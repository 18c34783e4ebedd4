package experiment

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/msmtrain/msmtrain/data/atomicfile"
)

// SlurmOptions say how the array script finds msmtrain.
type SlurmOptions struct {
	Exe     string // the msmtrain binary (MSMTRAIN in the job overrides it)
	Launch  string // scripts/slurm/launch.sh, when known; else the job looks in the directory it was submitted from
	WorkDir string // the directory the runs' relative paths are relative to (the working directory now)
	Command string // the command that reports from the finished runs, for the script's comment
}

// WriteSlurm writes every run's config (WriteConfigs) and an sbatch array script at path: one array task per run,
// in the experiment's order, each running scripts/slurm/launch.sh on that run's config, which starts one msmtrain
// process per GPU of the task and requeues the task when msmtrain stops on a signal with its state saved (exit
// status 3). The resource requests are defaults, for the sbatch command line to override.
func WriteSlurm(c *Config, runs []*Run, path string, o SlurmOptions) error {
	if err := WriteConfigs(runs); err != nil {
		return err
	}
	logs := filepath.Join(c.OutDir, "slurm")
	if err := os.MkdirAll(logs, 0o755); err != nil { // Slurm opens the log before the script runs
		return err
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("#!/bin/bash\n")
	p("# msmtrain experiment %s: one array task per run (arm x seed), written by msmtrain experiment --slurm from\n", c.Name)
	p("# %s. Submit it, then report from the finished runs:\n#\n", c.Path)
	p("#   sbatch --gpus-per-node=1 %s\n", path)
	p("#   %s\n#\n", o.Command)
	p("# Each task trains its run with scripts/slurm/launch.sh (one msmtrain process per GPU of the task); when\n")
	p("# msmtrain stops on a signal with its state saved (exit status 3: SIGUSR1 before the time limit, SIGTERM on\n")
	p("# preemption) the task is requeued and resumes. A finished run's task only checks it and exits. Logs:\n")
	p("# %s/%%x-%%A_%%a.out (appended to on requeue).\n", logs)
	p("#SBATCH --job-name=msm-%s\n", c.Name)
	p("#SBATCH --array=0-%d\n", len(runs)-1)
	p("#SBATCH --nodes=1\n#SBATCH --gpus-per-node=1\n#SBATCH --cpus-per-gpu=8\n#SBATCH --time=24:00:00\n")
	p("#SBATCH --signal=USR1@300\n#SBATCH --requeue\n#SBATCH --open-mode=append\n")
	p("#SBATCH --output=%s/%%x-%%A_%%a.out\n", logs)
	p("set -uo pipefail\n")
	p("configs=(\n")
	for _, r := range runs {
		p("  %s # %d: %s\n", shellQuote(r.ConfigFile), r.Index, r.Name())
	}
	p(")\n")
	p("task=${SLURM_ARRAY_TASK_ID:?not an array task: submit with sbatch}\n")
	p("[ \"$task\" -lt ${#configs[@]} ] || { echo \"msmtrain experiment: no run $task (runs 0-%d)\" >&2; exit 1; }\n", len(runs)-1)
	p("cd %s || exit 1 # the runs' relative paths are relative to it\n", shellQuote(o.WorkDir))
	p("export MSMTRAIN=${MSMTRAIN:-%s}\n", shellQuote(o.Exe))
	if o.Launch != "" {
		p("launch=%s\n", shellQuote(o.Launch))
		p("[ -r \"$launch\" ] || launch=${SLURM_SUBMIT_DIR:-.}/scripts/slurm/launch.sh\n")
	} else {
		p("launch=${SLURM_SUBMIT_DIR:-.}/scripts/slurm/launch.sh\n")
	}
	p("[ -r \"$launch\" ] || { echo \"msmtrain experiment: $launch not found: submit from the msmtrain repository root\" >&2; exit 1; }\n")
	p("echo \"msmtrain experiment %s: task $task: ${configs[$task]}\"\n", c.Name)
	p("exec bash \"$launch\" \"${configs[$task]}\"\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, []byte(b.String())); err != nil {
		return err
	}
	return os.Chmod(path, 0o755)
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
