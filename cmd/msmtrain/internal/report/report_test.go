package report

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
)

// fixture describes a run directory written by writeRun.
type fixture struct {
	name    string
	config  string
	lr      float64 // scales how fast the loss falls
	stages  []string
	steps   []int
	summary bool
	evalDir bool
}

const configA = `
seed = 1
[model]
name = "qwen3-0.6b"
dtype = "bf16"
[lora]
rank = 16
targets = ["q_proj", "v_proj"]
[train]
lr = 1e-4
batch_size = 8
[[stages]]
name = "msm"
steps = 100
[[stages]]
name = "aft"
steps = 50
`

var configB = strings.NewReplacer("rank = 16", "rank = 32", "lr = 1e-4", "lr = 3e-4",
	`"q_proj", "v_proj"`, `"q_proj", "k_proj", "v_proj"`, "seed = 1", "seed = 1\nnotes = \"a|b\"").Replace(configA)

// writeRun writes a run directory under root and returns its path. Losses
// fall from about 4 towards 2, with a bump at the second stage.
func writeRun(t testing.TB, root string, f fixture) string {
	t.Helper()
	dir := filepath.Join(root, f.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(rundir.ConfigFile, f.config)
	var m strings.Builder
	var sum strings.Builder
	sum.WriteString(`{"stages":[`)
	global := 0
	for si, stage := range f.stages {
		for step := 1; step <= f.steps[si]; step++ {
			global++
			loss := 2 + 2*math.Exp(-f.lr*float64(global)) + 0.15*math.Sin(float64(step)*1.7) + 0.3*float64(si)*math.Exp(-float64(step)/10)
			fmt.Fprintf(&m, `{"kind":"train","stage":%q,"step":%d,"loss":%.4f,"lr":1e-4,"grad_norm":0.8,"tokens":%d,"tokens_per_s":1234.5,"mfu":0.0,"mem_bytes":123456,"time":"2026-11-28T08:00:00Z","future_field":[1,2]}`+"\n",
				stage, step, loss, step*4096)
			if step%20 == 0 || step == f.steps[si] {
				fmt.Fprintf(&m, `{"kind":"eval","stage":%q,"step":%d,"eval_loss":%.4f,"eval_ppl":12.2,"by_source":{"wren-spec":{"loss":%.4f,"tokens":900},"generic":{"loss":2.7,"tokens":300}}}`+"\n",
					stage, step, loss+0.2, loss+0.1)
			}
		}
		if si > 0 {
			sum.WriteString(",")
		}
		fmt.Fprintf(&sum, `{"name":%q,"steps":%d,"tokens":%d,"final_train_loss":2.0,"final_eval_loss":null,"seconds":%d}`, stage, f.steps[si], f.steps[si]*4096, 100*(si+1))
	}
	sum.WriteString(`],"total_seconds":300}`)
	write(rundir.MetricsFile, m.String())
	if f.summary {
		write(rundir.SummaryFile, sum.String())
	}
	if f.evalDir {
		write("eval/mc.json", fmt.Sprintf(`{"mc_accuracy":%g,"mc_margin":1.2,"n":16}`, 0.5+f.lr))
		write("eval/notes.txt", "ignored")
	}
	return dir
}

func twoRuns(t testing.TB) []*Run {
	t.Helper()
	root := t.TempDir()
	a := writeRun(t, root, fixture{name: "run-a", config: configA, lr: 0.02, stages: []string{"msm", "aft"}, steps: []int{100, 50}, summary: true, evalDir: true})
	b := writeRun(t, root, fixture{name: "run-b", config: configB, lr: 0.05, stages: []string{"msm", "aft"}, steps: []int{100, 50}})
	var runs []*Run
	for _, d := range []string{a, b} {
		r, err := Load(d)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	return runs
}

func TestLoad(t *testing.T) {
	runs := twoRuns(t)
	a, b := runs[0], runs[1]
	if a.Name != "run-a" || b.Name != "run-b" {
		t.Errorf("names %q %q", a.Name, b.Name)
	}
	if got := strings.Join(a.Stages, ","); got != "msm,aft" {
		t.Errorf("stages %q", got)
	}
	if len(a.Train) != 150 || len(a.Eval) != 8 {
		t.Errorf("got %d train, %d eval lines, want 150, 8", len(a.Train), len(a.Eval))
	}
	if a.Summary == nil || b.Summary != nil {
		t.Errorf("summary: a %v, b %v; want a set, b nil", a.Summary, b.Summary)
	}
	if a.EvalResults["mc"]["n"] != 16 || b.EvalResults != nil {
		t.Errorf("eval results: a %v, b %v", a.EvalResults, b.EvalResults)
	}
	for k, want := range map[string]string{
		"train.lr": "0.0001", "lora.rank": "16", "model.name": `"qwen3-0.6b"`,
		"stages.1.name": `"aft"`, "lora.targets": `["q_proj", "v_proj"]`,
	} {
		if got := a.Config[k]; got != want {
			t.Errorf("config %s = %q, want %q", k, got, want)
		}
	}
	st := a.Stats()
	if len(st) != 2 || st[0].Steps != 100 || st[1].Tokens != 50*4096 || st[1].Seconds != 200 {
		t.Errorf("stats %+v", st)
	}
	var want float64
	for _, s := range a.Train[90:100] {
		want += float64(s.Loss) / 10
	}
	if math.Abs(st[0].FinalTrainLoss-want) > 1e-12 {
		t.Errorf("final train loss %v, want mean of last 10 = %v", st[0].FinalTrainLoss, want)
	}
}

func TestLoadResumedRunKeepsLastLine(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, rundir.ConfigFile), []byte("a = 1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, rundir.MetricsFile), []byte(`{"kind":"train","stage":"msm","step":1,"loss":5}
{"kind":"train","stage":"msm","step":2,"loss":4}
{"kind":"train","stage":"msm","step":2,"loss":3.5}
{"kind":"train","stage":"aft","step":1,"loss":3}
{"kind":"train","stage":"msm","step":3,"loss":null}
`), 0o644)
	r, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range r.Train {
		got = append(got, fmt.Sprintf("%s/%d=%v", s.Stage, s.Step, s.Loss))
	}
	if want := "msm/1=5 msm/2=3.5 msm/3=NaN aft/1=3"; strings.Join(got, " ") != want {
		t.Errorf("got %s, want %s", strings.Join(got, " "), want)
	}
}

func TestLoadErrors(t *testing.T) {
	good := `{"kind":"train","stage":"msm","step":1,"loss":2}` + "\n"
	tests := []struct {
		name    string
		files   map[string]string
		want    string // substring of the error
		line    int    // LineError line, 0: not a LineError
		wantErr bool
	}{
		{name: "malformed json", files: map[string]string{rundir.MetricsFile: good + "\n" + `{"kind":"train","step":` + "\n"}, want: "metrics.jsonl:3:", line: 3},
		{name: "wrong type", files: map[string]string{rundir.MetricsFile: good + `{"kind":"eval","step":"7"}`}, want: "metrics.jsonl:2:", line: 2},
		{name: "trailing data", files: map[string]string{rundir.MetricsFile: good + `{"kind":"train"} {}`}, want: "metrics.jsonl:2: trailing", line: 2},
		{name: "missing kind", files: map[string]string{rundir.MetricsFile: `{"step":1}`}, want: `metrics.jsonl:1: missing "kind"`, line: 1},
		{name: "bad toml", files: map[string]string{rundir.ConfigFile: "a = 1\nb = = 2\n"}, want: "config.toml:2:", line: 2},
		{name: "bad summary", files: map[string]string{rundir.SummaryFile: "{"}, want: "summary.json"},
		{name: "bad eval json", files: map[string]string{"eval/mc.json": "[1]"}, want: "mc.json"},
		{name: "no metrics", files: map[string]string{rundir.MetricsFile: "-"}, want: "metrics.jsonl"},
		{name: "no config", files: map[string]string{rundir.ConfigFile: "-"}, want: "config.toml"},
		{name: "optional files missing", files: map[string]string{}},
		{name: "unknown kind and blank lines", files: map[string]string{rundir.MetricsFile: "\n" + `{"kind":"checkpoint","path":"x"}` + "\n\n" + good}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{rundir.ConfigFile: "a = 1\n", rundir.MetricsFile: good}
			for k, v := range tc.files {
				files[k] = v
			}
			for name, s := range files {
				if s == "-" {
					continue
				}
				os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
				os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644)
			}
			_, err := Load(dir)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "report: ") {
				t.Fatalf("error %v, want one starting \"report: \" containing %q", err, tc.want)
			}
			var le *LineError
			if tc.line > 0 && (!errors.As(err, &le) || le.Line != tc.line) {
				t.Errorf("error %#v, want a LineError at line %d", err, tc.line)
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	runs := twoRuns(t)
	var buf bytes.Buffer
	if err := Markdown(runs, &buf); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	st := runs[0].Stats()
	for _, want := range []string{
		"| key | run-a | run-b |",
		"| `lora.rank` | 16 | 32 |",
		"| `train.lr` | 0.0001 | 0.0003 |",
		`| ` + "`lora.targets`" + ` | ["q_proj", "v_proj"] | ["q_proj", "k_proj", "v_proj"] |`,
		"| `notes` | — | \"a\\|b\" |",
		"| stage | run | steps | tokens | final train loss | final eval loss | time |",
		fmt.Sprintf("| msm | run-a | 100 | 409,600 | %.4f | %.4f | 1m40s |", st[0].FinalTrainLoss, st[0].FinalEvalLoss),
		"| aft | run-b | 50 | 204,800 |",
		"| msm | generic | 2.7000 | 2.7000 |",
		"| mc | mc_accuracy | 0.52 | — |",
		"| mc | n | 16 | — |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, not := range []string{"model.name", "batch_size", "stages.0.name", "`seed`", "notes.txt"} {
		if strings.Contains(md, not) {
			t.Errorf("report shows %q, which does not differ", not)
		}
	}
	// Stage rows in stage order, runs in argument order.
	if i, j := strings.Index(md, "| msm | run-b"), strings.Index(md, "| aft | run-a"); i < 0 || j < i {
		t.Errorf("stage rows out of order")
	}
	var again bytes.Buffer
	Markdown(runs, &again)
	if again.String() != md {
		t.Error("Markdown is not deterministic")
	}
}

func TestMarkdownEdgeCases(t *testing.T) {
	one := twoRuns(t)[:1]
	tests := []struct {
		name string
		runs []*Run
		want string
		err  bool
	}{
		{name: "no runs", err: true},
		{name: "one run", runs: one, want: "Only one run"},
		{name: "identical configs", runs: []*Run{one[0], one[0]}, want: "The configs are identical."},
		{name: "duplicate names", runs: []*Run{one[0], one[0]}, want: "| msm | run-a (2) |"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Markdown(tc.runs, &buf)
			if tc.err != (err != nil) {
				t.Fatalf("error %v, want error %v", err, tc.err)
			}
			if !strings.Contains(buf.String(), tc.want) {
				t.Errorf("report lacks %q:\n%s", tc.want, buf.String())
			}
		})
	}
}

func TestPlotPNG(t *testing.T) {
	two := twoRuns(t)
	long := writeRun(t, t.TempDir(), fixture{name: "baseline-without-spec-midtraining-lr3e-4-seed7", config: configA,
		lr: 0.003, stages: []string{"msm", "aft"}, steps: []int{2000, 1200}})
	third, err := Load(long)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		runs []*Run
		opt  PlotOptions
		w, h int
	}{
		{name: "default", runs: two, w: 1200, h: 700},
		{name: "smoothed", runs: two, opt: PlotOptions{Smooth: 0.9, Title: "MSM vs baseline"}, w: 1200, h: 700},
		{name: "fixed range small", runs: two, opt: PlotOptions{Width: 640, Height: 400, YMin: 1.5, YMax: 3}, w: 640, h: 400},
		{name: "different stage lengths", runs: append(two[:2:2], third), opt: PlotOptions{Smooth: 0.95}, w: 1200, h: 700},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runs := tc.runs
			path := filepath.Join(t.TempDir(), "loss.png")
			if err := PlotPNG(runs, path, tc.opt); err != nil {
				t.Fatal(err)
			}
			if dir := os.Getenv("REPORT_PLOT_DIR"); dir != "" { // to look at the plots
				b, _ := os.ReadFile(path)
				os.WriteFile(filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".png"), b, 0o644)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
				t.Fatalf("size %v, want %dx%d", b, tc.w, tc.h)
			}
			counts := make([]int, len(runs))
			for y := 0; y < tc.h; y++ {
				for x := 0; x < tc.w; x++ {
					r, g, b, _ := img.At(x, y).RGBA()
					for i := range runs {
						c := RunColor(i)
						if uint8(r>>8) == c.R && uint8(g>>8) == c.G && uint8(b>>8) == c.B {
							counts[i]++
						}
					}
				}
			}
			for i, n := range counts {
				if n < 200 {
					t.Errorf("run %d: %d pixels of its color, want at least 200", i, n)
				}
			}
		})
	}
}

func TestPlotOptionsValidate(t *testing.T) {
	for _, o := range []PlotOptions{{Smooth: 1}, {Smooth: -0.1}, {Width: 10}, {Height: 100000}, {YMax: math.Inf(1)}} {
		if _, err := Plot(nil, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if _, err := Plot([]*Run{nil}, PlotOptions{}); err == nil {
		t.Error("nil run: no error")
	}
	huge := &Run{Name: "huge", Stages: []string{"s"}, Train: []TrainStep{{Stage: "s", Step: 1, Loss: -1e308}, {Stage: "s", Step: 2, Loss: 1e308}}}
	if _, err := Plot([]*Run{huge}, PlotOptions{}); err != nil {
		t.Errorf("huge losses: %v", err)
	}
	if _, err := Plot(nil, PlotOptions{}); err != nil {
		t.Errorf("empty plot: %v", err)
	}
}

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		n      int
		exact  bool
		want   string
	}{
		{0, 150, 10, true, "0 20 40 60 80 100 120 140"},
		{1.93, 4.1, 8, false, "1.8 2.0 2.2 2.4 2.6 2.8 3.0 3.2 3.4 3.6 3.8 4.0 4.2"},
		{2, 2, 8, false, "1.4 1.5 1.6 1.7 1.8 1.9 2.0 2.1 2.2 2.3 2.4 2.5 2.6"},
		{0, 2e6, 5, true, "0 500k 1M 1.5M 2M"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.lo, tc.hi), func(t *testing.T) {
			tk := niceTicks(tc.lo, tc.hi, tc.n, tc.exact)
			var got []string
			for _, v := range tk.ticks {
				got = append(got, tk.label(v))
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("got %s, want %s", strings.Join(got, " "), tc.want)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	runs := twoRuns(t)
	out := filepath.Join(t.TempDir(), "out", "cmp")
	for range 2 { // the second write replaces the first
		if err := Write(runs, out); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "loss.png report.md" {
		t.Errorf("out dir holds %q, want loss.png report.md and no temporary files", got)
	}
	md, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil || !strings.Contains(string(md), "![Loss curves](loss.png)") {
		t.Errorf("report.md does not show loss.png (err %v)", err)
	}
}
