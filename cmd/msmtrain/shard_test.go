package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/testenv"
)

// TestShardedTraining runs the two-stage LoRA pipeline (MSM on two sources with held-out evaluations, AFT with
// end-of-stage multiple choice and generation) as one unsharded process and as 2 and 3 processes over Gloo with
// dist.shard = "full": the same per-step losses and held-out losses (1e-5 relative), the same adapters (1e-5), the
// same multiple-choice results and greedy answers; also when stopped and resumed with another number of processes
// or without sharding.
func TestShardedTraining(t *testing.T) {
	if testenv.IsWorker() {
		t.Skip("this process is one of the workers that TestShardedTraining starts")
	}
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	data := writeTwoSourceData(t, dir, 36, true)
	config := func(out, shard string, lora bool) string {
		return writeFile(t, filepath.Join(dir, filepath.Base(out)+".toml"), fmt.Sprintf(`out_dir = %q
[model]
path = %q
checkpointing = true
[lora]
enabled = %v
r = 4
alpha = 8
[train]
seq_len = 64
micro_batch = 1
global_batch = 6
mode = "pad"
steps = 4
lr = 1e-2
[eval]
every = 2
[dist]
shard = %q
[log]
progress = "lines"
`, out, model, lora, shard)+data.stages())
	}
	ref := filepath.Join(dir, "ref")
	if o, err := runCmd(t, "--config", config(ref, "none", true)); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	for _, world := range []int{2, 3} {
		out := filepath.Join(dir, fmt.Sprintf("sharded%d", world))
		printed := testenv.StartWorkers(t, "TestShardedTrainingWorker", world, "MSM_SHARD_CONFIG="+config(out, "full", true))
		var held, whole float64
		if i := strings.Index(printed[0], "this process holds "); i < 0 ||
			!scanned(fmt.Sscanf(printed[0][i:], "this process holds %f MiB of the %f MiB", &held, &whole)) ||
			held > whole/float64(world)*1.05+0.01 {
			t.Fatalf("%d processes: rank 0 holds %v of %v MiB of base weights:\n%s", world, held, whole, printed[0])
		}
		t.Logf("%d processes: rank 0 holds %.4f of the %.4f MiB of base weights", world, held, whole)
		compareRuns(t, ref, out)
	}
	// Stopped after 3 steps (a checkpoint) by 2 sharded processes and resumed by 2 or 3, sharded or not: the same run.
	for _, c := range []struct {
		world int
		shard string
	}{{2, "full"}, {2, "none"}, {3, "full"}} {
		out := filepath.Join(dir, fmt.Sprintf("resumed-%d-%s", c.world, c.shard))
		cfg := config(out, "full", true)
		testenv.StartWorkers(t, "TestShardedTrainingWorker", 2, "MSM_SHARD_CONFIG="+cfg, "MSM_SHARD_ARGS=--stop-after 3", "MSM_SHARD_STOP=1")
		if cks, _ := rundir.Dir(out).Checkpoints("msm"); len(cks) != 1 || rundir.CheckpointStep(cks[0]) != 3 {
			t.Fatalf("checkpoints after --stop-after 3: %v", cks)
		}
		testenv.StartWorkers(t, "TestShardedTrainingWorker", c.world, "MSM_SHARD_CONFIG="+cfg, "MSM_SHARD_ARGS=--set dist.shard="+c.shard)
		compareRuns(t, ref, out)
	}
	// The batch in examples (each process packs its share of a step's examples into as many rows as they need):
	// 2 sharded processes run as many forward passes as each other (padding rows where one has fewer) and train
	// the same steps as one unsharded process.
	sets := "--set train.mode=pack --set train.global_batch=0 --set train.global_batch_examples=6"
	exRef := filepath.Join(dir, "examples-ref")
	if o, err := runCmd(t, append([]string{"--config", config(exRef, "none", true)}, strings.Fields(sets)...)...); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	exOut := filepath.Join(dir, "examples-sharded")
	testenv.StartWorkers(t, "TestShardedTrainingWorker", 2, "MSM_SHARD_CONFIG="+config(exOut, "full", true), "MSM_SHARD_ARGS="+sets)
	compareRuns(t, exRef, exOut)
	// Full fine-tuning: the trained weights and their AdamW moments sharded (gradients reduce-scattered), the same
	// run as one unsharded process, also when stopped by 2 processes and resumed by 3.
	fullRef := filepath.Join(dir, "full-ref")
	if o, err := runCmd(t, "--config", config(fullRef, "none", false)); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	out := filepath.Join(dir, "full-sharded")
	testenv.StartWorkers(t, "TestShardedTrainingWorker", 2, "MSM_SHARD_CONFIG="+config(out, "full", false))
	compareRuns(t, fullRef, out)
	out = filepath.Join(dir, "full-resumed")
	cfg := config(out, "full", false)
	testenv.StartWorkers(t, "TestShardedTrainingWorker", 2, "MSM_SHARD_CONFIG="+cfg, "MSM_SHARD_ARGS=--stop-after 3", "MSM_SHARD_STOP=1")
	testenv.StartWorkers(t, "TestShardedTrainingWorker", 3, "MSM_SHARD_CONFIG="+cfg)
	compareRuns(t, fullRef, out)
	// Its checkpoints hold the weights as each process's slices (no process gathers the model to save it): one
	// file per process, each about half of the weights and moments (resumed on 3 processes above).
	out = filepath.Join(dir, "full-checkpoint")
	cfg = config(out, "full", false)
	testenv.StartWorkers(t, "TestShardedTrainingWorker", 2, "MSM_SHARD_CONFIG="+cfg, "MSM_SHARD_ARGS=--stop-after 3", "MSM_SHARD_STOP=1")
	cks, _ := rundir.Dir(out).Checkpoints("msm")
	if len(cks) != 1 {
		t.Fatalf("checkpoints: %v", cks)
	}
	size := func(name string) int64 {
		fi, err := os.Stat(filepath.Join(cks[0], name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	s0, s1, rest := size(rundir.CheckpointShardFile(0, 2)), size(rundir.CheckpointShardFile(1, 2)), size(rundir.CheckpointTrainable)
	t.Logf("sharded full fine-tuning checkpoint: shard files %d and %d bytes, trainable.safetensors %d bytes", s0, s1, rest)
	if s0 != s1 || rest > s0/10 {
		t.Fatalf("shard files %d and %d bytes, trainable.safetensors %d: the weights are not held as slices", s0, s1, rest)
	}
	// one process does not shard: its parameters are not the sharded units, and it says how to resume
	if o, err := runCmd(t, "--config", cfg); err == nil || !strings.Contains(err.Error(), "resumes with dist.shard = \"full\" on 2 or more processes") {
		t.Fatalf("resumed by one process: %v\n%s", err, o)
	}
}

func TestShardedTrainingWorker(t *testing.T) {
	if !testenv.IsWorker() {
		t.Skip("runs only as a child process of TestShardedTraining")
	}
	args := []string{"--config", os.Getenv("MSM_SHARD_CONFIG")}
	if s := os.Getenv("MSM_SHARD_ARGS"); s != "" {
		args = append(args, strings.Fields(s)...)
	}
	err := run(args, os.Stdout, os.Stderr)
	var ec *exitCode
	if err != nil && !(errors.As(err, &ec) && ec.code == 3 && os.Getenv("MSM_SHARD_STOP") != "") {
		t.Fatal(err)
	}
	fmt.Println("WORKER OK")
}

// compareRuns checks that two run directories of the same config hold the same results.
func compareRuns(t *testing.T, a, b string) {
	t.Helper()
	read := func(dir string) *rundir.Metrics {
		f, err := os.Open(rundir.Dir(dir).Metrics())
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		m, err := rundir.ReadMetrics(f, dir)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ma, mb := read(a), read(b)
	close := func(x, y float64) bool { return math.Abs(x-y) <= 1e-5*math.Max(1, math.Abs(x)) }
	if len(ma.Train) != len(mb.Train) || len(ma.Eval) != len(mb.Eval) {
		t.Fatalf("%s: %d train and %d eval records, %s: %d and %d", a, len(ma.Train), len(ma.Eval), b, len(mb.Train), len(mb.Eval))
	}
	for i, x := range ma.Train {
		if y := mb.Train[i]; x.Stage != y.Stage || x.Step != y.Step || !close(float64(x.Loss), float64(y.Loss)) || x.Trained != y.Trained {
			t.Errorf("train %s step %d: loss %v (%d tokens), %s: %v (%d)", x.Stage, x.Step, x.Loss, x.Trained, b, y.Loss, y.Trained)
		}
	}
	for i, x := range ma.Eval {
		y := mb.Eval[i]
		if !close(float64(x.EvalLoss), float64(y.EvalLoss)) || len(x.BySource) != len(y.BySource) {
			t.Errorf("eval %s step %d: %v %v, %s: %v %v", x.Stage, x.Step, x.EvalLoss, x.BySource, b, y.EvalLoss, y.BySource)
		}
		for src, l := range x.BySource {
			if !close(float64(l.Loss), float64(y.BySource[src].Loss)) {
				t.Errorf("eval %s step %d source %s: %v, %s: %v", x.Stage, x.Step, src, l.Loss, b, y.BySource[src].Loss)
			}
		}
	}
	for _, stage := range []string{"msm", "aft"} {
		files, _ := filepath.Glob(filepath.Join(rundir.Dir(a).Output(stage), "*.safetensors"))
		if len(files) != 1 {
			t.Fatalf("%s: output files %v", a, files)
		}
		ta, err := torch.LoadFile(files[0], torch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		tb, err := torch.LoadFile(strings.Replace(files[0], a, b, 1), torch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		for name, x := range ta {
			xs, _ := x.Float32s()
			ys, err := tb[name].Float32s()
			if err != nil || len(xs) != len(ys) {
				t.Fatalf("%s: adapter tensor %s: %v", b, name, err)
			}
			for i := range xs {
				if math.Abs(float64(xs[i]-ys[i])) > 1e-5 {
					t.Fatalf("%s: adapter %s %s[%d] = %v, unsharded %v", b, stage, name, i, ys[i], xs[i])
				}
			}
		}
	}
	var mcA, mcB map[string]float64
	for dir, mc := range map[string]*map[string]float64{a: &mcA, b: &mcB} {
		x, err := os.ReadFile(rundir.Dir(dir).MCResult("aft"))
		if err != nil || json.Unmarshal(x, mc) != nil {
			t.Fatalf("%s: %v %s", dir, err, x)
		}
	}
	for k, x := range mcA {
		if !close(x, mcB[k]) {
			t.Errorf("%s: %s = %v, unsharded %v", b, k, mcB[k], x)
		}
	}
	x, err := os.ReadFile(rundir.Dir(a).Generations("aft"))
	if err != nil {
		t.Fatal(err)
	}
	if y, err := os.ReadFile(rundir.Dir(b).Generations("aft")); err != nil || string(x) != string(y) {
		t.Errorf("greedy answers differ in %s (%v):\n%s\n%s", b, err, x, y)
	}
}

func scanned(n int, err error) bool { return err == nil && n == 2 }
