package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/prep"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/dist"
)

// runEnv runs a config in this process with env's other fields as given.
func runEnv(t *testing.T, text string, env Env) error {
	t.Helper()
	cfg, err := Parse([]byte(text), "test.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	env.Out, env.Err, env.Dist, env.Device = io.Discard, io.Discard, dist.Env{World: 1}, torch.CPU
	if env.Build == nil {
		env.Build = bigramBuilder
	}
	return Run(context.Background(), cfg, env)
}

// TestChangedDataOnResume: a stage with a checkpoint whose input JSONL changed is refused, naming the file, and
// its checkpoint and prepared data are kept; --restart-stage starts it over on the new data, and the result is the
// run that had the new data from the start. Unchanged data resumes with --restart-stage as without.
func TestChangedDataOnResume(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	out := filepath.Join(dir, "run")
	text := testConfig(dir, out, "steps = 4")
	if err := runEnv(t, text, Env{StopAfter: 2}); !errors.Is(err, ErrStopped) {
		t.Fatalf("first run: %v", err)
	}
	// resuming with --restart-stage and the same data is a plain resume
	if err := runEnv(t, text, Env{StopAfter: 1, RestartStage: "msm"}); !errors.Is(err, ErrStopped) {
		t.Fatalf("second run: %v", err)
	}
	st, err := rundir.ReadCheckpointState(filepath.Join(out, "checkpoints", rundir.CheckpointName("msm", 3)))
	if err != nil || st.Step != 3 {
		t.Fatalf("unchanged data with --restart-stage did not resume: %+v %v", st, err)
	}
	docs := filepath.Join(dir, "docs.jsonl")
	f, _ := os.OpenFile(docs, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintln(f, `{"text": "a document added after the stage started"}`)
	f.Close()
	manifest := filepath.Join(out, "data", "msm", "train", "manifest.json")
	before, _ := os.ReadFile(manifest)
	err = runEnv(t, text, Env{})
	if err == nil || !strings.Contains(err.Error(), docs+": changed") || !strings.Contains(err.Error(), "--restart-stage msm") ||
		!strings.Contains(err.Error(), "step 3") {
		t.Fatalf("changed input: %v", err)
	}
	t.Logf("refused: %v", err)
	if after, _ := os.ReadFile(manifest); string(after) != string(before) {
		t.Fatal("the prepared data was rebuilt although the stage was refused")
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoints", rundir.CheckpointName("msm", 3))); err != nil {
		t.Fatal("the checkpoint was removed although the stage was refused")
	}
	if err := runEnv(t, text, Env{RestartStage: "msm"}); err != nil {
		t.Fatalf("--restart-stage: %v", err)
	}
	ref := filepath.Join(dir, "ref")
	if err := runEnv(t, strings.ReplaceAll(text, out, ref), Env{}); err != nil {
		t.Fatal(err)
	}
	sameMetrics(t, readMetrics(t, filepath.Join(ref, "metrics.jsonl")), readMetrics(t, filepath.Join(out, "metrics.jsonl")))
}

// TestChangedPreparedData: a stage's dataset (prepared elsewhere) rebuilt from other inputs after the stage
// started is refused too.
func TestChangedPreparedData(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	prepared := prepareDocs(t, dir)
	text := datasetConfig(dir, filepath.Join(dir, "run"), prepared, "steps = 4")
	if err := runEnv(t, text, Env{StopAfter: 2}); !errors.Is(err, ErrStopped) {
		t.Fatalf("first run: %v", err)
	}
	docs := filepath.Join(dir, "docs.jsonl")
	f, _ := os.OpenFile(docs, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintln(f, `{"text": "a document added after the stage started"}`)
	f.Close()
	prepareDocs(t, dir)
	err := runEnv(t, text, Env{})
	if err == nil || !strings.Contains(err.Error(), docs+": changed") {
		t.Fatalf("rebuilt dataset: %v", err)
	}
}

// prepareDocs prepares the fixture's documents into dir/prepared.
func prepareDocs(t *testing.T, dir string) string {
	t.Helper()
	base, err := Parse([]byte(testConfig(dir, filepath.Join(dir, "prep-run"), "steps = 2")), "t.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := base.PrepConfig(&base.Stages[0])
	if err != nil {
		t.Fatal(err)
	}
	pc.OutDir = filepath.Join(dir, "prepared")
	if _, err := prep.Run(context.Background(), pc, io.Discard); err != nil {
		t.Fatal(err)
	}
	return pc.OutDir
}

// datasetConfig is testConfig with the first stage training on a prepared dataset.
func datasetConfig(dir, out, dataset, train string) string {
	text := testConfig(dir, out, train)
	return strings.Replace(text, fmt.Sprintf(`[stages.data]
val_fraction = 0.1
sources = [{ name = "docs", path = %q, kind = "documents" }]`, filepath.Join(dir, "docs.jsonl")), fmt.Sprintf(`dataset = %q`, dataset), 1)
}

// TestDamagedDatasetRefused: every shard of a stage's dataset is checked before the first step; a flipped byte,
// a truncated or a missing shard, train or val, is refused naming the file, and nothing is trained.
func TestDamagedDatasetRefused(t *testing.T) {
	for _, c := range []struct {
		name, file, want string
		damage           func(string) error
	}{
		{"flipped byte in train", "train/shard-00000.msms", "sha256", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)*3/4] ^= 0x10
			return os.WriteFile(p, b, 0o644)
		}},
		{"truncated val", "val/shard-00000.msms", "val/shard-00000.msms", func(p string) error {
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, st.Size()-7)
		}},
		{"missing val shard", "val/shard-00000.msms", "val/shard-00000.msms", os.Remove},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			fixture(t, dir)
			prepared := prepareDocs(t, dir)
			if err := c.damage(filepath.Join(prepared, c.file)); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "run")
			err := runEnv(t, datasetConfig(dir, out, prepared, "steps = 2"), Env{})
			if err == nil || !strings.Contains(err.Error(), filepath.Join(prepared, c.file)) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error naming %s", err, c.file)
			}
			if _, err := os.Stat(filepath.Join(out, "metrics.jsonl")); !os.IsNotExist(err) {
				t.Fatal("trained on a damaged dataset")
			}
		})
	}
}

// TestNoHeldOutData: a stage without held-out data reports no eval loss (null, with the reason), not 0.
func TestNoHeldOutData(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	out := filepath.Join(dir, "run")
	text := strings.Replace(testConfig(dir, out, "steps = 2"), "val_fraction = 0.1", "val_fraction = 0.0", 1)
	if err := runEnv(t, text, Env{}); err != nil {
		t.Fatal(err)
	}
	for stage, want := range map[string]string{"msm": "no held-out data: data.val_fraction is 0", "aft": ""} {
		b, err := os.ReadFile(filepath.Join(out, stage, "summary.json"))
		if err != nil {
			t.Fatal(err)
		}
		var s map[string]any
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		loss, ok := s["final_eval_loss"]
		if !ok {
			t.Fatalf("%s: no final_eval_loss", stage)
		}
		note, _ := s["eval_note"].(string)
		if want != "" && (loss != nil || note != want) {
			t.Fatalf("%s: final_eval_loss %v, eval_note %q; want null and %q", stage, loss, note, want)
		}
		if want == "" && (loss == nil || note != "") {
			t.Fatalf("%s has held-out data: final_eval_loss %v, eval_note %q", stage, loss, note)
		}
	}
}

// TestMicroBatchTooLarge: a micro-batch whose rows would be mostly padding for the stage's data is refused,
// naming micro_batch and a size that fits.
func TestMicroBatchTooLarge(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	text := strings.Replace(testConfig(dir, filepath.Join(dir, "run"), "steps = 2"), "micro_batch = 2", "micro_batch = 64", 1)
	err := runEnv(t, text, Env{})
	if err == nil || !strings.Contains(err.Error(), "micro_batch 64") || !strings.Contains(err.Error(), "set micro_batch to") {
		t.Fatalf("micro_batch 64 on %s: %v", dir, err)
	}
	t.Logf("refused: %v", err)
}

// TestStopBeforeTraining: a stop requested before the model is built, or while a stage's data is prepared,
// ends the run with ErrStopped having written no data and no checkpoint; the next run starts normally.
func TestStopBeforeTraining(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	out := filepath.Join(dir, "run")
	text := testConfig(dir, out, "steps = 2")
	var stop atomic.Bool
	stop.Store(true)
	if err := runEnv(t, text, Env{Stop: &stop}); !errors.Is(err, ErrStopped) {
		t.Fatalf("stop before the model is built: %v", err)
	}
	stop.Store(false)
	stopInBuild := func(cfg *Config, dev torch.Device) (Model, error) {
		stop.Store(true) // a signal that comes while the model loads: seen first by data preparation
		return bigramBuilder(cfg, dev)
	}
	if err := runEnv(t, text, Env{Stop: &stop, Build: stopInBuild}); !errors.Is(err, ErrStopped) {
		t.Fatalf("stop during preparation: %v", err)
	}
	for _, p := range []string{"data/msm/train", "checkpoints", "metrics.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, p)); !os.IsNotExist(err) {
			t.Fatalf("%s exists after a stop before training", p)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(out, "data", "msm", ".prep-*")); len(m) != 0 {
		t.Fatalf("left %v", m)
	}
	if err := runEnv(t, text, Env{}); err != nil {
		t.Fatal(err)
	}
}
