package train

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/dist"
)

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	good := testConfig(dir, filepath.Join(dir, "run"), "")
	if _, err := Parse([]byte(good), "good.toml", nil); err != nil {
		t.Fatalf("good config: %v", err)
	}
	cases := []struct {
		name, text string
		sets       []string
		want       string
	}{
		{"unknown key", strings.Replace(good, "lr = 0.05", "lr = 0.05\nlearning_rate = 1", 1), nil, "unknown key train.learning_rate"},
		{"wrong type", strings.Replace(good, "seq_len = 32", `seq_len = "long"`, 1), nil, "seq_len"},
		{"missing data", strings.Replace(good, filepath.Join(dir, "docs.jsonl"), filepath.Join(dir, "nope.jsonl"), 1), nil, "no file matches"},
		{"bad mode", good, []string{"train.mode=zigzag"}, `train.mode = "zigzag"`},
		{"bad schedule", good, []string{"train.schedule=exp"}, "schedule"},
		{"bad set", good, []string{"train.lr"}, "want section.key=value"},
		{"stage kind", strings.Replace(good, `kind = "aft"`, `kind = "rl"`, 1), nil, `kind = "rl"`},
		{"lora target", good, []string{"lora.enabled=true", `lora.targets=["q_proj","qq"]`}, `unknown module "qq"`},
		{"hub name", good, []string{`model.hub_name="/models/qwen3"`}, `model.hub_name = "/models/qwen3"`},
		{"shard value", good, []string{`dist.shard="zero3"`}, `dist.shard = "zero3": want none or full`},
		{"shard no checkpointing", good, []string{`dist.shard="full"`, "lora.enabled=true"}, "needs model.checkpointing = true"},
		{"shard merge", strings.Replace(good, `kind = "aft"`, "kind = \"aft\"\ninit = \"merge\"", 1),
			[]string{`dist.shard="full"`, "lora.enabled=true", "model.checkpointing=true"}, "init = merge: not supported with dist.shard"},
		{"two batch sizes", good, []string{"train.global_batch=8", "train.global_batch_examples=8"}, "set at most one of global_batch"},
		{"examples in pad mode", good, []string{"train.global_batch_examples=8", "train.mode=pad"}, "global_batch_examples needs mode = \"pack\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.text), "x.toml", c.sets)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("error is not one line: %q", err)
			}
			if !strings.Contains(err.Error(), "x.toml") && !strings.Contains(err.Error(), "--set") {
				t.Errorf("error does not name the file: %q", err)
			}
		})
	}
}

func TestSetOverrides(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	c, err := Parse([]byte(testConfig(dir, filepath.Join(dir, "run"), "")), "x.toml",
		[]string{"train.lr=0.5", "seed=99", "checkpoint.keep=5", "name=other run"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Train.LR != 0.5 || c.Seed != 99 || c.Checkpoint.Keep != 5 || c.Name != "other run" {
		t.Fatalf("overrides not applied: lr %g seed %d keep %d name %q", c.Train.LR, c.Seed, c.Checkpoint.Keep, c.Name)
	}
	if c.Stages[0].Train.LR != 0.5 || c.Stages[1].Train.LR != 0.02 {
		t.Fatalf("stage lrs %g %g: [train] should reach msm, aft keeps its own", c.Stages[0].Train.LR, c.Stages[1].Train.LR)
	}
	if c.Stages[1].Train.SeqLen != 160 || c.Stages[1].Train.MicroBatch != 2 {
		t.Fatalf("aft: seq_len %d (own), micro_batch %d (inherited)", c.Stages[1].Train.SeqLen, c.Stages[1].Train.MicroBatch)
	}
}

func runConfig(t *testing.T, text string, stopAfter int) error {
	t.Helper()
	cfg, err := Parse([]byte(text), "test.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	return Run(context.Background(), cfg, Env{Out: io.Discard, Err: io.Discard, Dist: dist.Env{World: 1},
		Device: torch.CPU, Build: bigramBuilder, StopAfter: stopAfter})
}

type metricLine struct {
	Kind     string          `json:"kind"`
	Stage    string          `json:"stage"`
	Step     int             `json:"step"`
	Loss     json.RawMessage `json:"loss"`
	LR       json.RawMessage `json:"lr"`
	GradNorm json.RawMessage `json:"grad_norm"`
	Tokens   int64           `json:"tokens"`
	Trained  int64           `json:"trained_tokens"`
	EvalLoss json.RawMessage `json:"eval_loss"`
}

func readMetrics(t *testing.T, path string) []metricLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []metricLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m metricLine
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, m)
	}
	return out
}

func TestTwoStagesRunAndSkip(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	out := filepath.Join(dir, "run")
	text := testConfig(dir, out, "epochs = 3")
	base := torch.LiveTensors()
	if err := runConfig(t, text, 0); err != nil {
		t.Fatal(err)
	}
	if d := torch.LiveTensors() - base; d != 0 {
		t.Errorf("%d tensors leaked by a run", d)
	}
	ms := readMetrics(t, filepath.Join(out, "metrics.jsonl"))
	var msm []float64
	for _, m := range ms {
		if m.Kind == "train" && m.Stage == "msm" {
			var v float64
			json.Unmarshal(m.Loss, &v)
			msm = append(msm, v)
		}
	}
	if len(msm) < 6 || msm[len(msm)-1] > msm[0]*0.8 {
		t.Fatalf("msm loss did not fall: %v", msm)
	}
	for _, stage := range []string{"msm", "aft"} {
		if _, err := os.Stat(filepath.Join(out, stage, "DONE")); err != nil {
			t.Fatalf("stage %s not complete: %v", stage, err)
		}
	}
	// a second run skips both stages and changes nothing
	before, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if err := runConfig(t, text, 0); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if string(before) != string(after) {
		t.Fatal("re-running a finished run changed its metrics")
	}
	// an incompatible change is refused with the reason
	err := runConfig(t, strings.Replace(text, "lr = 0.05", "lr = 0.07", 1), 0)
	if err == nil || !strings.Contains(err.Error(), "train.lr: 0.05 -> 0.07") {
		t.Fatalf("changed lr: %v", err)
	}
}

// TestAccumulationInvariance: one micro-batch of 8 rows and 8 micro-batches of 1 row give the same loss and the
// same update (pad mode, so both see the same 8 examples).
func TestAccumulationInvariance(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	run := func(name, train string) ([]metricLine, map[string]*torch.Tensor) {
		out := filepath.Join(dir, name)
		text := testConfig(dir, out, "mode = \"pad\"\nsteps = 3\nglobal_batch = 8\n"+train)
		text = strings.Replace(text, "micro_batch = 2\n", "", 1)
		if err := runConfig(t, text, 0); err != nil {
			t.Fatal(err)
		}
		w, err := torch.LoadFile(filepath.Join(out, "msm", "output", "weights.safetensors"), torch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		return readMetrics(t, filepath.Join(out, "metrics.jsonl")), w
	}
	m1, w1 := run("one", "micro_batch = 8")
	m8, w8 := run("eight", "micro_batch = 1")
	for i := range m1 {
		if m1[i].Kind != "train" || m1[i].Stage != "msm" {
			continue
		}
		var a, b float64
		json.Unmarshal(m1[i].Loss, &a)
		json.Unmarshal(m8[i].Loss, &b)
		t.Logf("step %d: loss %.9g vs %.9g", m1[i].Step, a, b)
		if math.Abs(a-b) > 1e-5*math.Abs(a) || m1[i].Trained != m8[i].Trained {
			t.Fatalf("step %d: loss %.9g (1x8) vs %.9g (8x1), trained %d vs %d", m1[i].Step, a, b, m1[i].Trained, m8[i].Trained)
		}
	}
	for _, k := range []string{"emb", "out"} {
		d := maxDiff(t, w1[k], w8[k])
		t.Logf("%s: max |diff| after 3 steps %.3g", k, d)
		if d > 1e-5 {
			t.Fatalf("%s differs by %.3g", k, d)
		}
	}
}

func maxDiff(t *testing.T, a, b *torch.Tensor) float64 {
	x, err := a.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	d := 0.0
	for i := range x {
		d = math.Max(d, math.Abs(float64(x[i]-y[i])))
	}
	return d
}

// worker runs a config in a child process (see TestMain-style re-execution below).
func TestWorker(t *testing.T) {
	path := os.Getenv("MSM_TRAIN_WORKER")
	if path == "" {
		t.Skip("runs only as a child process of the resume and data-parallel tests")
	}
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := dist.FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := dist.Init(env, "gloo", torch.CPU, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if pg != nil {
		defer pg.Close()
	}
	var stop atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGUSR1)
	go func() {
		<-sig
		stop.Store(true)
	}()
	delay := os.Getenv("MSM_TRAIN_STEP_DELAY") != ""
	build := bigramBuilder
	if delay {
		build = func(cfg *Config, dev torch.Device) (Model, error) {
			return slowModel{newBigram(512, cfg.Seed)}, nil
		}
	}
	stopAfter := 0
	fmt.Sscan(os.Getenv("MSM_TRAIN_STOP_AFTER"), &stopAfter)
	err = Run(context.Background(), cfg, Env{Out: os.Stdout, Err: os.Stdout, Dist: env, PG: pg, Device: torch.CPU, Build: build,
		Stop: &stop, StopAfter: stopAfter})
	if errors.Is(err, ErrStopped) {
		fmt.Println("WORKER STOPPED")
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("WORKER DONE")
}

// slowModel sleeps in each loss so that a test can kill a run at a chosen step.
type slowModel struct{ *bigram }

func (m slowModel) LossAt(ids, pos, seg, targets, weights *torch.Tensor, rows []int64) *torch.Tensor {
	time.Sleep(20 * time.Millisecond)
	return m.bigram.LossAt(ids, pos, seg, targets, weights, rows)
}

func worker(t *testing.T, cfgPath string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestWorker$", "-test.v")
	cmd.Env = append(append(os.Environ(), "MSM_TRAIN_WORKER="+cfgPath), env...)
	return cmd
}

func writeConfig(t *testing.T, dir, name, text string) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// comparable drops what legitimately differs between two runs (time, speed, memory).
func sameMetrics(t *testing.T, a, b []metricLine) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d metric lines vs %d", len(a), len(b))
	}
	for i := range a {
		ja, _ := json.Marshal(a[i])
		jb, _ := json.Marshal(b[i])
		if string(ja) != string(jb) {
			t.Fatalf("metric line %d differs:\n  %s\n  %s", i, ja, jb)
		}
	}
}

// TestExactResumeAfterSIGKILL kills a run with SIGKILL at a random step (also during checkpoint saves), re-runs
// it, and requires the same per-step metrics, bit for bit, as an uninterrupted run.
func TestExactResumeAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	ref := filepath.Join(dir, "ref")
	if err := runConfig(t, testConfig(dir, ref, "epochs = 2"), 0); err != nil {
		t.Fatal(err)
	}
	want := readMetrics(t, filepath.Join(ref, "metrics.jsonl"))
	out := filepath.Join(dir, "killed")
	cfgPath := writeConfig(t, dir, "killed.toml", testConfig(dir, out, "epochs = 2"))
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	kills := 0
	for attempt := 0; attempt < 10; attempt++ {
		cmd := worker(t, cfgPath, "MSM_TRAIN_STEP_DELAY=1")
		var outBuf strings.Builder
		cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		wait := time.Duration(300+r.IntN(1500)) * time.Millisecond
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("worker failed: %v\n%s", err, outBuf.String())
			}
			attempt = 100 // finished
		case <-time.After(wait):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
		}
	}
	if kills == 0 {
		t.Fatal("the run was never killed: the test proves nothing")
	}
	if _, err := os.Stat(filepath.Join(out, "aft", "DONE")); err != nil {
		cmd := worker(t, cfgPath)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("final run: %v\n%s", err, b)
		}
	}
	t.Logf("killed %d times", kills)
	sameMetrics(t, want, readMetrics(t, filepath.Join(out, "metrics.jsonl")))
}

// TestSIGTERMSavesAndResumes: SIGTERM stops the run cleanly with a loadable checkpoint; re-running finishes with
// the metrics of an uninterrupted run.
func TestSIGTERMSavesAndResumes(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	ref := filepath.Join(dir, "ref")
	text := strings.Replace(testConfig(dir, ref, "epochs = 2"), "every = 1\n", "every = 1000\n", 1)
	if err := runConfig(t, text, 0); err != nil {
		t.Fatal(err)
	}
	want := readMetrics(t, filepath.Join(ref, "metrics.jsonl"))
	out := filepath.Join(dir, "term")
	cfgPath := writeConfig(t, dir, "term.toml", strings.Replace(text, ref, out, 1))
	cmd := worker(t, cfgPath, "MSM_TRAIN_STEP_DELAY=1")
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// signal once the run is training (its signal handler is installed before the first step)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl")); strings.Count(string(b), "\n") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never started\n%s", buf.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil || !strings.Contains(buf.String(), "WORKER STOPPED") {
		t.Fatalf("SIGTERM: %v\n%s", err, buf.String())
	}
	cks, _ := rundir.ListCheckpoints(filepath.Join(out, "checkpoints"), "msm")
	if len(cks) == 0 {
		t.Fatalf("no checkpoint after SIGTERM\n%s", buf.String())
	}
	if _, err := torch.LoadFile(filepath.Join(cks[len(cks)-1], "trainable.safetensors"), torch.CPU); err != nil {
		t.Fatalf("checkpoint not loadable: %v", err)
	}
	if b, err := worker(t, cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, b)
	}
	sameMetrics(t, want, readMetrics(t, filepath.Join(out, "metrics.jsonl")))
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runRanks runs the worker as world processes over Gloo and waits for them.
func runRanks(t *testing.T, cfgPath string, world int, env ...string) {
	t.Helper()
	cmds, bufs := startRanks(t, cfgPath, world, env...)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("rank %d: %v\n%s", i, err, bufs[i])
		}
	}
}

// startRanks starts the worker as world processes over Gloo; their output goes to bufs.
func startRanks(t *testing.T, cfgPath string, world int, env ...string) (cmds []*exec.Cmd, bufs []*strings.Builder) {
	t.Helper()
	port := freePort(t)
	for rank := 0; rank < world; rank++ {
		cmd := worker(t, cfgPath, append([]string{fmt.Sprintf("RANK=%d", rank), fmt.Sprintf("WORLD_SIZE=%d", world),
			"MASTER_ADDR=127.0.0.1", fmt.Sprintf("MASTER_PORT=%d", port)}, env...)...)
		b := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = b, b
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		cmds, bufs = append(cmds, cmd), append(bufs, b)
	}
	return cmds, bufs
}

// TestDataParallelResume: two processes stopped after 3 steps (checkpoint with both ranks' loader states) and
// resumed reproduce an uninterrupted two-process run, bit for bit.
func TestDataParallelResume(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	train := "steps = 7\nglobal_batch = 4"
	ref := filepath.Join(dir, "ref")
	runRanks(t, writeConfig(t, dir, "ref.toml", testConfig(dir, ref, train)), 2)
	out := filepath.Join(dir, "stopped")
	cfgPath := writeConfig(t, dir, "stopped.toml", strings.Replace(testConfig(dir, out, train), "every = 1\n", "every = 1000\n", 1))
	runRanks(t, cfgPath, 2, "MSM_TRAIN_STOP_AFTER=3")
	cks, _ := rundir.ListCheckpoints(filepath.Join(out, "checkpoints"), "msm")
	if len(cks) != 1 {
		t.Fatalf("checkpoints after the stop: %v", cks)
	}
	st, err := rundir.ReadCheckpointState(cks[0])
	if err != nil || st.Step != 3 || len(st.Loaders) != 2 || st.Loaders[0].Rank != 0 || st.Loaders[1].Rank != 1 {
		t.Fatalf("checkpoint state %+v, %v", st, err)
	}
	runRanks(t, cfgPath, 2)
	sameMetrics(t, readMetrics(t, filepath.Join(ref, "metrics.jsonl")), readMetrics(t, filepath.Join(out, "metrics.jsonl")))
}

// TestResumeOtherWorld: a checkpoint holds one data stream per micro-batch of a step (global batch / micro_batch),
// so a run stopped with 4 processes resumes with 2, and one stopped with 1 with 4, and continues as the
// uninterrupted one-process run does (within 1e-5: only the order of the sums differs).
func TestResumeOtherWorld(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	train := "steps = 7\nglobal_batch = 4\nmicro_batch = 1"
	cfg := func(name string) (string, string) {
		out := filepath.Join(dir, name)
		text := strings.Replace(strings.Replace(testConfig(dir, out, train), "micro_batch = 2\n", "", 1), "every = 1\n", "every = 1000\n", 1)
		return out, writeConfig(t, dir, name+".toml", text)
	}
	ref, refCfg := cfg("ref")
	runRanks(t, refCfg, 1)
	for _, c := range []struct{ from, to int }{{4, 2}, {1, 4}} {
		out, path := cfg(fmt.Sprintf("from%dto%d", c.from, c.to))
		runRanks(t, path, c.from, "MSM_TRAIN_STOP_AFTER=3")
		st, err := readCkpt(out, "msm")
		if err != nil || st.Step != 3 || len(st.Loaders) != 4 {
			t.Fatalf("%d -> %d: checkpoint %+v, %v", c.from, c.to, st, err)
		}
		runRanks(t, path, c.to)
		closeMetrics(t, readMetrics(t, filepath.Join(ref, "metrics.jsonl")), readMetrics(t, filepath.Join(out, "metrics.jsonl")))
	}
	// without global_batch a step has one micro-batch per process: a checkpoint of 2 streams is refused with 1
	out := filepath.Join(dir, "nobatch")
	path := writeConfig(t, dir, "nobatch.toml", strings.Replace(testConfig(dir, out, "steps = 7"), "every = 1\n", "every = 1000\n", 1))
	runRanks(t, path, 2, "MSM_TRAIN_STOP_AFTER=2")
	c, err := Load(path, nil)
	if err == nil {
		err = Run(context.Background(), c, Env{Out: io.Discard, Err: io.Discard, Dist: dist.Env{World: 1}, Device: torch.CPU, Build: bigramBuilder})
	}
	if err == nil || !strings.Contains(err.Error(), "2 data streams") || !strings.Contains(err.Error(), "this run 1") {
		t.Fatalf("resume of 2 streams by 1 process: %v", err)
	}
}

// readCkpt reads the state of a stage's latest checkpoint in run directory out.
func readCkpt(out, stage string) (rundir.CheckpointState, error) {
	cks, err := rundir.Dir(out).Checkpoints(stage)
	if err != nil || len(cks) == 0 {
		return rundir.CheckpointState{}, fmt.Errorf("no checkpoint of %s (%v)", stage, err)
	}
	return rundir.ReadCheckpointState(cks[len(cks)-1])
}

// closeMetrics: the same records, with losses within 1e-5 relative (b: another number of processes or a resumed
// run).
func closeMetrics(t *testing.T, a, b []metricLine) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d metric lines vs %d", len(a), len(b))
	}
	for i := range a {
		var x, y float64
		raw := [2]json.RawMessage{a[i].Loss, b[i].Loss}
		if a[i].Kind == "eval" {
			raw = [2]json.RawMessage{a[i].EvalLoss, b[i].EvalLoss}
		}
		json.Unmarshal(raw[0], &x)
		json.Unmarshal(raw[1], &y)
		if a[i].Kind != b[i].Kind || a[i].Step != b[i].Step || math.Abs(x-y) > 1e-5*math.Max(1, math.Abs(x)) || a[i].Trained != b[i].Trained {
			t.Fatalf("%s %s step %d: %.9g (%d trained), then %.9g (%d)", a[i].Kind, a[i].Stage, a[i].Step, x, a[i].Trained, y, b[i].Trained)
		}
	}
}

// TestDataParallelMatchesAccumulation: two processes over Gloo with micro_batch 2 give the same losses as one
// process accumulating two micro-batches of 2 (pad mode: the same 4 examples per step).
func TestDataParallelMatchesAccumulation(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	train := "mode = \"pad\"\nsteps = 6\nglobal_batch = 4"
	single := filepath.Join(dir, "single")
	if err := runConfig(t, testConfig(dir, single, train), 0); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "dp")
	runRanks(t, writeConfig(t, dir, "dp.toml", testConfig(dir, out, train)), 2)
	a := readMetrics(t, filepath.Join(single, "metrics.jsonl"))
	closeMetrics(t, a, readMetrics(t, filepath.Join(out, "metrics.jsonl")))
	t.Logf("%d metric lines agree within 1e-5", len(a))
}

// TestPreparedDataset: a stage can train on a dataset prepared earlier, but only one made with the model's
// tokenizer; another tokenizer's dataset is refused with a clear error.
func TestPreparedDataset(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	prepared := prepareDocs(t, dir)
	text := datasetConfig(dir, filepath.Join(dir, "run"), prepared, "steps = 2")
	if err := runConfig(t, text, 0); err != nil {
		t.Fatal(err)
	}
	// the same dataset with another tokenizer
	other, err := tokenizer.NewByteLevel(20, []string{"something else entirely"}, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	tokPath := filepath.Join(dir, "other.json")
	os.WriteFile(tokPath, other, 0o644)
	text = strings.Replace(datasetConfig(dir, filepath.Join(dir, "run2"), prepared, "steps = 2"), filepath.Join(dir, "tokenizer.json"), tokPath, 1)
	err = runConfig(t, text, 0)
	if err == nil || !strings.Contains(err.Error(), "tokenizer") {
		t.Fatalf("dataset of another tokenizer: %v", err)
	}
	t.Logf("refused: %v", err)
}

// readCounter records, at each training forward (grad enabled), how many tensor values had been read to the host
// so far (torch.HostReads).
type readCounter struct {
	*bigram
	at *[]int64
}

func (m readCounter) LossAt(ids, pos, seg, targets, weights *torch.Tensor, rows []int64) *torch.Tensor {
	if torch.GradEnabled() {
		*m.at = append(*m.at, torch.HostReads())
	}
	return m.bigram.LossAt(ids, pos, seg, targets, weights, rows)
}

// TestNoHostReadsBetweenMicroBatches: within a step the trainer reads nothing back from the device between one
// micro-batch's forward and the next (on a GPU each read idles the device); the loss is read once per step.
func TestNoHostReadsBetweenMicroBatches(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	out := filepath.Join(dir, "run")
	text := testConfig(dir, out, "mode = \"pad\"\nsteps = 3\nglobal_batch = 8\nmicro_batch = 2\n")
	text = strings.Replace(text, "micro_batch = 2\n", "", 1)
	cfg, err := Parse([]byte(text), "test.toml", []string{"stages.aft.train.steps=1"})
	if err != nil {
		t.Fatal(err)
	}
	var at []int64
	build := func(cfg *Config, dev torch.Device) (Model, error) {
		return readCounter{newBigram(512, cfg.Seed), &at}, nil
	}
	if err := Run(context.Background(), cfg, Env{Out: io.Discard, Err: io.Discard, Dist: dist.Env{World: 1},
		Device: torch.CPU, Build: build}); err != nil {
		t.Fatal(err)
	}
	const accum = 4
	if len(at) != 4*accum {
		t.Fatalf("%d training forwards, want %d (4 steps of %d micro-batches)", len(at), 4*accum, accum)
	}
	for i := 0; i < len(at); i += accum {
		for k := 1; k < accum; k++ {
			if d := at[i+k] - at[i+k-1]; d != 0 {
				t.Errorf("step %d: %d host reads between micro-batch %d and %d", i/accum+1, d, k, k+1)
			}
		}
		if i > 0 {
			t.Logf("step %d: %d host reads between steps (loss, counts, gradient norm, records)", i/accum, at[i]-at[i-1])
		}
	}
}

// TestGlobalBatchExamples: with the batch in examples, an AFT step trains on global_batch_examples chats packed
// into a varying number of rows; the steps are those of ceil(chats / examples) per epoch; running a step's rows
// in passes of 1 row or of 16 gives the same losses, and so do 2 processes over Gloo (each packs its half).
func TestGlobalBatchExamples(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	cfg := func(out, micro string) string {
		// the MSM stage in rows, the same in every run
		text := testConfig(dir, out, "epochs = 1\nglobal_batch = 16\nmicro_batch = 1")
		text = strings.Replace(text, "micro_batch = 2\n", "", 1)
		text = strings.Replace(text, "[checkpoint]\nevery = 1", "[checkpoint]\nevery = 2", 1)
		// the AFT stage: 30 chats (27 after the held-out tenth), 4 per step, in rows of 96 tokens
		return strings.Replace(text, "lr = 0.02\nseq_len = 160", "lr = 0.02\nseq_len = 96\nglobal_batch_examples = 4\n"+micro, 1)
	}
	type rec struct {
		metricLine
		Fill float64 `json:"fill"`
	}
	read := func(out string) (steps []rec) {
		b, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r rec
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatal(err)
			}
			if r.Kind == "train" && r.Stage == "aft" {
				steps = append(steps, r)
			}
		}
		return steps
	}
	one := filepath.Join(dir, "one")
	if err := runConfig(t, cfg(one, "micro_batch = 1"), 0); err != nil {
		t.Fatal(err)
	}
	sixteen := filepath.Join(dir, "sixteen")
	if err := runConfig(t, cfg(sixteen, "micro_batch = 16"), 0); err != nil {
		t.Fatal(err)
	}
	dp := filepath.Join(dir, "dp")
	runRanks(t, writeConfig(t, dir, "dp.toml", cfg(dp, "micro_batch = 1")), 2)
	a, b, c := read(one), read(sixteen), read(dp)
	man, err := readManifestDocs(filepath.Join(rundir.Dir(one).Data("aft"), "train"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (man + 3) / 4; len(a) != want {
		t.Fatalf("%d AFT steps for %d training chats, want %d", len(a), man, want)
	}
	fills := map[float64]bool{}
	for i := range a {
		var la, lb, lc float64
		json.Unmarshal(a[i].Loss, &la)
		json.Unmarshal(b[i].Loss, &lb)
		json.Unmarshal(c[i].Loss, &lc)
		if math.Abs(la-lb) > 1e-5*math.Abs(la) || math.Abs(la-lc) > 1e-5*math.Abs(la) || a[i].Trained != b[i].Trained ||
			a[i].Trained != c[i].Trained {
			t.Fatalf("step %d: loss %.9g (passes of 1 row) vs %.9g (16) vs %.9g (2 processes); trained %d %d %d", a[i].Step,
				la, lb, lc, a[i].Trained, b[i].Trained, c[i].Trained)
		}
		if a[i].Fill <= 0 || a[i].Fill > 1 {
			t.Fatalf("step %d: fill %v", a[i].Step, a[i].Fill)
		}
		fills[a[i].Fill] = true
	}
	if len(fills) < 2 {
		t.Fatalf("the rows of a step never vary (fill %v)", fills)
	}
	t.Logf("%d AFT steps of 4 chats agree (1-row passes, 16-row passes, 2 processes); %d distinct fills", len(a), len(fills))
}

// readManifestDocs returns the number of documents of a prepared dataset.
func readManifestDocs(dir string) (int, error) {
	ds, err := shard.OpenDataset(dir, shard.OpenOptions{})
	if err != nil {
		return 0, err
	}
	defer ds.Close()
	return int(ds.NumDocs()), nil
}
