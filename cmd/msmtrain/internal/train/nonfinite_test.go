package train

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/torch"
)

// nanModel's loss is NaN on the calls listed in bad (1-based, counting every Loss call).
type nanModel struct {
	*bigram
	calls int
	bad   map[int]bool
}

func (m *nanModel) LossAt(ids, pos, seg, targets, weights *torch.Tensor, rows []int64) *torch.Tensor {
	m.calls++
	l := m.bigram.LossAt(ids, pos, seg, targets, weights, rows)
	if m.bad[m.calls] {
		return l.MulScalar(math.NaN())
	}
	return l
}

// TestNonFinite: a step with a non-finite loss is skipped (nonfinite = "skip": no update, recorded with a null loss
// and skipped: true, counted in the summary) or stops the run with a checkpoint of the step before ("stop").
func TestNonFinite(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	build := func(cfg *Config, dev torch.Device) (Model, error) {
		return &nanModel{bigram: newBigram(512, cfg.Seed), bad: map[int]bool{3: true}}, nil
	}
	out := filepath.Join(dir, "skip")
	text := strings.Replace(testConfig(dir, out, "steps = 4\nnonfinite = \"skip\""), "every = 1\n", "every = 100\n", 1)
	if err := runEnv(t, text, Env{Build: build}); err != nil {
		t.Fatalf("skip: %v", err)
	}
	var skipped []int
	for _, m := range readMetrics(t, filepath.Join(out, "metrics.jsonl")) {
		if m.Kind == "train" && m.Stage == "msm" && string(m.Loss) == "null" {
			skipped = append(skipped, m.Step)
		}
	}
	if len(skipped) != 1 || skipped[0] != 3 {
		t.Fatalf("steps with a null loss: %v, want [3]", skipped)
	}
	b, _ := os.ReadFile(filepath.Join(out, "msm", "summary.json"))
	if !strings.Contains(string(b), `"skipped_steps": 1`) {
		t.Fatalf("summary: %s", b)
	}

	out = filepath.Join(dir, "stop")
	text = strings.Replace(testConfig(dir, out, "steps = 4\nnonfinite = \"stop\""), "every = 1\n", "every = 100\n", 1)
	err := runEnv(t, text, Env{Build: build})
	if err == nil || errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "non-finite") {
		t.Fatalf("stop: %v", err)
	}
	cks, _ := os.ReadDir(filepath.Join(out, "checkpoints"))
	if len(cks) != 1 || !strings.HasSuffix(cks[0].Name(), "step00000002") {
		t.Fatalf("checkpoints after the stop: %v", cks)
	}
}

// TestFillRecorded: each step's record carries its packing efficiency, the step's non-padding tokens over its
// slots.
func TestFillRecorded(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	out := filepath.Join(dir, "run")
	if err := runEnv(t, testConfig(dir, out, "steps = 4\nglobal_batch = 4"), Env{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(rundir.Dir(out).Metrics())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := rundir.ReadMetrics(f, "metrics.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	prev := map[string]int64{}
	slots := map[string]float64{"msm": 4 * 32, "aft": 4 * 160}
	for _, r := range m.Train {
		want := float64(r.Tokens-prev[r.Stage]) / slots[r.Stage]
		prev[r.Stage] = r.Tokens
		if r.Fill <= 0 || r.Fill > 1 || math.Abs(r.Fill-want) > 1e-12 {
			t.Fatalf("%s step %d: fill %v, want %v", r.Stage, r.Step, r.Fill, want)
		}
	}
}
