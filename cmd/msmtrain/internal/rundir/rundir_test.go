package rundir

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFloatJSON: non-finite values are written as null and read back as NaN; finite ones round-trip exactly.
func TestFloatJSON(t *testing.T) {
	rec := TrainRecord{Kind: KindTrain, Stage: "msm", Step: 3, Loss: Float(math.NaN()), GradNorm: Float(math.Inf(1)), LR: 1e-4}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"loss":null`) || !strings.Contains(string(b), `"grad_norm":null`) {
		t.Fatalf("%s", b)
	}
	m, err := ReadMetrics(strings.NewReader(string(b)+"\n"+`{"kind":"train","stage":"msm","step":4,"loss":2.718281828459045}`+"\n"), "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Train) != 2 || !math.IsNaN(float64(m.Train[0].Loss)) || float64(m.Train[1].Loss) != 2.718281828459045 ||
		!math.IsNaN(float64(m.Train[1].GradNorm)) {
		t.Fatalf("%+v", m.Train)
	}
}

// TestReadMetricsErrors: a malformed line is an error naming the file and line; unknown kinds are skipped.
func TestReadMetricsErrors(t *testing.T) {
	for _, c := range []struct {
		text string
		line int
	}{
		{`{"kind":"train","step":1}` + "\n{", 2},
		{"\n\n" + `{"stage":"msm"}`, 3},
		{`{"kind":"eval","eval_loss":"x"}`, 1},
		{`{"kind":"train"} {"kind":"train"}`, 1},
	} {
		_, err := ReadMetrics(strings.NewReader(c.text), "metrics.jsonl")
		var le *LineError
		if !errors.As(err, &le) || le.Line != c.line || !strings.Contains(err.Error(), "metrics.jsonl:") {
			t.Errorf("%q: %v, want a LineError at line %d", c.text, err, c.line)
		}
	}
	m, err := ReadMetrics(strings.NewReader(`{"kind":"future","x":1}`+"\n"), "m")
	if err != nil || len(m.Train)+len(m.Eval) != 0 {
		t.Fatalf("unknown kind: %+v %v", m, err)
	}
}

// TestOpenMetricsDropsReplayedSteps: a resumed stage's lines past its checkpoint go; other stages' stay.
func TestOpenMetricsDropsReplayedSteps(t *testing.T) {
	p := filepath.Join(t.TempDir(), MetricsFile)
	lines := `{"kind":"train","stage":"msm","step":1}
{"kind":"train","stage":"msm","step":2}
{"kind":"train","stage":"aft","step":1}
{"kind":"train","stage":"aft","step":2}
{"kind":"train","stage":"aft","step":3}
`
	os.WriteFile(p, []byte(lines), 0o644)
	log, err := OpenMetrics(p, "aft", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Write(TrainRecord{Kind: KindTrain, Stage: "aft", Step: 2}); err != nil {
		t.Fatal(err)
	}
	log.Close()
	f, _ := os.Open(p)
	m, err := ReadMetrics(f, p)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range m.Train {
		got = append(got, r.Stage+string(rune('0'+r.Step)))
	}
	if strings.Join(got, " ") != "msm1 msm2 aft1 aft2" {
		t.Fatalf("lines %v", got)
	}
	if log, err = OpenMetrics(p, "msm", 0); err != nil { // msm started over
		t.Fatal(err)
	}
	log.Close()
	b, _ := os.ReadFile(p)
	if strings.Contains(string(b), `"msm"`) {
		t.Fatalf("a stage starting at step 0 kept its old lines:\n%s", b)
	}
}

func TestCheckpoints(t *testing.T) {
	d := Dir(t.TempDir())
	for _, s := range []int{10, 9, 100} {
		os.MkdirAll(d.Checkpoint("msm", s), 0o755)
		os.WriteFile(filepath.Join(d.Checkpoint("msm", s), CheckpointStateFile), []byte("{}"), 0o644)
	}
	os.MkdirAll(d.Checkpoint("msm", 200), 0o755) // no state.json: incomplete
	os.MkdirAll(d.Checkpoint("msm-b", 5), 0o755)
	os.WriteFile(filepath.Join(d.Checkpoint("msm-b", 5), CheckpointStateFile), []byte("{}"), 0o644)
	cks, err := d.Checkpoints("msm")
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	for _, c := range cks {
		steps = append(steps, CheckpointStep(c))
	}
	if len(steps) != 3 || steps[0] != 9 || steps[1] != 10 || steps[2] != 100 {
		t.Fatalf("checkpoints %v", cks)
	}
}
