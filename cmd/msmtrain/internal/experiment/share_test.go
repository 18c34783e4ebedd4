package experiment

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
)

// fourArms: a and b differ only in their last stage, so each seed's b shares a's msm stage; c changes the lr of
// every stage and d has no msm stage: they share nothing.
const fourArms = `name = "share"
base = "base.toml"
out_dir = "out"
seeds = [1, 2]
[[arms]]
name = "a"
set = ["stages.aft.train.lr=0.002"]
[[arms]]
name = "b"
set = ["stages.aft.train.lr=0.004"]
[[arms]]
name = "c"
set = ["train.lr=0.003"]
[[arms]]
name = "aft-only"
skip_stages = ["msm"]
`

// TestSharedStages: a run is given the finished stages it has in common with an earlier run of its seed (the same
// config up to them), and its trainer skips them; the stage's output is the donor's file (hard-linked), its
// summary says where it was trained, its metrics lines are the donor's; runs that differ earlier train everything.
func TestSharedStages(t *testing.T) {
	f := newFixture(t, fourArms)
	c, runs := f.expand(t)
	byName := map[string]*Run{}
	for _, r := range runs {
		byName[r.Name()] = r
	}
	for _, x := range []struct {
		a, b string
		k    int
	}{{"a/seed-1", "b/seed-1", 1}, {"a/seed-1", "a/seed-2", 0}, {"a/seed-1", "c/seed-1", 0}, {"a/seed-1", "aft-only/seed-1", 0},
		{"a/seed-1", "a/seed-1", 2}} {
		if k, err := sharedPrefix(byName[x.a], byName[x.b]); err != nil || k != x.k {
			t.Errorf("%s and %s share %d stages (%v), want %d", x.a, x.b, k, err, x.k)
		}
	}
	var out bytes.Buffer
	calls := 0
	if err := Execute(c, runs, fakeOptions(&out, &calls)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, w := range []string{"[1/8] a/seed-1: training, log", "[2/8] b/seed-1: training (msm shared with a/seed-1), log",
		"[3/8] c/seed-1: training, log", "[4/8] aft-only/seed-1: training, log", "[5/8] a/seed-2: training, log",
		"[6/8] b/seed-2: training (msm shared with a/seed-2), log"} {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want %q", i+1, lines[i], w)
		}
	}
	for _, seed := range []string{"seed-1", "seed-2"} {
		a, b := rundir.Dir(byName["a/"+seed].Dir), rundir.Dir(byName["b/"+seed].Dir)
		log, _ := os.ReadFile(b.ExperimentLogPath())
		if !strings.Contains(string(log), "stage msm: already complete, skipping") {
			t.Errorf("b/%s did not skip msm:\n%s", seed, log)
		}
		sum, err := rundir.ReadStageSummary(b.Done("msm"))
		if err != nil || sum.SharedFrom != a.Stage("") || sum.Output != b.Output("msm") || sum.Name != "msm" {
			t.Errorf("b/%s msm/DONE: %+v (%v), want shared from %s", seed, sum, err, a.Stage(""))
		}
		if own, _ := rundir.ReadStageSummary(b.Done("aft")); own.SharedFrom != "" {
			t.Errorf("b/%s trained aft itself: %+v", seed, own)
		}
		fa, err1 := os.Stat(filepath.Join(a.Output("msm"), "model.safetensors"))
		fb, err2 := os.Stat(filepath.Join(b.Output("msm"), "model.safetensors"))
		if err1 != nil || err2 != nil || !os.SameFile(fa, fb) {
			t.Errorf("b/%s msm output is not a's file: %v %v", seed, err1, err2)
		}
		if ca, cb := readFile(t, a.MCResult("msm")), readFile(t, b.MCResult("msm")); ca != cb {
			t.Errorf("b/%s eval/msm-mc.json %q, a's %q", seed, cb, ca)
		}
		ma, _ := os.ReadFile(a.Metrics())
		mb, _ := os.ReadFile(b.Metrics())
		msmA := strings.SplitAfter(string(ma), "\n")[0] // the fake writes msm's line, then aft's
		if !strings.HasPrefix(string(mb), msmA) || strings.Count(string(mb), `"stage":"msm"`) != 1 || strings.Count(string(mb), `"stage":"aft"`) != 1 {
			t.Errorf("b/%s metrics.jsonl:\n%s\na's:\n%s", seed, mb, ma)
		}
	}
	// The donor is as it was: its summary names no other run, its output is its own.
	if sum, _ := rundir.ReadStageSummary(rundir.Dir(byName["a/seed-1"].Dir).Done("msm")); sum.SharedFrom != "" ||
		sum.Output != "" && sum.Output != rundir.Dir(byName["a/seed-1"].Dir).Output("msm") {
		t.Errorf("donor msm/DONE: %+v", sum)
	}
	for _, n := range []string{"c/seed-1", "aft-only/seed-1"} {
		if sum, _ := rundir.ReadStageSummary(rundir.Dir(byName[n].Dir).Done(byName[n].Stages[0])); sum.SharedFrom != "" {
			t.Errorf("%s shared its first stage: %+v", n, sum)
		}
	}
	// Given by a run that was given it: the summary names where the stage was trained.
	third := &Run{Arm: "third", Seed: 1, Dir: filepath.Join(t.TempDir(), "third"), Config: byName["b/seed-1"].Config, Stages: byName["b/seed-1"].Stages}
	if err := shareStages(third, byName["b/seed-1"], []string{"msm"}); err != nil {
		t.Fatal(err)
	}
	if sum, err := rundir.ReadStageSummary(rundir.Dir(third.Dir).Done("msm")); err != nil || sum.SharedFrom != byName["a/seed-1"].Dir {
		t.Errorf("shared twice: %+v (%v), want shared_from %s", sum, err, byName["a/seed-1"].Dir)
	}
	// The report compares a and b at both stages they have, in stage order; c and aft-only at aft only.
	results, err := Collect(c, runs, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, cmp := range BuildReport(c, results).Comparisons {
		if cmp.Metric == MetricEvalLoss {
			got = append(got, cmp.A+"-"+cmp.B+"@"+cmp.Stage)
		}
	}
	if s := strings.Join(got, " "); s != "a-b@msm a-b@aft a-c@msm a-c@aft a-aft-only@aft b-c@msm b-c@aft b-aft-only@aft c-aft-only@aft" {
		t.Errorf("comparisons %s", s)
	}
	// Every run is finished and reported; a second Execute skips them all.
	out.Reset()
	if err := Execute(c, runs, fakeOptions(&out, &calls)); err != nil || strings.Count(out.String(), "finished earlier, skipped") != 8 {
		t.Errorf("re-run: %v\n%s", err, out.String())
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
