package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Files of a run directory.
const (
	ConfigFile  = "config.toml"   // required
	MetricsFile = "metrics.jsonl" // required, may be empty
	SummaryFile = "summary.json"  // optional
	EvalDir     = "eval"          // optional, holds *.json metric maps
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

// TrainStep is one {"kind":"train"} line of metrics.jsonl. Loss is NaN when
// the line has no loss (or null).
type TrainStep struct {
	Stage      string    `json:"stage"`
	Step       int       `json:"step"`
	Loss       float64   `json:"-"`
	LR         float64   `json:"lr"`
	GradNorm   float64   `json:"grad_norm"`
	Tokens     int64     `json:"tokens"` // cumulative tokens in the stage
	TokensPerS float64   `json:"tokens_per_s"`
	MFU        float64   `json:"mfu"`
	MemBytes   int64     `json:"mem_bytes"`
	Time       time.Time `json:"time"`
}

// EvalStep is one {"kind":"eval"} line of metrics.jsonl. EvalLoss is NaN when
// the line has no eval_loss.
type EvalStep struct {
	Stage    string             `json:"stage"`
	Step     int                `json:"step"`
	EvalLoss float64            `json:"-"`
	EvalPPL  float64            `json:"eval_ppl"`
	BySource map[string]float64 `json:"by_source"`
}

// Summary is summary.json; fields it does not know are ignored.
type Summary struct {
	Stages []StageSummary `json:"stages"`
}

// StageSummary is one stage of summary.json; nil pointers were absent or null.
type StageSummary struct {
	Name           string   `json:"name"`
	Steps          int      `json:"steps"`
	Tokens         int64    `json:"tokens"`
	FinalTrainLoss *float64 `json:"final_train_loss"`
	FinalEvalLoss  *float64 `json:"final_eval_loss"`
	Seconds        *float64 `json:"seconds"`
}

// LineError reports a malformed line of a line-oriented file such as
// metrics.jsonl or config.toml.
type LineError struct {
	Path string
	Line int // 1-based
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("report: %s:%d: %v", e.Path, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// Load reads the run directory dir. config.toml and metrics.jsonl must exist
// (metrics.jsonl may be empty); summary.json and eval/ are optional.
func Load(dir string) (*Run, error) {
	r := &Run{Name: filepath.Base(filepath.Clean(dir)), Dir: dir}
	var err error
	if r.Config, err = loadConfig(filepath.Join(dir, ConfigFile)); err != nil {
		return nil, err
	}
	mpath := filepath.Join(dir, MetricsFile)
	f, err := os.Open(mpath)
	if err != nil {
		return nil, fmt.Errorf("report: %w (is %s a run directory?)", err, dir)
	}
	r.Train, r.Eval, err = parseMetrics(f, mpath)
	f.Close()
	if err != nil {
		return nil, err
	}
	if r.Summary, err = loadSummary(filepath.Join(dir, SummaryFile)); err != nil {
		return nil, err
	}
	if r.EvalResults, err = loadEvalResults(filepath.Join(dir, EvalDir)); err != nil {
		return nil, err
	}
	r.order()
	return r, nil
}

// metricsLine holds the fields of every kind of metrics line; unknown fields
// are ignored by encoding/json.
type metricsLine struct {
	Kind string `json:"kind"`
	TrainStep
	Loss     *float64           `json:"loss"`
	EvalLoss *float64           `json:"eval_loss"`
	EvalPPL  float64            `json:"eval_ppl"`
	BySource map[string]float64 `json:"by_source"`
}

// parseMetrics reads metrics.jsonl from rd; name is used in errors. Lines of
// unknown kinds and blank lines are skipped.
func parseMetrics(rd io.Reader, name string) ([]TrainStep, []EvalStep, error) {
	var train []TrainStep
	var evals []EvalStep
	br := bufio.NewReader(rd)
	for lineNo := 1; ; lineNo++ {
		line, rerr := br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return nil, nil, fmt.Errorf("report: %s: %w", name, rerr)
		}
		if b := bytes.TrimSpace(line); len(b) > 0 {
			var m metricsLine
			dec := json.NewDecoder(bytes.NewReader(b))
			err := dec.Decode(&m)
			if err == nil && dec.More() {
				err = errors.New("trailing data after JSON object")
			}
			if err != nil {
				return nil, nil, &LineError{Path: name, Line: lineNo, Err: err}
			}
			switch m.Kind {
			case "train":
				s := m.TrainStep
				s.Loss = orNaN(m.Loss)
				train = append(train, s)
			case "eval":
				evals = append(evals, EvalStep{Stage: m.Stage, Step: m.Step,
					EvalLoss: orNaN(m.EvalLoss), EvalPPL: m.EvalPPL, BySource: m.BySource})
			case "":
				return nil, nil, &LineError{Path: name, Line: lineNo, Err: errors.New(`missing "kind"`)}
			}
		}
		if rerr == io.EOF {
			return train, evals, nil
		}
	}
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func loadSummary(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("report: %s: %w", path, err)
	}
	return &s, nil
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
