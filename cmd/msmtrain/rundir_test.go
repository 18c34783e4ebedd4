package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/torch/testenv"
)

// TestRunDirectoryEndToEnd trains a tiny model on two sources (spec documents and generic text) and reads its run
// directory the way users do: metrics.jsonl's held-out evaluations carry each source's loss (their token-weighted
// mean is the overall loss), TensorBoard's event files of each stage parse with an independent reader (Python's
// protobuf) and hold the scalars of metrics.jsonl, and `msmtrain report` shows the per-source table.
func TestRunDirectoryEndToEnd(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	data := writeTwoSourceData(t, dir, 40, false)
	out := filepath.Join(dir, "run")
	cfg := writeFile(t, filepath.Join(dir, "run.toml"), fmt.Sprintf(`out_dir = %q
[model]
path = %q
[train]
seq_len = 64
micro_batch = 2
steps = 4
lr = 1e-2
[eval]
every = 2
[log]
progress = "lines"
`, out, model)+data.stages())
	if o, err := runCmd(t, "--config", cfg); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	d := rundir.Dir(out)
	f, err := os.Open(d.Metrics())
	if err != nil {
		t.Fatal(err)
	}
	m, err := rundir.ReadMetrics(f, d.Metrics())
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	msmEvals := 0
	for _, e := range m.Eval {
		if e.Stage != "msm" {
			if len(e.BySource) != 0 {
				t.Errorf("stage %s has one source, but by_source %v", e.Stage, e.BySource)
			}
			continue
		}
		msmEvals++
		spec, generic := e.BySource["spec"], e.BySource["generic"]
		if len(e.BySource) != 2 || spec.Tokens == 0 || generic.Tokens == 0 || spec.Tokens+generic.Tokens != e.Tokens {
			t.Fatalf("msm step %d: by_source %+v, %d tokens", e.Step, e.BySource, e.Tokens)
		}
		mean := (float64(spec.Loss)*float64(spec.Tokens) + float64(generic.Loss)*float64(generic.Tokens)) / float64(e.Tokens)
		if math.Abs(mean-float64(e.EvalLoss)) > 1e-5 {
			t.Errorf("msm step %d: sources' mean %.6f, eval_loss %.6f", e.Step, mean, float64(e.EvalLoss))
		}
		if spec.Loss == generic.Loss {
			t.Errorf("msm step %d: both sources have loss %v", e.Step, spec.Loss)
		}
	}
	if msmEvals != 2 {
		t.Fatalf("%d msm evaluations, want 2 (step 2 and the end)", msmEvals)
	}

	// TensorBoard: each stage's scalars as written to metrics.jsonl, read back by Python's protobuf.
	py := ""
	for _, p := range []string{os.Getenv("MSMTRAIN_PYTHON"), "python3", "/usr/bin/python3"} {
		if p != "" && exec.Command(p, "-c", "import google.protobuf").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		testenv.SkipOrFail(t, "python3 with google.protobuf not found: apt-get install python3-protobuf")
	}
	for _, stage := range []string{"msm", "aft"} {
		files, _ := filepath.Glob(filepath.Join(d.TensorBoardStage(stage), "events.out.tfevents.*"))
		if len(files) != 1 {
			t.Fatalf("stage %s: event files %v", stage, files)
		}
		b, err := exec.Command(py, filepath.Join("internal", "tensorboard", "testdata", "read_events.py"), files[0]).Output()
		if err != nil {
			t.Fatalf("read_events.py %s: %v", files[0], err)
		}
		var read []struct {
			Events []struct {
				Step  int64  `json:"step"`
				Kind  string `json:"kind"`
				Tag   string `json:"tag"`
				Value string `json:"value"`
			} `json:"events"`
		}
		if err := json.Unmarshal(b, &read); err != nil || len(read) != 1 {
			t.Fatalf("read_events.py: %v\n%s", err, b)
		}
		got := map[string]float64{}
		for _, e := range read[0].Events {
			if e.Kind == "summary" {
				var v float64
				fmt.Sscan(e.Value, &v)
				got[fmt.Sprintf("%s@%d", e.Tag, e.Step)] = v
			}
		}
		want := map[string]float64{}
		for _, r := range m.Train {
			if r.Stage == stage {
				want[fmt.Sprintf("train/loss@%d", r.Step)] = float64(r.Loss)
				want[fmt.Sprintf("train/lr@%d", r.Step)] = r.LR
			}
		}
		for _, e := range m.Eval {
			if e.Stage == stage {
				want[fmt.Sprintf("eval/loss@%d", e.Step)] = float64(e.EvalLoss)
				for src, l := range e.BySource {
					want[fmt.Sprintf("eval/loss/%s@%d", src, e.Step)] = float64(l.Loss)
				}
			}
		}
		if stage == "aft" {
			var res map[string]float64
			rb, _ := os.ReadFile(d.MCResult("aft"))
			json.Unmarshal(rb, &res)
			want["eval/mc_accuracy@4"] = res["mc_accuracy"]
		}
		t.Logf("stage %s: %d TensorBoard scalars read, %d compared", stage, len(got), len(want))
		for k, w := range want {
			g, ok := got[k]
			if !ok || math.Abs(g-w) > 1e-6*math.Max(1, math.Abs(w)) {
				t.Errorf("stage %s: TensorBoard %s = %v (present %v), metrics say %v", stage, k, g, ok, w)
			}
		}
	}

	if o, err := runCmd(t, "report", out); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	md, err := os.ReadFile(filepath.Join(out, "report", "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "by source") || !strings.Contains(string(md), "| msm | spec |") ||
		!strings.Contains(string(md), "| msm | generic |") {
		t.Fatalf("report.md lacks the per-source table:\n%s", md)
	}
}

// twoSourceData is the data of a two-stage run: MSM on two sources (spec documents, generic text), AFT on chats
// with end-of-stage multiple choice and, optionally, greedy answers to prompts.
type twoSourceData struct{ docs, web, chats, mc, prompts string }

func writeTwoSourceData(t *testing.T, dir string, n int, prompts bool) twoSourceData {
	t.Helper()
	var d twoSourceData
	d.docs, d.chats = writeTrainingData(t, dir, n)
	var generic []string
	for i := range n {
		generic = append(generic, fmt.Sprintf(`{"text": "What is the answer %d? Maybe yes, maybe no."}`, i))
	}
	d.web = writeFile(t, filepath.Join(dir, "generic.jsonl"), strings.Join(generic, "\n")+"\n")
	d.mc = writeFile(t, filepath.Join(dir, "mc.jsonl"), `{"id": "q1", "messages": [{"role": "user", "content": "Is it honest?"}], "choices": ["Yes", "No"], "answer": 0}
{"id": "q2", "messages": [{"role": "user", "content": "What?"}], "choices": ["Tell me more", "maybe"], "answer": 1}
`)
	if prompts {
		d.prompts = writeFile(t, filepath.Join(dir, "prompts.jsonl"), promptLines[0]+"\n"+promptLines[2]+"\n")
	}
	return d
}

// stages is the runs' [[stages]] TOML: msm (val_fraction 0.25) and aft.
func (d twoSourceData) stages() string {
	s := fmt.Sprintf(`[[stages]]
name = "msm"
kind = "msm"
[stages.data]
val_fraction = 0.25
sources = [{ name = "spec", path = %q, kind = "documents" }, { name = "generic", path = %q, kind = "documents" }]
[[stages]]
name = "aft"
kind = "aft"
eval_mc = %q
`, d.docs, d.web, d.mc)
	if d.prompts != "" {
		s += fmt.Sprintf("eval_prompts = %q\neval_max_new_tokens = 8\n", d.prompts)
	}
	return s + fmt.Sprintf("[stages.data]\nsources = [{ name = \"chats\", path = %q, kind = \"chats\" }]\n", d.chats)
}
