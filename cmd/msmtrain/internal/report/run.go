package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
)

// Run is one loaded run directory. Load fills it; the report functions only
// read it.
type Run struct {
	Name string // base name of Dir
	Dir  string

	// Config is config.toml flattened to dotted keys ("train.lr",
	// "stages.0.name") with values rendered as TOML would write them.
	Config map[string]string

	// Stages in the order they ran: first appearance in metrics.jsonl, then
	// any stage only summary.json names.
	Stages []string
	Train  []TrainStep // sorted by stage order, then step; a repeated step keeps the last line
	Eval   []EvalStep  // same order as Train

	Summary *Summary // nil when summary.json is missing

	// EvalResults maps an eval/*.json file's stem ("mc" for eval/mc.json)
	// to its numeric metrics; nested objects are flattened with dots and
	// non-numeric values are dropped. Nil when eval/ is missing.
	EvalResults map[string]map[string]float64
}

// TrainStep is one {"kind":"train"} line of metrics.jsonl; Loss is NaN when the line's loss is null.
type TrainStep = rundir.TrainRecord

// EvalStep is one {"kind":"eval"} line of metrics.jsonl; EvalLoss is NaN when it is null.
type EvalStep = rundir.EvalRecord

// Summary is the run's summary.json.
type Summary = rundir.Summary

// StageSummary is one stage of summary.json.
type StageSummary = rundir.StageSummary

// LineError reports a malformed line of a line-oriented file such as metrics.jsonl or config.toml.
type LineError = rundir.LineError

// Load reads the run directory dir. config.toml and metrics.jsonl must exist
// (metrics.jsonl may be empty); summary.json and eval/ are optional.
func Load(dir string) (*Run, error) {
	r := &Run{Name: filepath.Base(filepath.Clean(dir)), Dir: dir}
	d := rundir.Dir(dir)
	var err error
	if r.Config, err = loadConfig(d.Config()); err != nil {
		return nil, err
	}
	f, err := os.Open(d.Metrics())
	if err != nil {
		return nil, fmt.Errorf("report: %w (is %s a run directory?)", err, dir)
	}
	m, err := rundir.ReadMetrics(f, d.Metrics())
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	r.Train, r.Eval = m.Train, m.Eval
	if r.Summary, err = rundir.ReadSummary(d.Summary()); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if r.EvalResults, err = loadEvalResults(d.EvalResults()); err != nil {
		return nil, err
	}
	r.order()
	return r, nil
}

func loadEvalResults(dir string) (map[string]map[string]float64, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	out := map[string]map[string]float64{}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("report: %s: %w (want a flat JSON object of metrics)", path, err)
		}
		m := map[string]float64{}
		flattenNumbers("", v, m)
		out[strings.TrimSuffix(e.Name(), ".json")] = m
	}
	return out, nil
}

func flattenNumbers(prefix string, v map[string]any, out map[string]float64) {
	for k, x := range v {
		key := prefix + k
		switch x := x.(type) {
		case float64:
			out[key] = x
		case bool:
			if x {
				out[key] = 1
			} else {
				out[key] = 0
			}
		case map[string]any:
			flattenNumbers(key+".", x, out)
		}
	}
}

// order fills r.Stages and sorts Train and Eval by stage order then step,
// keeping the last line of a repeated (stage, step), as a resumed run
// re-logs the steps after its checkpoint.
func (r *Run) order() {
	idx := map[string]int{}
	add := func(s string) {
		if _, ok := idx[s]; !ok {
			idx[s] = len(r.Stages)
			r.Stages = append(r.Stages, s)
		}
	}
	for _, s := range r.Train {
		add(s.Stage)
	}
	for _, s := range r.Eval {
		add(s.Stage)
	}
	if r.Summary != nil {
		for _, s := range r.Summary.Stages {
			add(s.Name)
		}
	}
	type key struct{ stage, step int }
	less := func(a, b key) bool {
		if a.stage != b.stage {
			return a.stage < b.stage
		}
		return a.step < b.step
	}
	// Dedupe: reverse, stable sort, keep the first of each key (the last line).
	slices.Reverse(r.Train)
	sort.SliceStable(r.Train, func(i, j int) bool {
		return less(key{idx[r.Train[i].Stage], r.Train[i].Step}, key{idx[r.Train[j].Stage], r.Train[j].Step})
	})
	r.Train = dedupe(r.Train, func(s TrainStep) key { return key{idx[s.Stage], s.Step} })
	slices.Reverse(r.Eval)
	sort.SliceStable(r.Eval, func(i, j int) bool {
		return less(key{idx[r.Eval[i].Stage], r.Eval[i].Step}, key{idx[r.Eval[j].Stage], r.Eval[j].Step})
	})
	r.Eval = dedupe(r.Eval, func(s EvalStep) key { return key{idx[s.Stage], s.Step} })
}

func dedupe[T any, K comparable](s []T, key func(T) K) []T {
	out := s[:0]
	for _, x := range s {
		if len(out) > 0 && key(x) == key(out[len(out)-1]) {
			continue
		}
		out = append(out, x)
	}
	return out
}

// stageSummary returns the summary.json entry for stage, or nil.
func (r *Run) stageSummary(stage string) *StageSummary {
	if r.Summary == nil {
		return nil
	}
	for i := range r.Summary.Stages {
		if r.Summary.Stages[i].Name == stage {
			return &r.Summary.Stages[i]
		}
	}
	return nil
}
