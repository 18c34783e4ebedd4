package experiment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
)

// fakeTrainer stands in for `msmtrain --config FILE`: it writes what a finished run leaves in its directory
// (config.toml, each stage's output, metrics.jsonl line, eval_mc result, summary.json and DONE with a held-out
// loss, summary.json;
// a stage with a DONE file is skipped, as msmtrain does), or with FAKE_MODE=wait
// waits for SIGTERM and exits 3 as msmtrain does after saving a checkpoint.
const fakeTrainer = `
cfg=$2
dir=${cfg%.toml}
mkdir -p "$dir"
echo "fake trainer $*"
if [ "${FAKE_MODE:-}" = wait ]; then
  trap 'echo "got TERM"; exit 3' TERM
  cp "$cfg" "$dir/config.toml"
  touch "$dir/started"
  for i in $(seq 300); do sleep 0.1; done
  exit 1
fi
case $dir in */aft-only/*) stages=aft ;; *) stages="msm aft" ;; esac
cp "$cfg" "$dir/config.toml"
all=
for s in $stages; do
  if [ -f "$dir/$s/DONE" ]; then
    echo "stage $s: already complete, skipping"
    all="$all${all:+,}$(cat "$dir/$s/DONE")"
    continue
  fi
  mkdir -p "$dir/$s/output"
  echo "weights of $dir $s" > "$dir/$s/output/model.safetensors"
  echo "{\"kind\":\"train\",\"stage\":\"$s\",\"step\":1,\"loss\":${#dir}}" >> "$dir/metrics.jsonl"
  mkdir -p "$dir/eval"
  echo "{\"n\":4,\"mc_accuracy\":0.$(( ${#dir} % 10 )),\"mc_accuracy_norm\":0.5,\"mc_margin\":0.1}" > "$dir/eval/$s-mc.json"
  loss=$(( ${#dir} % 7 ))
  echo "{\"name\":\"$s\",\"kind\":\"msm\",\"steps\":2,\"final_eval_loss\":1.$loss}" > "$dir/$s/summary.json"
  cp "$dir/$s/summary.json" "$dir/$s/DONE"
  all="$all${all:+,}$(cat "$dir/$s/summary.json")"
done
echo "{\"stages\":[$all]}" > "$dir/summary.json"
`

// fakeProbes scores a run by its arm and seed: spec-a prefers frugality more, and more after aft; the seed adds to
// every arm.
func fakeProbes(calls *int) ProbeFunc {
	return func(cfg *train.Config, stage, probes string) (infer.ProbeSummary, error) {
		*calls++
		share := 0.5 + 0.01*float64(cfg.Seed)
		if strings.Contains(cfg.OutDir, "/spec-a/") {
			share += 0.2 + 0.002*float64(cfg.Seed*cfg.Seed) // a seed's runs differ by more than a constant
			if stage == "aft" {
				share += 0.1
			}
		}
		return infer.ProbeSummary{N: 2, Values: map[string]infer.ProbeValue{
			"frugality": {N: 2, Share: share, ShareNorm: share, Margin: share - 0.5},
			"speed":     {N: 2, Share: 1 - share, ShareNorm: 1 - share, Margin: 0.5 - share},
		}}, nil
	}
}

func fakeOptions(stdout io.Writer, calls *int, env ...string) Options {
	return Options{Command: []string{"/bin/sh", "-c", fakeTrainer, "sh"}, Env: env, Stdout: stdout, Stderr: stdout,
		Probe: fakeProbes(calls)}
}

// TestExecuteAndReport: runs are trained in order by child processes, finished ones are skipped, probes are
// scored once per stage and cached, and the report's statistics and effect line follow from the runs' values.
func TestExecuteAndReport(t *testing.T) {
	f := newFixture(t, strings.Replace(twoArms, "seeds = [1, 2]", "seeds = [1, 2, 3]", 1))
	c, runs := f.expand(t)
	var out bytes.Buffer
	calls := 0
	if err := Execute(c, runs, fakeOptions(&out, &calls)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "[1/6] spec-a/seed-1: training, log ") ||
		!strings.Contains(lines[0], "probe share after aft: frugality 0.812, speed 0.188") {
		t.Fatalf("progress:\n%s", out.String())
	}
	if calls != 9 { // 3 runs of 2 stages, 3 of 1
		t.Errorf("%d probe evaluations, want 9", calls)
	}
	log, _ := os.ReadFile(rundir.Dir(runs[0].Dir).ExperimentLogPath())
	if !strings.Contains(string(log), "fake trainer --config "+runs[0].ConfigFile) {
		t.Errorf("log: %s", log)
	}
	// A second run skips every run and scores nothing again.
	out.Reset()
	if err := Execute(c, runs, fakeOptions(&out, &calls)); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "finished earlier, skipped") != 6 || calls != 9 {
		t.Fatalf("re-run (%d evaluations):\n%s", calls, out.String())
	}
	// A changed probe file is scored again.
	if err := os.WriteFile(c.Probes.File, []byte(probeLines+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	results, err := Collect(c, runs, fakeProbes(&calls), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 18 {
		t.Errorf("%d evaluations after the probes changed, want 18", calls)
	}
	rep := BuildReport(c, results)
	// spec-a after aft: 0.8 + seed/100 + seed²/500 = 0.812, 0.828, 0.848 (mean 0.8293, sd 0.0180); aft-only: 0.51,
	// 0.52, 0.53 (sd 0.01). Both arms have seeds 1-3: the test is paired, on the differences 0.302, 0.308, 0.318.
	specA, aftOnly := []float64{0.812, 0.828, 0.848}, []float64{0.51, 0.52, 0.53}
	paired := PairedTest(specA, aftOnly)
	if rep.Effect == nil || rep.Effect.Line != "effect: probe.frugality.share spec-a 0.829±0.018 vs aft-only 0.520±0.010, difference 0.309, p = "+
		formatP(paired.P) {
		t.Fatalf("effect %+v", rep.Effect)
	}
	if e := rep.Effect; e.Test != TestPaired || e.Pairs != 3 || float64(e.DF) != 2 || math.Abs(float64(e.T)-paired.T) > 1e-6*paired.T ||
		math.Abs(float64(e.WelchP)-WelchTest(specA, aftOnly).P) > 1e-9 {
		t.Errorf("effect test %+v, want paired t = %v on 2 df", e.Comparison, paired.T)
	}
	if p := float64(rep.Effect.P); !(p > 0 && p < 1e-3) {
		t.Errorf("p %v", p)
	}
	if got := rep.Effect.TestSays(); got != "paired t over 3 seeds (Welch's p = "+formatP(WelchTest(specA, aftOnly).P)+")" {
		t.Errorf("test says %q", got)
	}
	var found bool
	for _, s := range rep.Stats {
		if s.Arm == "spec-a" && s.Stage == "msm" && s.Metric == "probe.speed.margin" {
			found = true
			// 0.5 - (0.7 + seed/100 + seed²/500): -0.212, -0.228, -0.248; mean -0.688/3, deviations 0.052/3, 0.004/3,
			// -0.056/3: sd = sqrt((0.052² + 0.004² + 0.056²) / 9 / 2)
			mean, sd := -0.688/3, math.Sqrt(0.005856/18)
			if s.N != 3 || math.Abs(float64(s.Mean)-mean) > 1e-9 || math.Abs(float64(s.SD)-sd) > 1e-9 || s.Values[2].Seed != 3 {
				t.Errorf("%+v", s)
			}
		}
		if s.Arm == "aft-only" && s.Stage == "msm" {
			t.Errorf("aft-only has no msm stage: %+v", s)
		}
	}
	if !found {
		t.Error("no probe.speed.margin of spec-a at msm")
	}
	if err := WriteReport(rep, c.ReportDir()); err != nil {
		t.Fatal(err)
	}
	checkReportFiles(t, c.ReportDir(), rep)
}

func checkReportFiles(t *testing.T, dir string, rep *Report) {
	t.Helper()
	md, err := os.ReadFile(filepath.Join(dir, ReportMarkdown))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{rep.Effect.Line, "paired", "Welch", "2^3 = 8", "C(6, 3) = 20", "0.25", "0.10", "![probe.frugality.share",
		"### probe.frugality.share", "| paired t |"} {
		if !strings.Contains(string(md), w) {
			t.Errorf("report.md does not say %q:\n%s", w, md)
		}
	}
	var back Report
	b, err := os.ReadFile(filepath.Join(dir, ReportJSON))
	if err != nil || json.Unmarshal(b, &back) != nil || back.Effect == nil || back.Effect.Line != rep.Effect.Line || len(back.Runs) != len(rep.Runs) {
		t.Errorf("experiment.json: %v\n%s", err, b)
	}
	pf, err := os.Open(filepath.Join(dir, ReportPlot))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	img, err := png.Decode(pf)
	if err != nil || img.Bounds().Dx() < 300 {
		t.Errorf("plot: %v", err)
	}
}

// TestReportUnfinished: a run that is not finished is listed and left out; an arm with one finished run has a
// mean and no spread, and the effect line says n/a for what is undefined instead of NaN.
func TestReportUnfinished(t *testing.T) {
	f := newFixture(t, twoArms)
	c, runs := f.expand(t)
	var out bytes.Buffer
	calls := 0
	// Only the first three runs: aft-only/seed-2 is not started.
	if err := Execute(c, runs[:3], fakeOptions(&out, &calls)); err != nil {
		t.Fatal(err)
	}
	// spec-a/seed-2 looks interrupted in its second stage.
	d := rundir.Dir(runs[2].Dir)
	for _, p := range []string{d.Summary(), d.Done("aft")} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	results, err := Collect(c, runs, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep := BuildReport(c, results)
	if got := strings.Join(rep.Unfinished, "; "); got != "spec-a/seed-2 (partial, done: msm); aft-only/seed-2 (not started)" {
		t.Errorf("unfinished: %s", got)
	}
	want := "effect: probe.frugality.share spec-a 0.812±n/a vs aft-only 0.510±n/a, difference 0.302, p = n/a"
	if rep.Effect.Line != want || rep.Effect.Note != "fewer than 2 values in a group" {
		t.Errorf("effect %q (%s), want %q", rep.Effect.Line, rep.Effect.Note, want)
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md, ""); err != nil {
		t.Fatal(err)
	}
	if s := md.String(); strings.Contains(s, "NaN") || !strings.Contains(s, "Not finished") || !strings.Contains(s, "aft-only/seed-2 (not started)") {
		t.Errorf("report:\n%s", s)
	}
	b, err := json.Marshal(rep)
	if err != nil || strings.Contains(string(b), "NaN") {
		t.Errorf("json: %v", err)
	}
	// No finished run at all: everything n/a, still a plot and a report.
	results, err = Collect(c, runs[3:], nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep = BuildReport(c, results)
	if rep.Effect.Line != "effect: probe.frugality.share spec-a n/a vs aft-only n/a, difference n/a, p = n/a" {
		t.Errorf("no runs: %q", rep.Effect.Line)
	}
	if err := WriteReport(rep, filepath.Join(t.TempDir(), "r")); err != nil {
		t.Fatal(err)
	}
}

// TestExecuteSignal: SIGTERM to the experiment reaches the training process, whose exit status 3 stops the
// experiment with a StoppedError naming the run; running it again resumes that run.
func TestExecuteSignal(t *testing.T) {
	f := newFixture(t, twoArms)
	c, runs := f.expand(t)
	calls := 0
	var out bytes.Buffer
	if err := Execute(c, runs[:1], fakeOptions(&out, &calls)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var out2 bytes.Buffer
	go func() { done <- Execute(c, runs, fakeOptions(&out2, &calls, "FAKE_MODE=wait")) }()
	started := filepath.Join(runs[1].Dir, "started")
	for i := 0; ; i++ {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if i > 200 {
			t.Fatal("the training process did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var stopped *StoppedError
	select {
	case err := <-done:
		if !errors.As(err, &stopped) || stopped.Run != "aft-only/seed-1" || !strings.Contains(err.Error(), "run the same command again") {
			t.Fatalf("%v\n%s", err, out2.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the experiment did not stop")
	}
	log, _ := os.ReadFile(rundir.Dir(runs[1].Dir).ExperimentLogPath())
	if !strings.Contains(string(log), "got TERM") {
		t.Errorf("the training process did not get SIGTERM:\n%s", log)
	}
	if !strings.Contains(out2.String(), "[1/4] spec-a/seed-1: finished earlier, skipped") || !strings.Contains(out2.String(), "stopped after") {
		t.Errorf("progress:\n%s", out2.String())
	}
	// Again: the interrupted run resumes (its config.toml is there), the rest are trained.
	out.Reset()
	if err := Execute(c, runs, fakeOptions(&out, &calls)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "[2/4] aft-only/seed-1: resuming (0 of 1 stages done)") {
		t.Errorf("progress:\n%s", out.String())
	}
}

// TestFinishedWithOtherConfig: a finished run whose config differs from the experiment's in a way that changes the
// training is an error naming the key, not a result.
func TestFinishedWithOtherConfig(t *testing.T) {
	f := newFixture(t, twoArms)
	c, runs := f.expand(t)
	calls := 0
	if err := Execute(c, runs[:1], fakeOptions(io.Discard, &calls)); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(f.exp)
	if err := os.WriteFile(f.exp, []byte(strings.Replace(string(text), "train.lr=0.003", "train.lr=0.004", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, runs = f.expand(t)
	_, err := Collect(c, runs, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "spec-a/seed-1 finished with another config") || !strings.Contains(err.Error(), "lr: 0.003 -> 0.004") {
		t.Fatalf("error %v", err)
	}
}

// TestWriteSlurm: the array script has a task per run; task i execs launch.sh on run i's config from the working
// directory, with MSMTRAIN set.
func TestWriteSlurm(t *testing.T) {
	f := newFixture(t, twoArms)
	c, runs := f.expand(t)
	launch := filepath.Join(f.dir, "launch.sh")
	if err := os.WriteFile(launch, []byte("echo \"launch $* in $PWD with $MSMTRAIN\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(f.dir, "exp.sbatch")
	if err := WriteSlurm(c, runs, script, SlurmOptions{Exe: "/opt/msm train", Launch: launch, WorkDir: f.dir,
		Command: "msmtrain experiment --config x --report-only"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(script)
	for _, w := range []string{"#SBATCH --array=0-3\n", "#SBATCH --requeue\n", "#SBATCH --signal=USR1@300\n",
		"#SBATCH --output=" + filepath.Join(c.OutDir, "slurm") + "/%x-%A_%a.out\n", "--report-only"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("script lacks %q:\n%s", w, b)
		}
	}
	for _, r := range runs {
		if _, err := os.Stat(r.ConfigFile); err != nil {
			t.Errorf("config not written: %v", err)
		}
	}
	for i, r := range runs {
		cmd := exec.Command("bash", script)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), fmt.Sprintf("SLURM_ARRAY_TASK_ID=%d", i), "MSMTRAIN=")
		o, err := cmd.CombinedOutput()
		want := fmt.Sprintf("launch %s in %s with /opt/msm train", r.ConfigFile, f.dir)
		if err != nil || !strings.Contains(string(o), want) {
			t.Errorf("task %d: %v\n%s\nwant %q", i, err, o, want)
		}
	}
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "SLURM_ARRAY_TASK_ID=4")
	if o, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(o), "no run 4") {
		t.Errorf("task 4: %v %s", err, o)
	}
}

func TestFormatP(t *testing.T) {
	for p, want := range map[float64]string{0.5: "0.50", 0.0996: "0.10", 0.012: "0.012", 0.03548: "0.035", 1: "1.0",
		0.00031: "0.00031", 4.2e-7: "4.2e-07", math.NaN(): "n/a", 0: "0"} {
		if got := formatP(p); got != want {
			t.Errorf("%v: %q, want %q", p, got, want)
		}
	}
}
