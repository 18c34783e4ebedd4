// Package slurm tests the Slurm batch scripts: each runs with fake SLURM_* variables and a fake srun and scontrol
// on PATH, which record how they were called.
package slurm

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const fakeSrun = `#!/bin/bash
printf '%s\n' "$@" > "$FAKE_LOG/srun.args"
echo "OMP_NUM_THREADS=$OMP_NUM_THREADS SLURM_CPUS_PER_GPU=${SLURM_CPUS_PER_GPU-unset}" > "$FAKE_LOG/srun.env"
case $FAKE_SRUN in
signal) kill -TERM $PPID; sleep 1; exit 3 ;; # the batch shell is signalled while msmtrain saves
*) exit "$FAKE_SRUN" ;;
esac
`

const fakeScontrol = `#!/bin/bash
echo "$@" >> "$FAKE_LOG/scontrol.args"
`

type result struct {
	status   int
	srun     []string // srun's arguments, nil if it did not run
	env      string
	scontrol string
	output   string
}

// run runs script (a path from the repository root) with env as the job's variables and srun exiting with
// srunExit ("signal": it sends SIGTERM to the batch shell, then exits 3).
func run(t *testing.T, script, srunExit string, env ...string) result {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	logs := filepath.Join(dir, "log")
	for _, d := range []string{bin, logs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range map[string]string{"bin/srun": fakeSrun, "bin/scontrol": fakeScontrol, "msmtrain": "#!/bin/sh\n",
		"run.toml": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", filepath.Join(root, script), "run.toml", "--set", "train.lr=1e-4")
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + bin + ":" + os.Getenv("PATH"), "FAKE_LOG=" + logs, "FAKE_SRUN=" + srunExit,
		"SLURM_SUBMIT_DIR=" + root, "SLURM_JOB_ID=77"}, env...)
	out, err := cmd.CombinedOutput()
	r := result{output: string(out)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.status = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.status = 128 + int(ws.Signal()) // as a shell reports it
		}
	} else if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(logs, "srun.args")); err == nil {
		r.srun = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	b, _ := os.ReadFile(filepath.Join(logs, "srun.env"))
	r.env = strings.TrimSpace(string(b))
	b, _ = os.ReadFile(filepath.Join(logs, "scontrol.args"))
	r.scontrol = strings.TrimSpace(string(b))
	return r
}

var scripts = []string{"scripts/slurm/msm-1node.sbatch", "scripts/slurm/msm-multinode.sbatch"}

// TestTasksFollowGPUs: one process per allocated GPU on each node, whichever variable tells the GPU count, with
// the node's CPUs split between them; no GPU count is an error that says how to submit.
func TestTasksFollowGPUs(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		// want: srun's options before the program
		want string
	}{
		{"8 GPUs on one node", []string{"SLURM_GPUS_ON_NODE=8", "SLURM_CPUS_ON_NODE=64", "SLURM_JOB_NUM_NODES=1"},
			"--nodes=1 --ntasks=8 --ntasks-per-node=8 --cpus-per-task=8"},
		{"typed count, 2 nodes", []string{"SLURM_GPUS_PER_NODE=h100:4", "SLURM_CPUS_ON_NODE=32", "SLURM_JOB_NUM_NODES=2"},
			"--nodes=2 --ntasks=8 --ntasks-per-node=4 --cpus-per-task=8"},
		{"visible devices", []string{"CUDA_VISIBLE_DEVICES=0,1", "SLURM_CPUS_ON_NODE=6", "SLURM_NNODES=1"},
			"--nodes=1 --ntasks=2 --ntasks-per-node=2 --cpus-per-task=3"},
	}
	for _, script := range scripts {
		for _, c := range cases {
			t.Run(filepath.Base(script)+"/"+c.name, func(t *testing.T) {
				r := run(t, script, "0", append(c.env, "SLURM_CPUS_PER_GPU=8")...)
				if r.status != 0 || r.srun == nil {
					t.Fatalf("status %d, srun %q\n%s", r.status, r.srun, r.output)
				}
				got := strings.Join(r.srun, " ")
				want := c.want + " --kill-on-bad-exit=0 --wait=120 ./msmtrain --config run.toml --set train.lr=1e-4"
				if got != want {
					t.Fatalf("srun %s\nwant %s", got, want)
				}
				cpus := c.want[strings.LastIndex(c.want, "=")+1:]
				if r.env != "OMP_NUM_THREADS="+cpus+" SLURM_CPUS_PER_GPU=unset" {
					t.Fatalf("srun's environment: %s", r.env)
				}
				if r.scontrol != "" {
					t.Fatalf("requeued after a clean exit: %s", r.scontrol)
				}
			})
		}
		t.Run(filepath.Base(script)+"/no GPU count", func(t *testing.T) {
			r := run(t, script, "0", "SLURM_CPUS_ON_NODE=8")
			if r.status != 1 || r.srun != nil || !strings.Contains(r.output, "--gpus-per-node") {
				t.Fatalf("status %d, srun %q\n%s", r.status, r.srun, r.output)
			}
		})
	}
}

// TestRequeueOnStop: status 3 from msmtrain requeues the job and is the script's status, also when the batch
// shell itself gets SIGTERM while msmtrain is saving (it must wait for msmtrain rather than die with 143); other
// statuses do not requeue.
func TestRequeueOnStop(t *testing.T) {
	for _, script := range scripts {
		for _, c := range []struct {
			srun    string
			status  int
			requeue bool
		}{{"3", 3, true}, {"signal", 3, true}, {"1", 1, false}, {"0", 0, false}} {
			t.Run(fmt.Sprintf("%s/srun %s", filepath.Base(script), c.srun), func(t *testing.T) {
				r := run(t, script, c.srun, "SLURM_GPUS_ON_NODE=2", "SLURM_CPUS_ON_NODE=4")
				requeued := r.scontrol == "requeue 77"
				if r.status != c.status || requeued != c.requeue || (!requeued && r.scontrol != "") {
					t.Fatalf("status %d (want %d), scontrol %q (requeue wanted: %v)\n%s", r.status, c.status, r.scontrol,
						c.requeue, r.output)
				}
			})
		}
	}
}

// TestHeaders: the log goes where sbatch can open it at submission (no directory that only the script would
// make), a requeued job appends to it, the task count is not fixed in the header, and the scripts parse.
func TestHeaders(t *testing.T) {
	for _, script := range append(scripts, "scripts/slurm/launch.sh") {
		if out, err := exec.Command("bash", "-n", filepath.Join("../..", script)).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", script, err, out)
		}
	}
	for _, script := range scripts {
		f, err := os.Open(filepath.Join("../..", script))
		if err != nil {
			t.Fatal(err)
		}
		opts := map[string]string{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if o, ok := strings.CutPrefix(sc.Text(), "#SBATCH --"); ok {
				k, v, _ := strings.Cut(o, "=")
				opts[k] = v
			}
		}
		f.Close()
		if out := opts["output"]; out == "" || strings.Contains(out, "/") {
			t.Errorf("%s: --output=%s: sbatch opens it before the script runs, so it must not need a directory", script, out)
		}
		if opts["open-mode"] != "append" {
			t.Errorf("%s: a requeued job overwrites its log (want --open-mode=append)", script)
		}
		for _, fixed := range []string{"ntasks-per-node", "ntasks", "ntasks-per-gpu"} {
			if v, ok := opts[fixed]; ok {
				t.Errorf("%s: --%s=%s fixes the task count; it follows the allocated GPUs", script, fixed, v)
			}
		}
		if _, ok := opts["requeue"]; !ok || opts["signal"] == "" {
			t.Errorf("%s: want --signal and --requeue: %v", script, opts)
		}
	}
}
