package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/experiment"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
)

const testProbes = `{"id": "p1", "messages": [{"role": "user", "content": "Is the model honest?"}], "choices": ["Yes, honest.", "maybe"], "values": ["frugality", "speed"]}
{"id": "p2", "messages": [{"role": "user", "content": "What is the answer?"}], "choices": ["no", "Tell me more", "The answer"], "values": ["speed", "frugality", "speed"]}
{"id": "p3", "messages": [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "Tell me more."}], "choices": ["helpful", "honest"], "values": ["care", "frugality"]}
`

// TestEvalProbes: msmtrain eval --probes writes the summary and per-item results of infer.ScoreProbes; --value
// narrows it to one label, and mistakes are refused.
func TestEvalProbes(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	probes := writeFile(t, filepath.Join(dir, "probes.jsonl"), testProbes)
	res := filepath.Join(dir, "probes.json")
	items := filepath.Join(dir, "items.jsonl")
	if out, err := runCmd(t, "eval", "--model", model, "--probes", probes, "--out", res, "--items", items); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var sum infer.ProbeSummary
	b, _ := os.ReadFile(res)
	if err := json.Unmarshal(b, &sum); err != nil || sum.N != 3 || len(sum.Values) != 3 || sum.Values["frugality"].N != 3 || sum.Values["care"].N != 1 {
		t.Fatalf("%v: %s", err, b)
	}
	if b, _ := os.ReadFile(items); bytes.Count(b, []byte("\n")) != 3 || !bytes.Contains(b, []byte(`"pick_value"`)) {
		t.Errorf("items:\n%s", b)
	}
	out, err := runCmd(t, "eval", "--model", model, "--probes", probes, "--value", "speed")
	if err != nil {
		t.Fatal(err)
	}
	var one struct {
		Value string `json:"value"`
		infer.ProbeValue
	}
	if err := json.Unmarshal([]byte(out), &one); err != nil || one.Value != "speed" || one.ProbeValue != sum.Values["speed"] {
		t.Errorf("--value speed: %v %s, want %+v", err, out, sum.Values["speed"])
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--probes", probes, "--value", "thrift"}, "--value thrift: no item of " + probes + " offers a choice labelled so (labels: care, frugality, speed)"},
		{[]string{"--probes", probes, "--mc", probes}, "give one of --data DIR, --mc FILE and --probes FILE"},
		{[]string{"--mc", probes, "--value", "speed"}, "--value goes with --probes"},
		{[]string{"--probes", writeFile(t, filepath.Join(dir, "bad.jsonl"), `{"id": "x", "messages": [{"role": "user", "content": "a"}], "choices": ["a", "b"], "values": ["v"]}`)},
			"bad.jsonl:1: item x: 1 values for 2 choices"},
	} {
		if _, err := runCmd(t, append([]string{"eval", "--model", model}, c.args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

// TestExperimentChild is the training process of TestExperimentResume: `msmtrain ARGS`, exiting with msmtrain's
// status (3 when stopped with its state saved).
func TestExperimentChild(t *testing.T) {
	if os.Getenv("MSM_EXPERIMENT_CHILD") == "" {
		t.Skip("runs only as the training process of TestExperimentResume")
	}
	args := append(flag.Args(), strings.Fields(os.Getenv("MSM_EXPERIMENT_CHILD_ARGS"))...)
	err := run(args, os.Stdout, os.Stderr)
	var ec *exitCode
	if errors.As(err, &ec) {
		fmt.Fprintln(os.Stderr, "msmtrain:", err)
		os.Exit(ec.code)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestExperimentResume runs a two-arm, two-seed experiment of two-stage LoRA runs on a tiny checkpoint, with its
// runs trained by child processes of this test binary: the first run is finished before the experiment starts,
// the second is stopped part way (--stop-after: exit status 3 stops the experiment, which says how to go on), and
// the experiment run again skips the finished run untouched, resumes the stopped one, trains the other two, scores
// the probes on every stage and reports on all four.
func TestExperimentResume(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: trains four small runs in child processes")
	}
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	docs, chats := writeTrainingData(t, dir, 16)
	mc := writeFile(t, filepath.Join(dir, "mc.jsonl"), `{"id": "q1", "messages": [{"role": "user", "content": "Is it honest?"}], "choices": ["Yes", "No"], "answer": 0}
`)
	writeFile(t, filepath.Join(dir, "probes.jsonl"), testProbes)
	writeTwoStageBase(t, dir, "exp-test", model, docs, chats, 3, fmt.Sprintf("eval_mc = %q\n", mc))
	exp := writeFile(t, filepath.Join(dir, "experiment.toml"), `name = "resume"
base = "base.toml"
out_dir = "out"
seeds = [1, 2]
[probes]
file = "probes.jsonl"
[[arms]]
name = "spec-a"
set = ["stages.msm.train.lr=0.02"]
[[arms]]
name = "aft-only"
skip_stages = ["msm"]
[effect]
metric = "probe.frugality.share"
a = "spec-a"
b = "aft-only"
`)
	out := filepath.Join(dir, "out")
	run := func(name string) string { return filepath.Join(out, name) }
	trainInChildren(t)

	// The runs' configs (--slurm writes them without training), the plan, and the first run trained by hand.
	if o, err := runCmd(t, "experiment", "--config", exp, "--slurm", filepath.Join(dir, "exp.sbatch")); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	if o, err := runCmd(t, "--config", run("spec-a/seed-1.toml")); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	o, err := runCmd(t, "experiment", "--config", exp, "--dry-run")
	if err != nil || !strings.Contains(o, "spec-a    1     msm,aft  finished") || !strings.Contains(o, "aft-only  1     aft      not started") {
		t.Fatalf("--dry-run: %v\n%s", err, o)
	}
	// --seeds: the same arms, other runs; seed 1 is the same run as before.
	o, err = runCmd(t, "experiment", "--config", exp, "--seeds", "3,1", "--dry-run")
	if err != nil || !strings.Contains(o, "spec-a    3     msm,aft  not started") || !strings.Contains(o, "spec-a    1     msm,aft  finished") ||
		strings.Contains(o, " 2     ") {
		t.Fatalf("--seeds 3,1 --dry-run: %v\n%s", err, o)
	}
	for _, bad := range []string{"1,1", "1,x", "-2"} {
		if o, err := runCmd(t, "experiment", "--config", exp, "--seeds", bad, "--dry-run"); err == nil || !strings.Contains(err.Error(), "--seeds") {
			t.Errorf("--seeds %s: %v\n%s", bad, err, o)
		}
	}
	first := snapshot(t, run("spec-a/seed-1"))

	// The second run stops after 2 of its 3 steps: the experiment stops with status 3 and says how to continue.
	t.Setenv("MSM_EXPERIMENT_CHILD_ARGS", "--stop-after 2")
	o, err = runCmd(t, "experiment", "--config", exp)
	var ec *exitCode
	if !errors.As(err, &ec) || ec.code != 3 || !strings.Contains(err.Error(), "run aft-only/seed-1 stopped") ||
		!strings.Contains(err.Error(), "msmtrain experiment --config "+exp) {
		t.Fatalf("%v\n%s", err, o)
	}
	if !strings.Contains(o, "[1/4] spec-a/seed-1: finished earlier, skipped, probe share after aft: ") {
		t.Errorf("progress:\n%s", o)
	}
	if cks, _ := rundir.Dir(run("aft-only/seed-1")).Checkpoints("aft"); len(cks) != 1 || rundir.CheckpointStep(cks[0]) != 2 {
		t.Fatalf("checkpoints of the stopped run: %v", cks)
	}

	// Again, to the end.
	t.Setenv("MSM_EXPERIMENT_CHILD_ARGS", "")
	start := time.Now()
	o, err = runCmd(t, "experiment", "--config", exp)
	if err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	t.Logf("experiment (3 runs, probes) in %s:\n%s", time.Since(start).Round(time.Millisecond), o)
	lines := strings.Split(strings.TrimSpace(o), "\n")
	for i, w := range []string{"[1/4] spec-a/seed-1: finished earlier, skipped", "[2/4] aft-only/seed-1: resuming (0 of 1 stages done)",
		"[3/4] spec-a/seed-2: training", "[4/4] aft-only/seed-2: training", "report: " + filepath.Join(out, "report", "experiment.md")} {
		if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: want %q in\n%s", i+1, w, o)
		}
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "effect: probe.frugality.share spec-a ") || !strings.Contains(last, " vs aft-only ") ||
		!strings.Contains(last, ", p = ") || strings.Contains(last, "NaN") {
		t.Errorf("last line %q", last)
	}
	if l := lines[len(lines)-2]; !strings.HasPrefix(l, "effect at stage aft: paired t over 2 seeds (Welch's p = ") {
		t.Errorf("the line before the effect: %q, want the test (paired: both arms ran seeds 1 and 2)", l)
	}
	if got := snapshot(t, run("spec-a/seed-1")); got != first {
		t.Errorf("the finished run changed:\n%s\nnow:\n%s", first, got)
	}
	// The stopped run resumed: each of its steps once, the log shows both starts.
	var steps []int
	for _, l := range readMetricRecords(t, run("aft-only/seed-1")) {
		steps = append(steps, l.Step)
	}
	if fmt.Sprint(steps) != "[1 2 3]" {
		t.Errorf("steps of the resumed run %v", steps)
	}
	if log, _ := os.ReadFile(filepath.Join(run("aft-only/seed-1"), rundir.ExperimentLog)); bytes.Count(log, []byte("=== msmtrain experiment")) != 2 {
		t.Errorf("log:\n%s", log)
	}

	// The report covers the four runs; the cached probe results equal msmtrain eval's on base + adapter.
	var rep experiment.Report
	b, err := os.ReadFile(filepath.Join(out, "report", experiment.ReportJSON))
	if err != nil || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(rep.Runs) != 4 || len(rep.Unfinished) != 0 || rep.Effect == nil || rep.Effect.NA != 2 || rep.Effect.NB != 2 || rep.Effect.Line != last {
		t.Errorf("report: %d runs, unfinished %v, effect %+v", len(rep.Runs), rep.Unfinished, rep.Effect)
	}
	want := map[string]int{"spec-a/msm": 2, "spec-a/aft": 2, "aft-only/aft": 2}
	for _, s := range rep.Stats {
		if s.Metric == "probe.frugality.share" || s.Metric == "mc_accuracy" && s.Stage == "aft" {
			if s.N != want[s.Arm+"/"+s.Stage] {
				t.Errorf("%s %s %s: n %d", s.Metric, s.Arm, s.Stage, s.N)
			}
		}
	}
	for _, f := range []string{experiment.ReportMarkdown, experiment.ReportPlot} {
		if _, err := os.Stat(filepath.Join(out, "report", f)); err != nil {
			t.Error(err)
		}
	}
	var cached infer.ProbeSummary
	b, _ = os.ReadFile(rundir.Dir(run("spec-a/seed-2")).ProbeResult("aft"))
	if err := json.Unmarshal(b, &cached); err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(dir, "cli.json")
	if o, err := runCmd(t, "eval", "--model", model, "--adapter", filepath.Join(run("spec-a/seed-2"), "aft", "output"), "--probes",
		filepath.Join(dir, "probes.jsonl"), "--out", cli); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	var direct infer.ProbeSummary
	b, _ = os.ReadFile(cli)
	if err := json.Unmarshal(b, &direct); err != nil || len(direct.Values) != len(cached.Values) {
		t.Fatalf("%v: %s vs %+v", err, b, cached)
	}
	for v, d := range direct.Values {
		c := cached.Values[v]
		if c.N != d.N || c.Share != d.Share || c.ShareNorm != d.ShareNorm || math.Abs(c.Margin-d.Margin) > 1e-5 {
			t.Errorf("%s: experiment %+v, msmtrain eval %+v", v, c, d)
		}
	}
	if _, err := os.Stat(rundir.Dir(run("spec-a/seed-2")).ProbeItems("aft")); err != nil {
		t.Error(err)
	}

	// --report-only reads everything back (no training, probes from the cache) and ends with the same line.
	o, err = runCmd(t, "experiment", "--config", exp, "--report-only")
	if err != nil || !strings.HasSuffix(strings.TrimSpace(o), last) || strings.Contains(o, "training") {
		t.Errorf("--report-only: %v\n%s", err, o)
	}
}

// snapshot describes a run directory's files by path, size and modification time.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		// the experiment adds its probe results and their per-item file; the trainer's files stay as they were
		if fi.IsDir() || strings.HasSuffix(rel, "-probes.json") || strings.HasSuffix(rel, rundir.ProbeItemsFile) || rel == rundir.LockFile {
			return nil
		}
		fmt.Fprintf(&b, "%s %d %s\n", rel, fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// readMetricRecords reads a run's train records.
func readMetricRecords(t *testing.T, dir string) []rundir.TrainRecord {
	t.Helper()
	f, err := os.Open(rundir.Dir(dir).Metrics())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := rundir.ReadMetrics(f, dir)
	if err != nil {
		t.Fatal(err)
	}
	return m.Train
}

// TestExperimentSharedStages: two arms that differ only in their AFT stage, trained for real by child processes:
// the second is given the first's MSM stage (the trainer skips it) and ends with the model the first arm's
// stage produced; when the MSM inputs change between the two, sharing is refused, naming the changed file.
func TestExperimentSharedStages(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: trains small runs in child processes")
	}
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	docs, chats := writeTrainingData(t, dir, 16)
	writeTwoStageBase(t, dir, "share-test", model, docs, chats, 2, "")
	exp := writeFile(t, filepath.Join(dir, "experiment.toml"), `base = "base.toml"
out_dir = "out"
seeds = [1]
[[arms]]
name = "a"
set = ["stages.aft.train.lr=0.02"]
[[arms]]
name = "b"
set = ["stages.aft.train.lr=0.03"]
`)
	trainInChildren(t)
	o, err := runCmd(t, "experiment", "--config", exp)
	if err != nil || !strings.Contains(o, "[2/2] b/seed-1: training (msm shared with a/seed-1)") {
		t.Fatalf("%v\n%s", err, o)
	}
	a, b := rundir.Dir(filepath.Join(dir, "out", "a", "seed-1")), rundir.Dir(filepath.Join(dir, "out", "b", "seed-1"))
	if log, _ := os.ReadFile(b.ExperimentLogPath()); !strings.Contains(string(log), "stage msm: already complete") {
		t.Errorf("b trained msm again:\n%s", log)
	}
	if sum, err := rundir.ReadSummary(b.Summary()); err != nil || len(sum.Stages) != 2 || sum.Stages[0].SharedFrom != a.Stage("") ||
		sum.Stages[1].SharedFrom != "" {
		t.Errorf("b's summary: %+v (%v)", sum, err)
	}
	for _, f := range []string{"adapter_model.safetensors", "adapter_config.json"} {
		x, _ := os.ReadFile(filepath.Join(a.Output("msm"), f))
		y, _ := os.ReadFile(filepath.Join(b.Output("msm"), f))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("msm/output/%s of b is not a's", f)
		}
	}
	// The MSM documents change: a's stage is no longer what b would train.
	if err := os.RemoveAll(b.Stage("")); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(docs, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, `{"text": "One more rule."}`)
	f.Close()
	o, err = runCmd(t, "experiment", "--config", exp)
	if err == nil || !strings.Contains(err.Error(), "run b/seed-1 would be given stage msm of a/seed-1, which was trained on other data") ||
		!strings.Contains(err.Error(), docs+": changed") {
		t.Fatalf("changed data: %v\n%s", err, o)
	}
}

// writeTwoStageBase writes dir/base.toml: LoRA runs of model in two stages, msm on docs and aft on chats, of steps
// optimizer steps each; aftExtra is added to the aft stage's keys.
func writeTwoStageBase(t *testing.T, dir, name, model, docs, chats string, steps int, aftExtra string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "base.toml"), fmt.Sprintf(`name = %q
[model]
path = %q
[lora]
enabled = true
r = 4
alpha = 8
targets = ["q_proj", "v_proj"]
[train]
seq_len = 48
micro_batch = 2
steps = %d
lr = 1e-2
[log]
progress = "lines"
[[stages]]
name = "msm"
kind = "msm"
[stages.data]
sources = [{ name = "docs", path = %q, kind = "documents" }]
[[stages]]
name = "aft"
kind = "aft"
%s[stages.data]
sources = [{ name = "chats", path = %q, kind = "chats" }]
`, name, model, steps, docs, aftExtra, chats))
}

// trainInChildren makes msmtrain experiment train its runs by TestExperimentChild processes of this test binary.
func trainInChildren(t *testing.T) {
	experimentCommand = func() ([]string, error) { return []string{os.Args[0], "-test.run=^TestExperimentChild$", "--"}, nil }
	t.Cleanup(func() {
		experimentCommand = func() ([]string, error) {
			exe, err := os.Executable()
			return []string{exe}, err
		}
	})
	t.Setenv("MSM_EXPERIMENT_CHILD", "1")
}
